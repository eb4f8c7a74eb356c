"""Joint 2-D histograms of paired coordinates and their plug-in mutual information (MI-Peaks).

Row s pairs x[s, k] with y[s, k] (or y[k] when y is 1-D) over the D coordinates k and adds
one count per pair to ``counts[s, a, b]`` where, with equal-width bins over [lo, hi):

    a = clamp(floor((x - lo_x) * BINS / (hi_x - lo_x)), 0, BINS - 1)   (b likewise for y)

computed in fp32 exactly as written (both backends give the same bins). Values outside the
range land in the edge bins; a degenerate range (hi <= lo) puts everything in bin 0; NaN
inputs give undefined bins. A Triton program streams one row (or, when there are too few rows
to fill the GPU, a chunk of one), bins each block of coordinates and counts the block's pairs
in registers, by one of two methods (``CUDA_LAUNCH["method"]``): ``tl.histogram`` over the
BINS * BINS cells (masked lanes go to slot 0 and are subtracted at the end), or the product
onehot(a)^T onehot(b) of the block's (BLOCK_D, BINS) one-hot bin matrices on the tensor cores
(exact: 0/1 operands, fp32 sums below 2^24). It adds its counts to ``counts`` once: a plain
read-add-write when it owns the row, atomics on the non-zero cells when the row is split.
A per-pair-atomics method remains where ``tl.histogram`` does not compile.

``histogram_mutual_information`` turns counts into MI = sum_ab p_ab ln(p_ab / (p_a p_b))
(nats, float64, 0 for empty rows); that reduction is small and stays in torch.
"""

from __future__ import annotations

import warnings

import torch

from .utils import cdiv, check_float_input, interpreting, lazy_jit, next_pow2, tl

COUNT_DTYPES = (torch.int32, torch.int64, torch.float32, torch.float64)
# Launch parameters: the counting method ("onehot": tensor-core products of one-hot bin matrices;
# "histogram": tl.histogram in registers; "atomics": one atomic per pair), which the interpreter honours
# too (the tests run each), and for CUDA the largest D block (of the one-hot method: its matrices live in
# registers), warps and rows aimed at per SM before rows are split. ``benchmarks/kernels.py --sweep``
# times alternatives on a GPU.
CUDA_LAUNCH = {"method": "histogram", "block_d": 4096, "onehot_block_d": 128, "num_warps": 4, "rows_per_sm": 2}
METHODS = {"atomics": 0, "histogram": 1, "onehot": 2}
ONEHOT_MAX_BINS = 128
_local_hist_ok = [True]  # flipped once if this Triton build cannot compile tl.histogram


