"""Token pooling fused with per-class sum/count accumulation (X-Boundary / TELLME centroids).

For each row b of a block output ``hidden`` (B, T, D) with token mask m (B, T):

    mean: p_b = sum_t m_bt h_bt / max(sum_t m_bt, 1e-9)
    sum:  p_b = sum_t m_bt h_bt
    last: p_b = h_{b, t*} with t* the last position where m_bt != 0 (left or right padding)

then ``sums[labels[b]] += p_b`` and ``counts[labels[b]] += 1`` and, when ``sq_sums`` (K,) is given,
``sq_sums[labels[b]] += ||p_b||^2`` (the second moment a within-class spread needs; squared in the
accumulator's dtype). Rows with a negative label
and rows with no valid token contribute nothing and are not counted (a zero vector would
bias the centroid). The Triton kernel reads ``hidden`` in place (any strides, bf16/fp16/fp32),
accumulates in fp32 and adds into the fp32/fp64 accumulators with atomics, so one call
never materialises the pooled (B, D) matrix.
"""

from __future__ import annotations

import torch

from .utils import (
    as_mask_int,
    block_size,
    cdiv,
    check_accumulator,
    check_float_input,
    check_labels,
    interpreting,
    lazy_jit,
    sm_count,
    tl,
)

POOLINGS = {"mean": 0, "sum": 1, "last": 2}

# CUDA launch parameters (largest D and T blocks, warps, programs aimed at per SM); the interpreter
# uses small blocks. ``benchmarks/kernels.py --sweep`` times alternatives on a GPU.
CUDA_LAUNCH = {"block_d": 128, "block_t": 64, "num_warps": 4, "programs_per_sm": 4}


@lazy_jit
def _pooled_class_sum_kernel(
    hidden_ptr, mask_ptr, labels_ptr, sums_ptr, counts_ptr, sq_ptr,
    stride_h_b, stride_h_t, stride_h_d, stride_m_b, stride_m_t,
    T, D, K, T_PER_SPLIT,
    POOLING: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_SQ: tl.constexpr,
):  # fmt: skip
    """Program (b, d-block, t-split): p = pool(hidden[b, t-split, d-block]); atomically add to sums[labels[b]].

    HAS_SQ (launched with one t-split, so a program holds its d-block of p whole): also adds the block's
    sum of p_d^2 to sq_sums[labels[b]]."""
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_t = tl.program_id(2)
    label = tl.load(labels_ptr + pid_b)
    row_h = hidden_ptr + pid_b.to(tl.int64) * stride_h_b
    row_m = mask_ptr + pid_b.to(tl.int64) * stride_m_b
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    col_off = offs_d.to(tl.int64) * stride_h_d
    t_end = tl.where((label >= 0) & (label < K), T, 0)  # ignored rows (no class) read nothing

    # Valid tokens of the whole row (the mean's denominator) and the last valid position.
    n_valid = tl.zeros([BLOCK_T], dtype=tl.float32)
    last_t = tl.full([BLOCK_T], -1, dtype=tl.int32)
    if HAS_MASK:
        for t0 in range(0, t_end, BLOCK_T):
            offs_t = t0 + tl.arange(0, BLOCK_T)
            m = tl.load(row_m + offs_t.to(tl.int64) * stride_m_t, mask=offs_t < T, other=0)
            keep = m != 0
            n_valid += keep.to(tl.float32)
            last_t = tl.maximum(last_t, tl.where(keep, offs_t, -1))
        cnt = tl.sum(n_valid, axis=0)
        last = tl.max(last_t, axis=0)
    else:
        cnt = t_end.to(tl.float32)
        last = t_end - 1

    if POOLING == 2:
        has_last = offs_d < tl.where(last >= 0, D, 0)
        h = tl.load(row_h + last.to(tl.int64) * stride_h_t + col_off, mask=has_last, other=0.0)
        acc = h.to(tl.float32)
    else:
        # A (BLOCK_T, BLOCK_D) running sum: each thread adds its own elements in the loop, and the
        # cross-thread reduction over tokens happens once, after it (not once per tile).
        tile = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)
        t_lo = pid_t * T_PER_SPLIT
        t_hi = tl.minimum(t_lo + T_PER_SPLIT, t_end)
        for t0 in range(t_lo, t_hi, BLOCK_T):
            offs_t = t0 + tl.arange(0, BLOCK_T)
            keep = offs_t < t_hi
            if HAS_MASK:
                m = tl.load(row_m + offs_t.to(tl.int64) * stride_m_t, mask=keep, other=0)
                keep = keep & (m != 0)
            h = tl.load(
                row_h + offs_t.to(tl.int64)[:, None] * stride_h_t + col_off[None, :],
                mask=keep[:, None] & d_ok[None, :],
                other=0.0,
            )
            tile += h.to(tl.float32)
        acc = tl.sum(tile, axis=0)
        if POOLING == 0:
            acc = acc / tl.maximum(cnt, 1e-9)

    ok = (label >= 0) & (label < K) & (cnt > 0)
    safe_label = tl.where(ok, label, 0).to(tl.int64)
    d_ok = offs_d < tl.where(ok, D, 0)  # (a vector & scalar mask trips the interpreter's atomics)
    tl.atomic_add(sums_ptr + safe_label * D + offs_d, acc.to(sums_ptr.dtype.element_ty), mask=d_ok)
    first = (pid_d == 0) & (pid_t == 0)
    one = (cnt > 0).to(counts_ptr.dtype.element_ty)
    tl.atomic_add(counts_ptr + safe_label, one, mask=ok & first)
    if HAS_SQ:
        a = tl.where(d_ok, acc, 0.0).to(sq_ptr.dtype.element_ty)
        tl.atomic_add(sq_ptr + safe_label, tl.sum(a * a, axis=0), mask=ok)


