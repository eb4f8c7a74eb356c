"""Gram accumulation G += X^T X, optionally per class (TELLME coding rates, erank).

Only the upper-triangular tiles (i <= j) are computed: each program owns one tile
pair, accumulates sum_r x_ri x_rj in fp32 with ``tl.dot`` (tensor cores on GPU for
bf16/fp16 inputs; fp32 inputs use IEEE fp32 products unless ``allow_tf32``), then adds
the tile to G[i, j] and its transpose to G[j, i]. So the kernel does half the flops of
a full product. The result is exactly (bitwise) symmetric by construction: a diagonal
tile is symmetrised in registers as (A + A^T) / 2 before it is added (``tl.dot`` sums
entry (i, j) and entry (j, i) in whatever order the hardware or BLAS picks, so A alone
can differ from A^T in the last bits), an off-diagonal tile adds the very same values to
G[i, j] and G[j, i], and when row ranges are split across programs (whose atomics land in
any order) the launcher copies the upper triangle onto the lower one afterwards. The
accumulator is assumed symmetric on entry, as every Gram is.

Per-class Grams (``labels`` given, K classes) sort the row indices by label once and
run one program row per class over that class's row segment; rows with a negative
label are left out of the class Grams but still enter the total Gram. Long row ranges
are split across programs (split-K) that add their partial tiles with atomics.
"""

from __future__ import annotations

import functools

import torch

from .utils import (
    FLOAT_INPUTS,
    cdiv,
    check_accumulator,
    check_float_input,
    check_labels,
    interpreting,
    lazy_jit,
    sm_count,
    tl,
)