@lazy_jit
def _joint_histogram_kernel(
    x_ptr, y_ptr, lo_x_ptr, scale_x_ptr, lo_y_ptr, scale_y_ptr, counts_ptr,
    stride_x_s, stride_x_d, stride_y_s, stride_y_d,
    D, D_PER_CHUNK,
    BINS: tl.constexpr, NUM_SLOTS: tl.constexpr, BINS_P: tl.constexpr, BLOCK_D: tl.constexpr,
    METHOD: tl.constexpr, EXCLUSIVE: tl.constexpr, ONEHOT_FP16: tl.constexpr,
):  # fmt: skip
    """Program (s, chunk): counts[s, bin(x[s, k]), bin(y[s, k])] += 1 for k in the chunk.

    METHOD 0: one atomic per pair. 1: a block histogram of the BINS * BINS slots in registers
    (``tl.histogram``). 2: one-hot matrices of the x and y bins, (BLOCK_D, BINS_P) each, multiplied on the
    tensor cores: counts = onehot(x)^T onehot(y), exact (0/1 operands, fp32 sums of at most D_PER_CHUNK).
    Methods 1 and 2 add their block result to counts once: a plain load/add/store when the program owns the
    whole row (EXCLUSIVE), else atomics on the non-zero cells.
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
    n_tail = tl.full([], 0, tl.int32)  # method 1: masked-off lanes counted into slot 0, taken out at the end
    cells = tl.zeros([BINS_P, BINS_P], dtype=tl.float32)  # method 2
    offs_bin = tl.arange(0, BINS_P)
    for d0 in range(d_lo, d_hi, BLOCK_D):
        offs = d0 + tl.arange(0, BLOCK_D)
        ok = offs < d_hi
        offs64 = offs.to(tl.int64)
        x = tl.load(x_row + offs64 * stride_x_d, mask=ok, other=0.0).to(tl.float32)
        y = tl.load(y_row + offs64 * stride_y_d, mask=ok, other=0.0).to(tl.float32)
        fx = tl.minimum(tl.maximum(tl.floor((x - lo_x) * scale_x), 0.0), BINS - 1.0)
        fy = tl.minimum(tl.maximum(tl.floor((y - lo_y) * scale_y), 0.0), BINS - 1.0)
        if METHOD == 2:
            ix = tl.where(ok, fx.to(tl.int32), BINS_P)  # masked lanes match no column
            iy = fy.to(tl.int32)
            if ONEHOT_FP16:
                ax = (ix[:, None] == offs_bin[None, :]).to(tl.float16)  # (BLOCK_D, BINS_P)
                by = (iy[:, None] == offs_bin[None, :]).to(tl.float16)
                cells = tl.dot(tl.trans(ax), by, cells)
            else:
                ax = (ix[:, None] == offs_bin[None, :]).to(tl.float32)
                by = (iy[:, None] == offs_bin[None, :]).to(tl.float32)
                cells = tl.dot(tl.trans(ax), by, cells, input_precision="ieee")
        else:
            slot = fx.to(tl.int32) * BINS + fy.to(tl.int32)
            if METHOD == 1:
                local += tl.histogram(tl.where(ok, slot, 0), NUM_SLOTS)
                n_tail += BLOCK_D - tl.sum(ok.to(tl.int32), axis=0)
            else:
                tl.atomic_add(row + slot, ok.to(counts_ptr.dtype.element_ty), mask=ok)
    if METHOD == 1:
        offs_slot = tl.arange(0, NUM_SLOTS)
        local -= tl.where(offs_slot == 0, n_tail, 0)
        real = offs_slot < BINS * BINS
        if EXCLUSIVE:
            old = tl.load(row + offs_slot, mask=real, other=0)
            tl.store(row + offs_slot, old + local.to(counts_ptr.dtype.element_ty), mask=real)
        else:
            tl.atomic_add(row + offs_slot, local.to(counts_ptr.dtype.element_ty), mask=real & (local > 0))
    if METHOD == 2:
        cell = offs_bin[:, None] * BINS + offs_bin[None, :]  # (BINS_P, BINS_P)
        real = (offs_bin[:, None] < BINS) & (offs_bin[None, :] < BINS)
        add = cells.to(counts_ptr.dtype.element_ty)
        if EXCLUSIVE:
            old = tl.load(row + cell, mask=real, other=0)
            tl.store(row + cell, old + add, mask=real)
        else:
            tl.atomic_add(row + cell, add, mask=real & (cells > 0))


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


def joint_histogram_triton(x, y, counts, lo_x, hi_x, lo_y, hi_y) -> None:
    """Triton path of :func:`deepsight.kernels.dispatch.joint_histogram_`."""
    bins, y2 = _check(x, y, counts)
    S, D = x.shape
    if S == 0 or D == 0:
        return
    lx, sx = _bin_params(lo_x, hi_x, S, bins, x.device, "x")
    ly, sy = _bin_params(lo_y, hi_y, S, bins, x.device, "y")
    interp = interpreting()
    method = CUDA_LAUNCH["method"]
    if method not in METHODS:
        raise ValueError(f"histogram CUDA_LAUNCH['method']: expected one of {sorted(METHODS)}, got {method!r}")
    if method == "onehot" and bins > ONEHOT_MAX_BINS:
        method = "histogram"  # (BINS_P, BINS_P) fp32 cells per program would spill
    if method == "histogram" and not _local_hist_ok[0]:
        method = "atomics"
    max_block = 32 if interp else CUDA_LAUNCH["onehot_block_d" if method == "onehot" else "block_d"]
    BLOCK_D = max(16, min(next_pow2(D), max_block))
    n_blocks = cdiv(D, BLOCK_D)
    if x.is_cuda:  # split rows only when there are too few rows to fill the GPU
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        rows = CUDA_LAUNCH["rows_per_sm"] * sms
        n_chunks = 1 if S >= rows else min(n_blocks, cdiv(rows, S))
    else:  # interpreter: odd S owns whole rows, even S splits them, so tests see both variants
        n_chunks = 1 if S % 2 else min(2, n_blocks)
    if method == "onehot":  # fp32 sums of 0/1 products are exact below 2^24 per cell
        n_chunks = max(n_chunks, cdiv(D, 1 << 23))
    d_per_chunk = cdiv(n_blocks, n_chunks) * BLOCK_D
    n_chunks = cdiv(D, d_per_chunk)
    args = (x, y2, lx, sx, ly, sy, counts, x.stride(0), x.stride(1), y2.stride(0), y2.stride(1), D, d_per_chunk)
    # tl.histogram wants a power-of-two slot count that is a multiple of the warp size; tl.dot at least 16 x 16.
    meta = dict(
        BINS=bins, NUM_SLOTS=max(32, next_pow2(bins * bins)), BINS_P=max(16, next_pow2(bins)), BLOCK_D=BLOCK_D,
        EXCLUSIVE=n_chunks == 1, ONEHOT_FP16=not interp,
    )  # fmt: skip
    grid = (S, n_chunks)
    num_warps = 8 if interp else CUDA_LAUNCH["num_warps"]
    if method == "histogram":
        try:
            _joint_histogram_kernel[grid](*args, METHOD=1, **meta, num_warps=num_warps)
            return
        except Exception as err:  # a kernel that fails to compile launches nothing: counts are untouched
            _local_hist_ok[0] = False
            warnings.warn(f"tl.histogram did not compile ({err!r:.200}); using per-pair atomics", stacklevel=2)
        method = "atomics"
    _joint_histogram_kernel[grid](*args, METHOD=METHODS[method], **meta, num_warps=num_warps)


def _bins_ref(v: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor, bins: int) -> torch.Tensor:
    f = torch.floor((v.to(torch.float32) - lo[:, None]) * scale[:, None])  # (S, D), same fp32 ops as the kernel
    return f.clamp(0, bins - 1).to(torch.int64)


def joint_histogram_ref(x, y, counts, lo_x, hi_x, lo_y, hi_y) -> None:
    """Plain-torch path and reference (``torch.bincount`` over flattened (row, a, b) cells)."""
    bins, y2 = _check(x, y, counts)
    S, D = x.shape
    if S == 0 or D == 0:
        return
    lx, sx = _bin_params(lo_x, hi_x, S, bins, x.device, "x")
    ly, sy = _bin_params(lo_y, hi_y, S, bins, x.device, "y")
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
