"""Pooling fused with per-class sums: Triton kernel and torch path against a float64 loop."""

from __future__ import annotations

import pytest
import torch
from _kernels_common import DTYPES, assert_close64, device, odd_size, poison_like, randn  # noqa: F401
from deepsight.kernels import dispatch
from deepsight.kernels.pool import pooled_class_sum_ref, pooled_class_sum_triton


def direct_pool(hidden, mask, labels, K, pooling):
    """Float64 loop over rows: the textbook definition, nothing shared with the kernels."""
    B, T, D = hidden.shape
    sums = torch.zeros(K, D, dtype=torch.float64)
    counts = torch.zeros(K, dtype=torch.float64)
    h = hidden.detach().cpu().double()
    m = torch.ones(B, T, dtype=torch.bool) if mask is None else mask.cpu() != 0
    for b in range(B):
        valid = [t for t in range(T) if m[b, t]]
        if labels[b] < 0 or not valid:
            continue
        if pooling == "last":
            p = h[b, valid[-1]]
        else:
            p = sum(h[b, t] for t in valid)
            if pooling == "mean":
                p = p / max(len(valid), 1e-9)
        sums[labels[b]] += p
        counts[labels[b]] += 1
    return sums, counts


def make_case(seed: int, dtype, dev, T: int | None = None, mask_kind: str = "random"):
    gen = torch.Generator().manual_seed(seed)
    B = odd_size(gen, 3, 7, avoid=4)
    T = T if T is not None else odd_size(gen, 2, 11, avoid=4)
    D = odd_size(gen, 17, 53)
    K = 4  # labels drawn from {-1, 0, 1, 2}: class 3 stays empty
    big = randn(gen, 2 * B, T, D, dtype=dtype, device=dev)
    hidden = big[::2]  # (B, T, D), non-contiguous in the batch dim
    labels = torch.randint(-1, 3, (B,), generator=gen)
    labels[0] = 0
    if mask_kind == "none":
        mask = None
    else:
        mask = torch.rand(B, T, generator=gen) > 0.4
        mask[0, 0] = True
        if B > 2:
            mask[1] = False  # a row with no valid token
        if mask_kind == "left":  # left padding: valid tokens at the end of each row
            n = mask.sum(1, keepdim=True)
            mask = torch.arange(T)[None, :] >= T - n
        mask = mask.to(dev)
    return hidden, mask, labels.to(dev), K


@pytest.mark.parametrize("pooling", ["mean", "sum", "last"])
@pytest.mark.parametrize("dtype", DTYPES + [torch.float16])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("mask_kind", ["random", "left", "none"])
def test_triton_matches_float64(device, pooling, dtype, seed, mask_kind):  # noqa: F811
    hidden, mask, labels, K = make_case(seed, dtype, device, mask_kind=mask_kind)
    gen = torch.Generator().manual_seed(seed + 100)
    D = hidden.shape[2]
    sums = poison_like((K, D), torch.float32, device, gen)
    counts = poison_like((K,), torch.float32, device, gen).round()
    sums0, counts0 = sums.clone(), counts.clone()
    pooled_class_sum_triton(hidden, mask, labels, sums, counts, pooling)
    exp_sums, exp_counts = direct_pool(hidden, mask, labels.cpu(), K, pooling)
    assert_close64(sums - sums0, exp_sums, what="sums")
    assert torch.equal((counts - counts0).cpu().double(), exp_counts)
    assert torch.equal(sums[3], sums0[3]) and counts[3] == counts0[3], "the empty class was touched"


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_single_token_sequences(device, pooling, dtype):  # noqa: F811
    hidden, mask, labels, K = make_case(7, dtype, device, T=1)
    sums = torch.zeros(K, hidden.shape[2], device=device)
    counts = torch.zeros(K, device=device)
    pooled_class_sum_triton(hidden, mask, labels, sums, counts, pooling)
    exp_sums, exp_counts = direct_pool(hidden, mask, labels.cpu(), K, pooling)
    assert_close64(sums, exp_sums, what="sums")
    assert torch.equal(counts.cpu().double(), exp_counts)


def test_fp64_accumulators_and_int_mask(device):  # noqa: F811
    hidden, mask, labels, K = make_case(3, torch.float32, device)
    sums = torch.zeros(K, hidden.shape[2], dtype=torch.float64, device=device)
    counts = torch.zeros(K, dtype=torch.int64, device=device)
    pooled_class_sum_triton(hidden, mask.to(torch.int32), labels, sums, counts, "mean")
    exp_sums, exp_counts = direct_pool(hidden, mask, labels.cpu(), K, "mean")
    assert_close64(sums, exp_sums, what="sums")
    assert torch.equal(counts.cpu().double(), exp_counts)


@pytest.mark.parametrize("pooling", ["mean", "sum", "last"])
@pytest.mark.parametrize("mask_kind", ["random", "left", "none"])
def test_torch_path_matches_float64(pooling, mask_kind):
    hidden, mask, labels, K = make_case(5, torch.float64, "cpu", mask_kind=mask_kind)
    sums = torch.zeros(K, hidden.shape[2], dtype=torch.float64)
    counts = torch.zeros(K, dtype=torch.float64)
    pooled_class_sum_ref(hidden, mask, labels, sums, counts, pooling)
    exp_sums, exp_counts = direct_pool(hidden, mask, labels, K, pooling)
    assert_close64(sums, exp_sums, rel=1e-12, what="sums")
    assert torch.equal(counts, exp_counts)


