"""Fused |W| * G_W block-wise top-k: Triton kernel and torch path vs a stable full sort."""

from __future__ import annotations

import pytest
import torch
from _kernels_common import device, odd_size  # noqa: F401
from deepsight.kernels import dispatch
from deepsight.kernels.topk import importance_topk_ref, importance_topk_triton


def sorted_reference(weight, acc, k):
    """fp32 importance, full stable descending sort: ties go to the lowest flat index."""
    imp = weight.detach().cpu().abs().float() * acc.detach().cpu().float()
    values, order = torch.sort(imp.flatten(), descending=True, stable=True)
    return values[:k], order[:k], imp.flatten()


def make_case(seed: int, dev, ties: bool = False, wdtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    O = odd_size(gen, 9, 40)
    I = odd_size(gen, 9, 40)
    weight = torch.randn(I, O, generator=gen).T  # (O, I), transposed view: not contiguous
    acc = torch.rand(O, I, generator=gen)
    if ties:  # few distinct importances: many exact ties
        weight = torch.where(weight > 0, 1.0, -1.0)
        acc = torch.randint(0, 4, (O, I), generator=gen).float()
    acc[0] = 0  # a dead row
    return weight.to(wdtype).to(dev), acc.to(dev)


@pytest.mark.parametrize("k", [1, 3, 16, 17])
@pytest.mark.parametrize("ties", [False, True])
def test_triton_matches_stable_sort(device, monkeypatch, k, ties):  # noqa: F811
    from deepsight.kernels import topk

    def no_full_pass(importance):
        raise AssertionError("the threshold filter should have sufficed")

    monkeypatch.setattr(topk, "_pack", no_full_pass)
    weight, acc = make_case(k + 10 * ties, device, ties=ties)
    values, flat = importance_topk_triton(weight, acc, k)
    exp_values, exp_flat, _ = sorted_reference(weight, acc, k)
    assert flat.dtype == torch.int64 and flat.shape == (k,)
    assert torch.equal(flat.cpu(), exp_flat), "ties must go to the lowest flat index"
    assert torch.equal(values.cpu(), exp_values)


@pytest.mark.parametrize("path", ["sample_missed", "buffer_overflow"])
def test_full_pass_fallbacks(device, monkeypatch, path):  # noqa: F811
    """A threshold that keeps fewer than k entries, or more than the buffer holds, still gives the exact top-k."""
    from deepsight.kernels import topk

    if path == "sample_missed":
        monkeypatch.setattr(topk, "_threshold", lambda w, a, target: torch.full((1,), 1e30, device=w.device))
    else:
        monkeypatch.setattr(topk, "_CAPACITY_FACTOR", 0)
    weight, acc = make_case(12, device, ties=True)
    values, flat = importance_topk_triton(weight, acc, 6)
    exp_values, exp_flat, _ = sorted_reference(weight, acc, 6)
    assert torch.equal(flat.cpu(), exp_flat) and torch.equal(values.cpu(), exp_values)


def test_triton_bf16_weight_and_large_k(device):  # noqa: F811
    weight, acc = make_case(5, device, wdtype=torch.bfloat16)
    for k in (5, weight.numel() // 3):  # the second keeps everything: no threshold
        values, flat = importance_topk_triton(weight, acc, k)
        exp_values, _, imp = sorted_reference(weight, acc, k)
        assert torch.equal(values.cpu(), exp_values)
        assert torch.equal(imp[flat.cpu()], values.cpu())
        assert len(set(flat.tolist())) == k


def test_empty_cases(device):  # noqa: F811
    weight, acc = make_case(6, device)
    for fn in (importance_topk_triton, importance_topk_ref):
        v, i = fn(weight, acc, 0)
        assert v.numel() == 0 and i.numel() == 0 and i.dtype == torch.int64
        v, i = fn(weight, torch.zeros_like(acc), 5)  # G_W all zero: no candidates
        assert v.numel() == 0 and i.numel() == 0
    v, i = importance_topk_ref(weight, acc, weight.numel() + 10)
    assert i.numel() == weight.numel()


@pytest.mark.parametrize("ties", [False, True])
def test_torch_path_allowing_ties(ties):
    weight, acc = make_case(7, "cpu", ties=ties)
    k = 23
    values, flat = dispatch.importance_topk(weight, acc.double(), k)  # auto on CPU -> torch
    exp_values, _, imp = sorted_reference(weight, acc, k)
    assert torch.equal(values.float(), exp_values)
    assert torch.equal(imp[flat], values.float()), "each index must carry its reported importance"
    assert len(set(flat.tolist())) == k


def test_bad_inputs():
    with pytest.raises(ValueError, match="one shape"):
        importance_topk_ref(torch.randn(3, 4), torch.rand(4, 3), 2)
    with pytest.raises(ValueError, match="k"):
        importance_topk_ref(torch.randn(3, 4), torch.rand(3, 4), -1)