def _check(hidden, mask, labels, sums, counts, pooling, sq_sums=None) -> None:
    check_float_input("hidden", hidden, 3)
    B, T, D = hidden.shape
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: expected one of {sorted(POOLINGS)}, got {pooling!r}")
    if mask is not None and tuple(mask.shape) != (B, T):
        raise ValueError(f"mask: expected shape {(B, T)} like hidden {tuple(hidden.shape)}, got {tuple(mask.shape)}")
    if mask is not None and mask.device != hidden.device:
        raise ValueError(f"mask on {mask.device}, hidden on {hidden.device}")
    if sums.dim() != 2 or sums.shape[1] != D:
        raise ValueError(f"sums: expected shape (K, {D}), got {tuple(sums.shape)}")
    K = sums.shape[0]
    check_accumulator("sums", sums, (K, D), hidden.device)
    if tuple(counts.shape) != (K,) or not counts.is_contiguous() or counts.device != hidden.device:
        raise ValueError(f"counts: expected a contiguous tensor of shape ({K},) on {hidden.device}")
    if counts.dtype not in (torch.int32, torch.int64, torch.float32, torch.float64):
        raise ValueError(f"counts: expected int32/int64/float32/float64, got {counts.dtype}")
    check_labels("labels", labels, B, K)
    if sq_sums is not None and (tuple(sq_sums.shape) != (K,) or not sq_sums.is_contiguous() or sq_sums.device
                                != hidden.device or sq_sums.dtype not in (torch.float32, torch.float64)):
        raise ValueError(f"sq_sums: expected a contiguous float32/float64 tensor of shape ({K},) on {hidden.device}")


def pooled_class_sum_triton(hidden, mask, labels, sums, counts, pooling: str = "mean", sq_sums=None) -> None:
    """Triton path of :func:`deepsight.kernels.dispatch.pooled_class_sum_`."""
    _check(hidden, mask, labels, sums, counts, pooling, sq_sums)
    B, T, D = hidden.shape
    if B == 0 or T == 0 or D == 0:
        return
    labels = labels.to(device=hidden.device, dtype=torch.int64).contiguous()
    interp = interpreting()
    BLOCK_D = block_size(D, lo=16, hi=128 if interp else CUDA_LAUNCH["block_d"])
    BLOCK_T = block_size(T, lo=2, hi=4 if interp else CUDA_LAUNCH["block_t"])
    n_d = cdiv(D, BLOCK_D)
    # Split long sequences across programs so small batches still fill the GPU.
    n_split = 1
    if POOLINGS[pooling] != 2 and sq_sums is None:  # a squared norm needs each row's sum whole
        if hidden.is_cuda:
            target = CUDA_LAUNCH["programs_per_sm"] * sm_count(hidden.device)
            n_split = max(1, min(cdiv(target, B * n_d), cdiv(T, 4 * BLOCK_T)))
        else:  # interpreter: still exercise the split path on small inputs
            n_split = min(2, cdiv(T, BLOCK_T))
    t_per_split = cdiv(cdiv(T, n_split), BLOCK_T) * BLOCK_T
    n_split = cdiv(T, t_per_split)
    m = as_mask_int(mask) if mask is not None else labels  # placeholder pointer when unused
    stride_m = (m.stride(0), m.stride(1)) if mask is not None else (0, 0)
    _pooled_class_sum_kernel[(B, n_d, n_split)](
        hidden, m, labels, sums, counts, sums if sq_sums is None else sq_sums,
        hidden.stride(0), hidden.stride(1), hidden.stride(2), stride_m[0], stride_m[1],
        T, D, sums.shape[0], t_per_split,
        POOLING=POOLINGS[pooling], HAS_MASK=mask is not None, BLOCK_T=BLOCK_T, BLOCK_D=BLOCK_D,
        HAS_SQ=sq_sums is not None, num_warps=4 if interp else CUDA_LAUNCH["num_warps"],
    )  # fmt: skip


def pooled_class_sum_ref(hidden, mask, labels, sums, counts, pooling: str = "mean", sq_sums=None) -> None:
    """Plain-torch path and reference. Pools like the kernel (float32 for 16/32-bit states, float64 for
    float64 ones) and adds in the accumulators' dtype; ``sq_sums`` gets ||p||^2 in that dtype."""
    _check(hidden, mask, labels, sums, counts, pooling, sq_sums)
    B, T, D = hidden.shape
    if B == 0:
        return
    h = hidden.to(torch.promote_types(hidden.dtype, torch.float32))  # (B, T, D)
    valid = torch.ones(B, T, dtype=torch.bool, device=h.device) if mask is None else mask != 0
    n_valid = valid.sum(1)  # (B,)
    if pooling == "last":
        pos = torch.arange(T, device=h.device).expand(B, T)
        last = torch.where(valid, pos, -1).amax(1) if T else torch.full((B,), -1, device=h.device)
        pooled = h[torch.arange(B, device=h.device), last.clamp_min(0)]  # (B, D)
    else:
        w = valid.to(h.dtype)  # (B, T)
        pooled = torch.einsum("btd,bt->bd", h, w)  # (B, D)
        if pooling == "mean":
            pooled = pooled / w.sum(1, keepdim=True).clamp_min(1e-9)
    keep = (labels >= 0) & (n_valid > 0)
    lab = labels[keep].to(torch.int64)
    p = pooled[keep].to(sums.dtype)
    sums.index_add_(0, lab, p)
    counts.index_add_(0, lab, torch.ones(lab.shape[0], dtype=counts.dtype, device=counts.device))
    if sq_sums is not None:
        sq = p.to(sq_sums.dtype)
        sq_sums.index_add_(0, lab, (sq * sq).sum(1))
