"""Sum over samples of |per-sample linear-layer gradient|: Triton kernel and torch path vs float64."""

from __future__ import annotations

import pytest
import torch
from _kernels_common import DTYPES, assert_close64, device, odd_size, poison_like, randn  # noqa: F401
from deepsight.kernels import dispatch
from deepsight.kernels.grad_abs import grad_abs_sum_ref, grad_abs_sum_triton


def direct_grad_abs(delta, x, mask):
    """Float64: per sample the (O, I) gradient sum_t delta_t x_t^T, abs, summed over samples."""
    d = delta.detach().cpu().double()
    xd = x.detach().cpu().double()
    S, T, O = d.shape
    out = torch.zeros(O, xd.shape[2], dtype=torch.float64)
    for s in range(S):
        g = torch.zeros_like(out)
        for t in range(T):
            if mask is None or mask[s, t]:
                g += torch.outer(d[s, t], xd[s, t])
        out += g.abs()
    return out


def make_case(seed: int, dtype, dev, T: int | None = None, masked: bool = True):
    gen = torch.Generator().manual_seed(seed)
    S = int(torch.randint(2, 5, (1,), generator=gen))
    T = T if T is not None else odd_size(gen, 2, 21)
    O = odd_size(gen, 9, 40)
    I = odd_size(gen, 9, 40)
    delta = randn(gen, 2 * S, T, O, dtype=dtype, device=dev)[::2]  # (S, T, O), strided samples
    x = randn(gen, S, T, I, dtype=dtype, device=dev)
    mask = None
    if masked:
        mask = torch.rand(S, T, generator=gen) > 0.3
        mask[0, 0] = True
        mask[1] = False  # a sample with no token (e.g. response truncated away)
        mask = mask.to(dev)
    return delta, x, mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("masked", [True, False])
def test_triton_matches_float64(device, dtype, seed, masked):  # noqa: F811
    delta, x, mask = make_case(seed, dtype, device, masked=masked)
    O, I = delta.shape[2], x.shape[2]
    acc = poison_like((O, I), torch.float32, device, torch.Generator().manual_seed(seed)).abs()
    acc0 = acc.clone()
    grad_abs_sum_triton(delta, x, acc, mask)
    assert_close64(acc - acc0, direct_grad_abs(delta, x, mask), rel=2e-5, what="acc")


def test_abs_is_per_sample(device):  # noqa: F811
    """|sum over samples| would be smaller: the kernel must take |.| before summing samples."""
    delta, x, mask = make_case(3, torch.float32, device, masked=False)
    acc = torch.zeros(delta.shape[2], x.shape[2], device=device)
    grad_abs_sum_triton(delta, x, acc, None)
    summed_first = torch.einsum("sto,sti->oi", delta.double().cpu(), x.double().cpu()).abs()
    assert float((acc.cpu().double() - summed_first).sum()) > 1e-3
    assert_close64(acc, direct_grad_abs(delta, x, None), what="acc")


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_token_and_fp64_accumulator(device, dtype):  # noqa: F811
    delta, x, mask = make_case(4, dtype, device, T=1)
    mask[0, 0] = True
    acc = torch.zeros(delta.shape[2], x.shape[2], dtype=torch.float64, device=device)
    grad_abs_sum_triton(delta, x, acc, mask)
    assert_close64(acc, direct_grad_abs(delta, x, mask), rel=1e-6, what="acc")


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("narrow", ["delta", "x"])  # the torch path masks the narrower operand
def test_torch_path_matches_float64(masked, narrow):
    delta, x, mask = make_case(5, torch.float64, "cpu", masked=masked)
    if (delta.shape[2] < x.shape[2]) != (narrow == "delta"):
        delta, x = x, delta
    acc = torch.zeros(delta.shape[2], x.shape[2], dtype=torch.float64)
    grad_abs_sum_ref(delta, x, acc, mask)
    assert_close64(acc, direct_grad_abs(delta, x, mask), rel=1e-12, what="acc")
    acc2 = torch.zeros_like(acc)
    dispatch.grad_abs_sum_(delta, x, acc2, mask)  # auto on CPU -> torch
    assert_close64(acc2, acc, rel=1e-12, what="acc (dispatch)")


def test_bad_shapes():
    with pytest.raises(ValueError, match="x: expected shape"):
        grad_abs_sum_ref(torch.randn(2, 3, 4), torch.randn(2, 4, 5), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="acc"):
        grad_abs_sum_ref(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="token_mask"):
        grad_abs_sum_ref(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.zeros(4, 5), torch.ones(2, 4))