@lazy_jit
def _gram_kernel(
    x_ptr, rows_ptr, seg_ptr, tiles_ptr, out_ptr,
    stride_x_n, stride_x_d, stride_out_k,
    D, ROWS_PER_SPLIT,
    HAS_ROWS: tl.constexpr, UPCAST: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program (tile, segment, split): G_seg[I, J] += X[rows, I]^T X[rows, J]; G_seg[J, I] += its transpose."""
    pid_tile = tl.program_id(0)
    pid_seg = tl.program_id(1)
    pid_split = tl.program_id(2)
    ti = tl.load(tiles_ptr + 2 * pid_tile)
    tj = tl.load(tiles_ptr + 2 * pid_tile + 1)
    seg_start = tl.load(seg_ptr + pid_seg)
    seg_end = tl.load(seg_ptr + pid_seg + 1)
    start = seg_start + pid_split * ROWS_PER_SPLIT
    end = tl.minimum(start + ROWS_PER_SPLIT, seg_end)
    offs_i = ti * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_j = tj * BLOCK_M + tl.arange(0, BLOCK_M)
    i_ok = offs_i < D
    j_ok = offs_j < D
    col_i = offs_i.to(tl.int64) * stride_x_d
    col_j = offs_j.to(tl.int64) * stride_x_d

    acc = tl.zeros([BLOCK_M, BLOCK_M], dtype=tl.float32)
    for r0 in range(start, end, BLOCK_K):
        offs_r = r0 + tl.arange(0, BLOCK_K)
        r_ok = offs_r < end
        if HAS_ROWS:
            rows = tl.load(rows_ptr + offs_r, mask=r_ok, other=0).to(tl.int64)
        else:
            rows = offs_r.to(tl.int64)
        row_off = rows[:, None] * stride_x_n
        a = tl.load(x_ptr + row_off + col_i[None, :], mask=r_ok[:, None] & i_ok[None, :], other=0.0)  # (BK, BM)
        b = tl.load(x_ptr + row_off + col_j[None, :], mask=r_ok[:, None] & j_ok[None, :], other=0.0)  # (BK, BM)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(tl.trans(a), b, acc, input_precision=INPUT_PRECISION)

    if end > start:  # programs past their segment's end add nothing
        base = out_ptr + pid_seg.to(tl.int64) * stride_out_k
        rows_i = offs_i.to(tl.int64)[:, None] * D
        rows_j = offs_j.to(tl.int64)[:, None] * D
        if ti == tj:  # entries (i, j) and (j, i) may have been summed in different orders
            acc = (acc + tl.trans(acc)) * 0.5
        tile = acc.to(out_ptr.dtype.element_ty)
        tl.atomic_add(base + rows_i + offs_j[None, :], tile, mask=i_ok[:, None] & j_ok[None, :])
        if ti != tj:  # mirror tile: G[J, I] += acc^T
            acc_t = tl.trans(acc).to(out_ptr.dtype.element_ty)
            tl.atomic_add(base + rows_j + offs_i[None, :], acc_t, mask=j_ok[:, None] & i_ok[None, :])


@functools.lru_cache(maxsize=64)
def _upper_tiles(n_tiles: int, device: torch.device) -> torch.Tensor:
    """(n_tiles * (n_tiles + 1) / 2, 2) int32 table of tile pairs (i, j) with i <= j, built on the device."""
    ij = torch.triu_indices(n_tiles, n_tiles, device=device, dtype=torch.int32)  # (2, n_pairs)
    return ij.T.contiguous()


def _check(x, gram, labels, class_grams) -> None:
    check_float_input("x", x, 2)
    N, D = x.shape
    check_accumulator("gram", gram, (D, D), x.device)
    if (labels is None) != (class_grams is None):
        raise ValueError("labels and class_grams must be given together")
    if labels is not None:
        if class_grams.dim() != 3:
            raise ValueError(f"class_grams: expected shape (K, {D}, {D}), got {tuple(class_grams.shape)}")
        K = class_grams.shape[0]
        check_accumulator("class_grams", class_grams, (K, D, D), x.device)
        check_labels("labels", labels, N, K)


# CUDA launch parameters (output tile for D <= 1024 and above, row block, pipeline stages, programs
# aimed at per SM); ``benchmarks/kernels.py --sweep`` times alternatives on a GPU.
CUDA_LAUNCH = {"block_m_small": 64, "block_m_large": 64, "block_k": 64, "num_stages": 3, "programs_per_sm": 4}


def _mirror_upper_(out: torch.Tensor) -> None:
    """Copy the upper triangle of ``out`` ((D, D) or (K, D, D)) onto its lower one, in place and exactly."""
    upper = torch.triu(out)
    out.copy_(upper + torch.triu(out, 1).mT)  # x + 0 == x: no rounding anywhere


def _launch(x, rows, seg, out, n_segments: int, max_rows: int, allow_tf32: bool) -> None:
    """One launch over ``n_segments`` row segments of at most ``max_rows`` rows (an upper bound, no sync)."""
    N, D = x.shape
    interp = interpreting()
    BLOCK_M = 16 if interp else CUDA_LAUNCH["block_m_small" if D <= 1024 else "block_m_large"]
    BLOCK_K = 16 if interp else CUDA_LAUNCH["block_k"]
    n_t = cdiv(D, BLOCK_M)
    tiles = _upper_tiles(n_t, x.device)
    n_split = 1
    if max_rows > 0:
        if x.is_cuda:
            target = CUDA_LAUNCH["programs_per_sm"] * sm_count(x.device)
            n_split = max(1, min(cdiv(target, tiles.shape[0] * n_segments), cdiv(max_rows, 8 * BLOCK_K)))
        else:  # interpreter: exercise the split path on small inputs
            n_split = min(2, cdiv(max_rows, BLOCK_K))
    rows_per_split = cdiv(cdiv(max(max_rows, 1), n_split), BLOCK_K) * BLOCK_K
    upcast = interp or x.dtype == torch.float32
    precision = "tf32" if (allow_tf32 and x.dtype == torch.float32) else "ieee"
    _gram_kernel[(tiles.shape[0], n_segments, n_split)](
        x, rows if rows is not None else seg, seg, tiles, out,
        x.stride(0), x.stride(1), D * D,
        D, rows_per_split,
        HAS_ROWS=rows is not None, UPCAST=upcast, INPUT_PRECISION=precision,
        BLOCK_M=BLOCK_M, BLOCK_K=BLOCK_K,
        num_warps=4 if BLOCK_M <= 64 else 8, num_stages=3 if interp else CUDA_LAUNCH["num_stages"],
    )  # fmt: skip
    if n_split > 1:  # split-K atomics land in any order: G[i, j] and G[j, i] may round apart
        _mirror_upper_(out)


def gram_update_triton(x, gram, labels=None, class_grams=None, allow_tf32: bool = False) -> None:
    """Triton path of :func:`deepsight.kernels.dispatch.gram_update_`."""
    _check(x, gram, labels, class_grams)
    if x.dtype not in FLOAT_INPUTS:
        raise ValueError(f"x: the Triton Gram kernel takes bf16/fp16/fp32 inputs, got {x.dtype}")
    N, D = x.shape
    if N == 0 or D == 0:
        return
    seg = torch.zeros(2, dtype=torch.int64, device=x.device)
    seg[1] = N  # segment [0, N): built on the device (no host-to-device copy, no sync)
    _launch(x, None, seg, gram, 1, N, allow_tf32)
    if labels is not None:
        K = class_grams.shape[0]
        if K == 0:
            return
        lab = labels.to(device=x.device, dtype=torch.int64)
        key = torch.where((lab >= 0) & (lab < K), lab, K)  # (N,) rows of no class -> pseudo-class K, never read
        order = torch.argsort(key, stable=True)  # (N,) row indices grouped by class
        per_class = torch.zeros(K + 1, dtype=torch.int64, device=x.device).scatter_add_(0, key, torch.ones_like(key))
        seg = torch.zeros(K + 1, dtype=torch.int64, device=x.device)
        seg[1:] = torch.cumsum(per_class[:K], 0)  # class k owns order[seg[k]:seg[k + 1]]
        _launch(x, order, seg, class_grams, K, N, allow_tf32)  # N bounds every class: no sync for the sizes


def gram_update_ref(x, gram, labels=None, class_grams=None) -> None:
    """Plain-torch path and reference: the full product in the accumulator's dtype, symmetrised exactly."""
    _check(x, gram, labels, class_grams)
    xf = x.to(gram.dtype)  # (N, D)
    gram += _symmetric_product(xf)
    if labels is not None:
        xc = x.to(class_grams.dtype)
        for k in torch.unique(labels[labels >= 0]).tolist():
            xk = xc[labels == k]  # (N_k, D)
            class_grams[k] += _symmetric_product(xk)


def _symmetric_product(x: torch.Tensor) -> torch.Tensor:
    """x^T x made bitwise symmetric: a BLAS gemm need not sum entries (i, j) and (j, i) alike."""
    p = x.T @ x
    return (p + p.T) * 0.5
