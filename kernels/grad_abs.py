"""Sum over samples of per-sample absolute weight gradients of a linear layer (SPIN's G_W).

For y = x W^T with output gradient delta (S, T, O) and input x (S, T, I):

    acc[o, i] += sum_s | sum_t m_st delta[s, t, o] x[s, t, i] |

i.e. the (O, I) gradient of each sample s, made absolute, summed over the samples,
without materialising the (S, O, I) per-sample gradients. Each Triton program owns one
(BLOCK_O, BLOCK_I) tile of acc and a range of samples: per sample it accumulates
delta_s^T x_s over the tokens with ``tl.dot`` in fp32 (tensor cores for bf16/fp16
inputs on GPU), takes |.|, adds it to a running fp32 tile, and atomically adds the tile
into acc at the end (sample ranges of one tile may run on several programs). Masked
tokens (``token_mask`` 0) are not even loaded.
"""

from __future__ import annotations

import torch

from .utils import (
    FLOAT_INPUTS,
    as_mask_int,
    block_size,
    cdiv,
    check_accumulator,
    check_float_input,
    interpreting,
    lazy_jit,
    sm_count,
    tl,
)


@lazy_jit
def _grad_abs_sum_kernel(
    delta_ptr, x_ptr, mask_ptr, acc_ptr,
    stride_d_s, stride_d_t, stride_d_o, stride_x_s, stride_x_t, stride_x_i, stride_m_s, stride_m_t,
    S, T, O, I, SAMPLES_PER_SPLIT,
    HAS_MASK: tl.constexpr, UPCAST: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """Program (o-block, i-block, s-split): acc[O_b, I_b] += sum_{s in split} |delta_s[:, O_b]^T x_s[:, I_b]|."""
    pid_o = tl.program_id(0)
    pid_i = tl.program_id(1)
    pid_s = tl.program_id(2)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    o_ok = offs_o < O
    i_ok = offs_i < I
    col_o = offs_o.to(tl.int64) * stride_d_o
    col_i = offs_i.to(tl.int64) * stride_x_i
    s_lo = pid_s * SAMPLES_PER_SPLIT
    s_hi = tl.minimum(s_lo + SAMPLES_PER_SPLIT, S)

    total = tl.zeros([BLOCK_O, BLOCK_I], dtype=tl.float32)
    d_base = delta_ptr + s_lo.to(tl.int64) * stride_d_s  # int64 sample offsets, advanced per sample
    x_base = x_ptr + s_lo.to(tl.int64) * stride_x_s
    m_base = mask_ptr + s_lo.to(tl.int64) * stride_m_s
    for _s in range(s_lo, s_hi):
        g = tl.zeros([BLOCK_O, BLOCK_I], dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            offs_t = t0 + tl.arange(0, BLOCK_T)
            keep = offs_t < T
            if HAS_MASK:
                m = tl.load(m_base + offs_t.to(tl.int64) * stride_m_t, mask=keep, other=0)
                keep = keep & (m != 0)
            t64 = offs_t.to(tl.int64)[:, None]
            d = tl.load(
                d_base + t64 * stride_d_t + col_o[None, :],
                mask=keep[:, None] & o_ok[None, :],
                other=0.0,
            )  # (BLOCK_T, BLOCK_O)
            xx = tl.load(
                x_base + t64 * stride_x_t + col_i[None, :],
                mask=keep[:, None] & i_ok[None, :],
                other=0.0,
            )  # (BLOCK_T, BLOCK_I)
            if UPCAST:
                d = d.to(tl.float32)
                xx = xx.to(tl.float32)
            g = tl.dot(tl.trans(d), xx, g, input_precision=INPUT_PRECISION)
        d_base += stride_d_s
        x_base += stride_x_s
        m_base += stride_m_s
        total += tl.abs(g)

    dst = acc_ptr + offs_o.to(tl.int64)[:, None] * I + offs_i[None, :]
    tl.atomic_add(dst, total.to(acc_ptr.dtype.element_ty), mask=o_ok[:, None] & i_ok[None, :])


def _check(delta, x, acc, token_mask) -> None:
    check_float_input("delta", delta, 3)
    check_float_input("x", x, 3)
    S, T, O = delta.shape
    if x.shape[0] != S or x.shape[1] != T:
        raise ValueError(f"x: expected shape ({S}, {T}, I) like delta {tuple(delta.shape)}, got {tuple(x.shape)}")
    if x.device != delta.device:
        raise ValueError(f"x on {x.device}, delta on {delta.device}")
    check_accumulator("acc", acc, (O, x.shape[2]), x.device)
    if token_mask is not None and tuple(token_mask.shape) != (S, T):
        raise ValueError(f"token_mask: expected shape ({S}, {T}), got {tuple(token_mask.shape)}")
    if token_mask is not None and token_mask.device != delta.device:
        raise ValueError(f"token_mask on {token_mask.device}, delta on {delta.device}")


# CUDA launch parameters (largest O, I and T blocks, pipeline stages, programs aimed at per SM);
# ``benchmarks/kernels.py --sweep`` times alternatives on a GPU.
CUDA_LAUNCH = {"block_o": 128, "block_i": 128, "block_t": 64, "num_stages": 3, "programs_per_sm": 1}


def grad_abs_sum_triton(delta, x, acc, token_mask=None, allow_tf32: bool = False) -> None:
    """Triton path of :func:`deepsight.kernels.dispatch.grad_abs_sum_`."""
    _check(delta, x, acc, token_mask)
    for name, t in (("delta", delta), ("x", x)):
        if t.dtype not in FLOAT_INPUTS:
            raise ValueError(f"{name}: the Triton kernel takes bf16/fp16/fp32 inputs, got {t.dtype}")
    S, T, O = delta.shape
    I = x.shape[2]
    if S == 0 or T == 0 or O == 0 or I == 0:
        return
    interp = interpreting()
    BLOCK_O = 16 if interp else block_size(O, lo=16, hi=CUDA_LAUNCH["block_o"])
    BLOCK_I = 16 if interp else block_size(I, lo=16, hi=CUDA_LAUNCH["block_i"])  # two fp32 tiles
    BLOCK_T = 16 if interp else block_size(T, lo=16, hi=CUDA_LAUNCH["block_t"])
    tiles = cdiv(O, BLOCK_O) * cdiv(I, BLOCK_I)
    if delta.is_cuda:
        target = CUDA_LAUNCH["programs_per_sm"] * sm_count(delta.device)
        n_split = max(1, min(S, cdiv(target, tiles)))
    else:  # interpreter: exercise the split path
        n_split = min(S, 2)
    per_split = cdiv(S, n_split)
    n_split = cdiv(S, per_split)
    m = as_mask_int(token_mask) if token_mask is not None else acc
    stride_m = (m.stride(0), m.stride(1)) if token_mask is not None else (0, 0)
    upcast = interp or delta.dtype != x.dtype or delta.dtype == torch.float32
    precision = "tf32" if (allow_tf32 and upcast) else "ieee"
    _grad_abs_sum_kernel[(cdiv(O, BLOCK_O), cdiv(I, BLOCK_I), n_split)](
        delta, x, m, acc,
        delta.stride(0), delta.stride(1), delta.stride(2), x.stride(0), x.stride(1), x.stride(2),
        stride_m[0], stride_m[1],
        S, T, O, I, per_split,
        HAS_MASK=token_mask is not None, UPCAST=upcast, INPUT_PRECISION=precision,
        BLOCK_O=BLOCK_O, BLOCK_I=BLOCK_I, BLOCK_T=BLOCK_T,
        num_warps=8 if BLOCK_O * BLOCK_I >= 128 * 64 else 4, num_stages=3 if interp else CUDA_LAUNCH["num_stages"],
    )  # fmt: skip


def grad_abs_sum_ref(delta, x, acc, token_mask=None) -> None:
    """Plain-torch path and reference, in acc's dtype: for each sample s, acc += |delta_s^T x_s|.

    One (O, I) product per sample into a reused buffer, then abs and add in place: on a CPU this
    runs the GEMMs near their peak rate and touches each (O, I) product twice, where a batched
    einsum + abs + sum over samples makes five passes over an (S, O, I) temporary (2-3x slower).
    """
    _check(delta, x, acc, token_mask)
    S = delta.shape[0]
    if S == 0:
        return
    d, xx = delta.to(acc.dtype), x.to(acc.dtype)
    if token_mask is not None:  # (m d)^T x = d^T (m x): mask the narrower of the two
        m = (token_mask != 0).to(acc.dtype)[:, :, None]
        if d.shape[2] <= xx.shape[2]:
            d = d * m
        else:
            xx = xx * m
    buf = torch.empty_like(acc)
    for s in range(S):
        torch.mm(d[s].T, xx[s], out=buf)
        acc.add_(buf.abs_())