def test_dispatch_auto_uses_torch_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    hidden, mask, labels, K = make_case(4, torch.bfloat16, "cpu")
    sums = torch.zeros(K, hidden.shape[2])
    counts = torch.zeros(K)
    assert dispatch.resolve_backend("auto", (hidden,), (sums,)) == "torch"
    dispatch.pooled_class_sum_(hidden, mask, labels, sums, counts)
    exp_sums, _ = direct_pool(hidden, mask, labels, K, "mean")
    assert_close64(sums, exp_sums, what="sums")
    with pytest.raises(RuntimeError, match="CUDA"):
        dispatch.pooled_class_sum_(hidden, mask, labels, sums, counts, backend="triton")


def test_bad_inputs_name_the_argument():
    hidden = torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match="pooling"):
        pooled_class_sum_ref(hidden, None, torch.tensor([0, 1]), torch.zeros(2, 5), torch.zeros(2), "max")
    with pytest.raises(ValueError, match="largest label 2"):
        pooled_class_sum_ref(hidden, None, torch.tensor([0, 2]), torch.zeros(2, 5), torch.zeros(2))
    with pytest.raises(ValueError, match="mask"):
        pooled_class_sum_ref(hidden, torch.ones(2, 4), torch.tensor([0, 1]), torch.zeros(2, 5), torch.zeros(2))
    with pytest.raises(ValueError, match="sums"):
        pooled_class_sum_ref(hidden, None, torch.tensor([0, 1]), torch.zeros(2, 5, dtype=torch.int32), torch.zeros(2))


def test_out_of_range_labels_are_ignored_by_the_kernel(device, monkeypatch):  # noqa: F811
    """CUDA labels are not range-checked (that would sync): the kernel must skip labels >= K, not write past sums."""
    from deepsight.kernels import pool

    monkeypatch.setattr(pool, "check_labels", lambda *args: None)  # what happens for CUDA labels
    hidden, mask, labels, K = make_case(8, torch.float32, device)
    bad = labels.clone()
    bad[0] = K  # one past the last class
    big_sums = torch.zeros(K + 1, hidden.shape[2], device=device)  # row K: guard against a stray write
    big_counts = torch.zeros(K + 1, device=device)
    pool.pooled_class_sum_triton(hidden, mask, bad, big_sums[:K], big_counts[:K], "mean")
    exp_sums, exp_counts = direct_pool(hidden, mask, torch.where(bad.cpu() >= K, -1, bad.cpu()), K, "mean")
    assert_close64(big_sums[:K], exp_sums, what="sums")
    assert torch.equal(big_counts[:K].cpu().double(), exp_counts)
    assert not big_sums[K].any() and big_counts[K] == 0


def direct_sq_norms(hidden, mask, labels, K, pooling):
    """Float64 per-class sum of ||p_b||^2 of the pooled rows (same loop as direct_pool, row by row)."""
    sq = torch.zeros(K, dtype=torch.float64)
    for b in range(hidden.shape[0]):
        one, _ = direct_pool(hidden[b : b + 1], None if mask is None else mask[b : b + 1], labels[b : b + 1], K,
                             pooling)
        sq += (one * one).sum(1)
    return sq


@pytest.mark.parametrize("pooling", ["mean", "sum", "last"])
@pytest.mark.parametrize("mask_kind", ["random", "left", "none"])
@pytest.mark.parametrize("path", ["triton", "torch"])
def test_squared_norm_sums(device, pooling, mask_kind, path):  # noqa: F811
    dev = device if path == "triton" else "cpu"
    for seed, T in ((11, None), (12, 37)):  # T = 37: several t-blocks (the split is off with sq_sums)
        hidden, mask, labels, K = make_case(seed, torch.float32, dev, T=T, mask_kind=mask_kind)
        sums = torch.zeros(K, hidden.shape[2], dtype=torch.float64, device=dev)
        counts = torch.zeros(K, dtype=torch.float64, device=dev)
        sq = torch.full((K,), 0.5, dtype=torch.float64, device=dev)  # adds onto what is there
        fn = pooled_class_sum_triton if path == "triton" else pooled_class_sum_ref
        fn(hidden, mask, labels, sums, counts, pooling, sq_sums=sq)
        exp_sums, exp_counts = direct_pool(hidden, mask, labels.cpu(), K, pooling)
        exp_sq = direct_sq_norms(hidden, mask, labels.cpu(), K, pooling) + 0.5
        assert_close64(sums, exp_sums, what="sums")
        assert torch.equal(counts.cpu(), exp_counts)
        assert_close64(sq, exp_sq, what="sq_sums")
    with pytest.raises(ValueError, match="sq_sums"):
        fn(hidden, mask, labels, sums, counts, pooling, sq_sums=torch.zeros(K + 1, dtype=torch.float64, device=dev))
