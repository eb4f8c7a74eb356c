"""Joint 2-D histograms of paired coordinates and their plug-in mutual information (MI-Peaks).

Row s pairs x[s, k] with y[s, k] (or y[k] when y is 1-D) over the D coordinates k and adds
one count per pair to ``counts[s, a, b]`` where, with equal-width bins over [lo, hi):

    a = clamp(floor((x - lo_x) * BINS / (hi_x - lo_x)), 0, BINS - 1)   (b likewise for y)

computed in fp32 exactly as written (both backends give the same bins). Values outside the
range land in the edge bins; a degenerate range (hi <= lo) puts everything in bin 0; NaN
inputs give undefined bins. A Triton program streams one row (or, when there are too few rows
to fill the GPU, a chunk of one), bins each block of coordinates and reduces it with
``tl.histogram`` into a histogram held in registers (masked lanes go to slot 0 and are
subtracted at the end), then adds that to ``counts`` once: a plain read-add-write when it owns the row, atomics on
the non-zero slots when the row is split.

``histogram_mutual_information`` turns counts into MI = sum_ab p_ab ln(p_ab / (p_a p_b))
(nats, float64, 0 for empty rows); that reduction is small and stays in torch.
"""

from __future__ import annotations

import warnings

import torch

from .utils import cdiv, check_float_input, interpreting, lazy_jit, next_pow2, sm_count, tl

COUNT_DTYPES = (torch.int32, torch.int64, torch.float32, torch.float64)
# CUDA launch parameters (largest D block, warps, rows aimed at per SM before rows are split);
# ``benchmarks/kernels.py --sweep`` times alternatives on a GPU.
CUDA_LAUNCH = {"block_d": 4096, "num_warps": 4, "rows_per_sm": 2}
_local_hist_ok = [True]  # flipped once if this Triton build cannot compile tl.histogram


@lazy_jit
def _joint_histogram_kernel(
    x_ptr, y_ptr, lo_x_ptr, scale_x_ptr, lo_y_ptr, scale_y_ptr, counts_ptr,
    stride_x_s, stride_x_d, stride_y_s, stride_y_d,
    D, D_PER_CHUNK,
    BINS: tl.constexpr, NUM_SLOTS: tl.constexpr, BLOCK_D: tl.constexpr,
    LOCAL_HIST: tl.constexpr, EXCLUSIVE: tl.constexpr,
):  # fmt: skip
    """Program (s, chunk): counts[s, bin(x[s, k]), bin(y[s, k])] += 1 for k in the chunk.

    LOCAL_HIST: a block histogram in registers, added to counts once (plain load/add/store when the
    program owns the whole row, EXCLUSIVE; else atomics); otherwise one atomic per pair.
    """
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    x_row = x_ptr + pid_s.to(tl.int64) * stride_x_s
    y_row = y_ptr + pid_s.to(tl.int64) * stride_y_s
    row = counts_ptr + pid_s.to(tl.int64) * (BINS * BINS)
    lo_x = tl.load(lo_x_ptr + pid_s)
    lo_y = tl.load(lo_y_ptr + pid_s)
    scale_x = tl.load(scale_x_ptr + pid_s)
    scale_y = tl.load(scale_y_ptr + pid_s)
    d_lo = pid_c * D_PER_CHUNK
    d_hi = tl.minimum(d_lo + D_PER_CHUNK, D)
    local = tl.zeros([NUM_SLOTS], dtype=tl.int32)
    n_tail = tl.full([], 0, tl.int32)  # masked-off lanes counted into slot 0, taken out at the end
    for d0 in range(d_lo, d_hi, BLOCK_D):
        offs = d0 + tl.arange(0, BLOCK_D)
        ok = offs < d_hi
        offs64 = offs.to(tl.int64)
        x = tl.load(x_row + offs64 * stride_x_d, mask=ok, other=0.0).to(tl.float32)
        y = tl.load(y_row + offs64 * stride_y_d, mask=ok, other=0.0).to(tl.float32)
        fx = tl.minimum(tl.maximum(tl.floor((x - lo_x) * scale_x), 0.0), BINS - 1.0)
        fy = tl.minimum(tl.maximum(tl.floor((y - lo_y) * scale_y), 0.0), BINS - 1.0)
        slot = fx.to(tl.int32) * BINS + fy.to(tl.int32)
        if LOCAL_HIST:
            local += tl.histogram(tl.where(ok, slot, 0), NUM_SLOTS)
            n_tail += BLOCK_D - tl.sum(ok.to(tl.int32), axis=0)
        else:  # one atomic per pair (fallback where tl.histogram does not compile)
            tl.atomic_add(row + slot, ok.to(counts_ptr.dtype.element_ty), mask=ok)
    if LOCAL_HIST:
        offs_slot = tl.arange(0, NUM_SLOTS)
        local -= tl.where(offs_slot == 0, n_tail, 0)
        if EXCLUSIVE:
            real = offs_slot < BINS * BINS
            old = tl.load(row + offs_slot, mask=real, other=0)
            tl.store(row + offs_slot, old + local.to(counts_ptr.dtype.element_ty), mask=real)
        else:
            keep = (offs_slot < BINS * BINS) & (local > 0)
            tl.atomic_add(row + offs_slot, local.to(counts_ptr.dtype.element_ty), mask=keep)


