"""Expert-routing statistics (counts, gate sums, router entropy per class x expert): Triton and torch
paths against a float64 token-by-token loop; odd shapes, empty classes, top-1/2/8 routing, sentinels."""

from __future__ import annotations

import math

import pytest
import torch
from _kernels_common import assert_close64, device, odd_size, poison_like, randn  # noqa: F401
from deepsight.kernels import dispatch
from deepsight.kernels.expert_routing import expert_routing_ref, expert_routing_triton


def loop_reference(idx, w, logits, cls, C, E, score):
    """Float64, one token at a time, entropy written out as -sum p log p."""
    out = torch.zeros(3, C, E + 1, dtype=torch.float64)
    for n in range(idx.shape[0]):
        c = int(cls[n])
        if not 0 <= c < C:
            continue
        h = 0.0
        if logits is not None:
            x = [float(v) for v in logits[n].double()]
            if score == "softmax":
                m = max(x)
                ex = [math.exp(v - m) for v in x]
            else:
                ex = [1.0 / (1.0 + math.exp(-v)) if v > -math.inf else 0.0 for v in x]
            s = sum(ex)
            h = -sum((q / s) * math.log(q / s) for q in ex if q > 0)
        out[0, c, E] += 1
        out[2, c, E] += h
        for j in range(idx.shape[1]):
            e, g = int(idx[n, j]), float(w[n, j].double())
            out[1, c, E] += g
            if 0 <= e < E:
                out[0, c, e] += 1
                out[1, c, e] += g
                out[2, c, e] += h
    return out


def make_case(seed, N, E, K, C, dtype, dev, sentinel=False, masked=False):
    gen = torch.Generator().manual_seed(seed)
    logits = randn(gen, N, E, dtype=dtype, device="cpu", scale=2.0)
    if masked and E > K + 1:
        logits[:, 1] = -math.inf  # an ablated expert
    top = torch.topk(logits.float(), K, dim=-1)
    idx = top.indices
    if sentinel and N:
        idx[::3, -1] = E  # "no expert" sentinel id: not a selection
    w = torch.softmax(top.values, -1).to(dtype)
    cls = torch.randint(-1, C - 1, (N,), generator=gen)  # the last class stays empty; -1 = not counted
    return idx.to(dev), w.to(dev), logits.to(dev), cls.to(dev)


CASES = [  # (N, E, K, C)
    (37, 8, 2, 3),
    (123, 13, 1, 4),
    (61, 64, 8, 3),
    (5, 6, 2, 2),
]


@pytest.mark.parametrize("score", ["softmax", "sigmoid"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", ["triton", "torch"])
def test_matches_float64_loop(device, impl, case, score):  # noqa: F811
    N, E, K, C = case
    idx, w, logits, cls = make_case(sum(case), N, E, K, C, torch.float32, device, sentinel=True, masked=True)
    gen = torch.Generator().manual_seed(7)
    acc = poison_like((3, C, E + 1), torch.float32, device, gen)
    acc0 = acc.clone()
    fn = expert_routing_triton if impl == "triton" else expert_routing_ref
    fn(idx, w, logits, cls, acc, score)
    exp = loop_reference(idx.cpu(), w.cpu(), logits.cpu(), cls.cpu(), C, E, score)
    assert_close64((acc - acc0).cpu(), exp, rel=1e-5, what=f"{impl} {case} {score}")
    assert torch.equal(acc[:, C - 1], acc0[:, C - 1]), "the empty class was touched"


@pytest.mark.parametrize("K", [1, 2, 8])
def test_bf16_inputs_and_no_logits(device, K):  # noqa: F811
    N, E, C = 45, 17, 3
    idx, w, logits, cls = make_case(K, N, E, K, C, torch.bfloat16, device)
    acc = torch.zeros(3, C, E + 1, device=device)
    expert_routing_triton(idx, w, logits, cls, acc, "softmax")
    exp = loop_reference(idx.cpu(), w.cpu(), logits.cpu(), cls.cpu(), C, E, "softmax")
    assert_close64(acc.cpu(), exp, rel=1e-4, what="bf16")
    acc2 = torch.zeros(3, C, E + 1, device=device)
    expert_routing_triton(idx, w, None, cls, acc2, "softmax")
    assert_close64(acc2[:2].cpu(), exp[:2], rel=1e-4, what="no logits")
    assert not acc2[2].any(), "entropy without logits must stay 0"


def test_strided_inputs_and_float64_accumulator(device):  # noqa: F811
    N, E, K, C = 29, 11, 2, 3
    idx, w, logits, cls = make_case(3, N, E, K, C, torch.float32, device)
    wide = torch.zeros(N, 2 * E, device=device)
    wide[:, ::2] = logits
    idx_t = idx.T.contiguous().T  # column-major (N, K)
    acc = torch.zeros(3, C, E + 1, dtype=torch.float64, device=device)
    expert_routing_triton(idx_t, w, wide[:, ::2], cls, acc, "sigmoid")
    exp = loop_reference(idx.cpu(), w.cpu(), logits.cpu(), cls.cpu(), C, E, "sigmoid")
    assert_close64(acc.cpu(), exp, rel=1e-5, what="strided")


def test_empty_input_and_split_batches(device):  # noqa: F811
    N, E, K, C = 50, 9, 2, 3
    idx, w, logits, cls = make_case(4, N, E, K, C, torch.float32, device)
    one = torch.zeros(3, C, E + 1, device=device)
    expert_routing_triton(idx[:0], w[:0], logits[:0], cls[:0], one, "softmax")
    assert not one.any()
    expert_routing_triton(idx, w, logits, cls, one, "softmax")
    two = torch.zeros_like(one)
    expert_routing_triton(idx[:17], w[:17], logits[:17], cls[:17], two, "softmax")
    expert_routing_triton(idx[17:], w[17:], logits[17:], cls[17:], two, "softmax")
    assert torch.allclose(one, two, rtol=1e-6, atol=1e-5)


def test_dispatch_and_shape_errors(device):  # noqa: F811
    idx, w, logits, cls = make_case(5, 10, 6, 2, 2, torch.float32, "cpu")
    acc = torch.zeros(3, 2, 7)
    dispatch.expert_routing_(idx, w, logits, cls, acc, score="softmax", backend="torch")
    assert acc[0, :, :6].sum() == 2 * (cls >= 0).sum()
    with pytest.raises(ValueError, match="logits"):
        expert_routing_ref(idx, w, logits[:, :5], cls, acc)
    with pytest.raises(ValueError, match="score"):
        expert_routing_ref(idx, w, logits, cls, acc, score="relu")
    with pytest.raises(ValueError, match="acc"):
        expert_routing_ref(idx, w, logits, cls, torch.zeros(2, 2, 7))