def _as_row_param(v, S: int, device: torch.device, name: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):  # a Python number: filled on the device (no host-to-device copy)
        return torch.full((S,), float(v), dtype=torch.float32, device=device)
    t = v.to(device=device, dtype=torch.float32)
    if t.dim() == 0:
        return t.expand(S)
    if tuple(t.shape) != (S,):
        raise ValueError(f"{name}: expected a float or a tensor of shape ({S},), got shape {tuple(t.shape)}")
    return t


def _bin_params(lo, hi, S: int, bins: int, device: torch.device, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 (lo, scale) per row with scale = bins / (hi - lo), or 0 for a degenerate range."""
    lo_t = _as_row_param(lo, S, device, f"lo_{name}")
    hi_t = _as_row_param(hi, S, device, f"hi_{name}")
    width = hi_t - lo_t
    scale = torch.where(width > 0, bins / torch.where(width > 0, width, 1.0), 0.0).to(torch.float32)
    return lo_t.contiguous(), scale.contiguous()


def _check(x, y, counts) -> tuple[int, torch.Tensor]:
    check_float_input("x", x, 2)
    S, D = x.shape
    if y.dim() == 1:
        if y.shape[0] != D:
            raise ValueError(f"y: expected shape ({D},) or ({S}, {D}), got {tuple(y.shape)}")
        y2 = y[None, :].expand(S, D)  # (S, D), stride 0 over rows
    else:
        check_float_input("y", y, 2)
        if tuple(y.shape) != (S, D):
            raise ValueError(f"y: expected shape ({D},) or ({S}, {D}), got {tuple(y.shape)}")
        y2 = y
    if counts.dim() != 3 or counts.shape[0] != S or counts.shape[1] != counts.shape[2]:
        raise ValueError(f"counts: expected shape ({S}, BINS, BINS), got {tuple(counts.shape)}")
    if counts.dtype not in COUNT_DTYPES or not counts.is_contiguous() or counts.device != x.device:
        raise ValueError(f"counts: expected a contiguous int32/int64/float32/float64 tensor on {x.device}")
    if counts.shape[1] < 1:
        raise ValueError("counts: need at least one bin")
    return counts.shape[1], y2


def prepare(x, y, counts, lo_x, hi_x, lo_y, hi_y) -> tuple | None:
    """Checked arguments of every joint-histogram path: (bins, y as (S, D), lo_x, scale_x, lo_y, scale_y)
    with per-row float32 bin parameters, or None when there is nothing to count (S or D is 0)."""
    bins, y2 = _check(x, y, counts)
    S, D = x.shape
    if S == 0 or D == 0:
        return None
    lx, sx = _bin_params(lo_x, hi_x, S, bins, x.device, "x")
    ly, sy = _bin_params(lo_y, hi_y, S, bins, x.device, "y")
    return bins, y2, lx, sx, ly, sy


def joint_histogram_triton(x, y, counts, lo_x, hi_x, lo_y, hi_y) -> None:
    """Triton path of :func:`deepsight.kernels.dispatch.joint_histogram_`."""
    ready = prepare(x, y, counts, lo_x, hi_x, lo_y, hi_y)
    if ready is None:
        return
    bins, y2, lx, sx, ly, sy = ready
    S, D = x.shape
    interp = interpreting()
    BLOCK_D = max(16, min(next_pow2(D), 32 if interp else CUDA_LAUNCH["block_d"]))
    n_blocks = cdiv(D, BLOCK_D)
    if x.is_cuda:  # split rows only when there are too few rows to fill the GPU
        rows = CUDA_LAUNCH["rows_per_sm"] * sm_count(x.device)
        n_chunks = 1 if S >= rows else min(n_blocks, cdiv(rows, S))
    else:  # interpreter: odd S owns whole rows, even S splits them, so tests see both variants
        n_chunks = 1 if S % 2 else min(2, n_blocks)
    d_per_chunk = cdiv(n_blocks, n_chunks) * BLOCK_D
    n_chunks = cdiv(D, d_per_chunk)
    args = (x, y2, lx, sx, ly, sy, counts, x.stride(0), x.stride(1), y2.stride(0), y2.stride(1), D, d_per_chunk)
    # tl.histogram wants a power-of-two slot count that is a multiple of the warp size.
    meta = dict(BINS=bins, NUM_SLOTS=max(32, next_pow2(bins * bins)), BLOCK_D=BLOCK_D, EXCLUSIVE=n_chunks == 1)
    grid = (S, n_chunks)
    num_warps = 8 if interp else CUDA_LAUNCH["num_warps"]
    if _local_hist_ok[0]:
        try:
            _joint_histogram_kernel[grid](*args, LOCAL_HIST=True, **meta, num_warps=num_warps)
            return
        except Exception as err:  # a kernel that fails to compile launches nothing: counts are untouched
            _local_hist_ok[0] = False
            warnings.warn(f"tl.histogram did not compile ({err!r:.200}); using per-pair atomics", stacklevel=2)
    _joint_histogram_kernel[grid](*args, LOCAL_HIST=False, **meta, num_warps=num_warps)


def _bins_ref(v: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor, bins: int) -> torch.Tensor:
    f = torch.floor((v.to(torch.float32) - lo[:, None]) * scale[:, None])  # (S, D), same fp32 ops as the kernel
    return f.clamp(0, bins - 1).to(torch.int64)


def joint_histogram_ref(x, y, counts, lo_x, hi_x, lo_y, hi_y) -> None:
    """Plain-torch path and reference (``torch.bincount`` over flattened (row, a, b) cells)."""
    ready = prepare(x, y, counts, lo_x, hi_x, lo_y, hi_y)
    if ready is None:
        return
    bins, y2, lx, sx, ly, sy = ready
    S, D = x.shape
    a = _bins_ref(x, lx, sx, bins)
    b = _bins_ref(y2, ly, sy, bins)
    rows = torch.arange(S, device=x.device)[:, None] * (bins * bins)
    cell = (rows + a * bins + b).flatten()  # (S * D,)
    hist = torch.bincount(cell, minlength=S * bins * bins).view(S, bins, bins)
    counts += hist.to(counts.dtype)


def histogram_mutual_information(counts: torch.Tensor) -> torch.Tensor:
    """Plug-in MI in nats per row of ``counts`` (S, BINS, BINS): sum p_ab ln(p_ab / (p_a p_b)), float64."""
    if counts.dim() != 3:
        raise ValueError(f"counts: expected shape (S, BINS, BINS), got {tuple(counts.shape)}")
    c = counts.to(torch.float64)
    total = c.sum(dim=(1, 2), keepdim=True)  # (S, 1, 1)
    p = c / total.clamp_min(1.0)
    pa = p.sum(2, keepdim=True)  # (S, BINS, 1)
    pb = p.sum(1, keepdim=True)  # (S, 1, BINS)
    ratio = p / (pa * pb).clamp_min(torch.finfo(torch.float64).tiny)
    terms = torch.where(p > 0, p * torch.log(torch.where(p > 0, ratio, 1.0)), 0.0)
    return terms.sum(dim=(1, 2))
