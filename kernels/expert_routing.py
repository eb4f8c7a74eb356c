"""Per-(class, expert) routing statistics of an MoE layer in one pass (MoE expert diagnostics).

Input per valid token n: the experts the model chose ``top_k_index[n, :]`` (N, K) with their gate
weights ``top_k_weights[n, :]`` (N, K), optionally the router logits ``logits[n, :]`` (N, E), and a
class id ``cls[n]`` (negative = not counted). Output, added in place into ``acc`` (3, C, E + 1):

    acc[0, c, e] += #{(n, j) : cls[n] = c, top_k_index[n, j] = e}          selections
    acc[1, c, e] += sum over those (n, j) of top_k_weights[n, j]            gate weight
    acc[2, c, e] += sum over those (n, j) of H(n)                          router entropy of the served tokens
    acc[0, c, E] += #{n : cls[n] = c}                                      tokens of the class
    acc[1, c, E] += sum_{n, j : cls[n] = c} top_k_weights[n, j]             all gate weight of the class
    acc[2, c, E] += sum_{n : cls[n] = c} H(n)                              router entropy of the class

with the router's entropy (nats) of its score distribution over all E experts:
SCORE = 0 (softmax routers: Mixtral, Qwen-MoE, OLMoE, Granite, GPT-OSS) p = softmax(logits);
SCORE = 1 (sigmoid routers: DeepSeek-V3) p = sigmoid(logits) / sum sigmoid(logits).
Logits of -inf (masked experts) have p = 0. Without logits, H = 0. Expert ids outside [0, E)
(e.g. a "no expert" sentinel) are not counted as selections; they still count in the totals.

A Triton program takes BLOCK_N tokens: it computes their entropies from one (BLOCK_N, BLOCK_E)
tile of logits in fp32 and scatters counts, gates and entropies with atomics (fp32 math, the
accumulator's dtype for the adds). ``expert_routing_ref`` is the torch reference (index_put_).
Usage: ``deepsight.kernels.dispatch.expert_routing_(idx, w, logits, cls, acc, score="softmax")``.
"""

from __future__ import annotations

import torch

from .utils import FLOAT_ACCUMULATORS, cdiv, check_float_input, interpreting, lazy_jit, next_pow2, tl

SCORES = {"softmax": 0, "sigmoid": 1}
# CUDA launch parameters (tokens per program, warps); the interpreter uses small blocks.
CUDA_LAUNCH = {"block_n": 64, "num_warps": 4}


@lazy_jit
def _expert_routing_kernel(
    idx_ptr, w_ptr, logits_ptr, cls_ptr, acc_ptr,
    stride_idx_n, stride_idx_k, stride_w_n, stride_w_k, stride_l_n, stride_l_e,
    N, E, C,
    K: tl.constexpr, SCORE: tl.constexpr, HAS_LOGITS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_E: tl.constexpr,
):  # fmt: skip
    """Program p: tokens [p * BLOCK_N, (p + 1) * BLOCK_N); see the module docstring for the sums."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    rows64 = rows.to(tl.int64)
    c = tl.load(cls_ptr + rows64, mask=row_ok, other=-1).to(tl.int64)
    ok = row_ok & (c >= 0) & (c < C)
    plane = C * (E + 1)  # elements per statistic plane
    base = acc_ptr + c * (E + 1)  # (BLOCK_N,) row of the token's class
    if HAS_LOGITS:
        cols = tl.arange(0, BLOCK_E)
        tile_ok = ok[:, None] & (cols[None, :] < E)
        x = tl.load(logits_ptr + rows64[:, None] * stride_l_n + cols[None, :].to(tl.int64) * stride_l_e,
                    mask=tile_ok, other=float("-inf")).to(tl.float32)  # (BLOCK_N, BLOCK_E)
        live = tile_ok & (x > float("-inf"))
        if SCORE == 0:  # softmax: H = log s - sum_e exp(z_e) z_e / s, z = x - max
            m = tl.max(tl.where(live, x, -3.0e38), axis=1)
            z = tl.where(live, x - m[:, None], 0.0)
            ez = tl.where(live, tl.exp(z), 0.0)
            s = tl.sum(ez, axis=1)
            ent = tl.log(tl.maximum(s, 1e-30)) - tl.sum(ez * z, axis=1) / tl.maximum(s, 1e-30)
        else:  # normalised sigmoid: H = log S - sum_e q_e log q_e / S with q = sigmoid(x)
            logq = tl.where(live, -(tl.maximum(-x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))), 0.0)
            q = tl.where(live, tl.exp(logq), 0.0)
            s = tl.sum(q, axis=1)
            ent = tl.log(tl.maximum(s, 1e-30)) - tl.sum(q * logq, axis=1) / tl.maximum(s, 1e-30)
        ent = tl.where(ok & (s > 0), ent, 0.0)  # a row with every logit -inf: 0
    else:
        ent = tl.zeros([BLOCK_N], dtype=tl.float32)
    one = tl.full([BLOCK_N], 1.0, tl.float32)
    gate_total = tl.zeros([BLOCK_N], dtype=tl.float32)
    for j in tl.static_range(K):
        e = tl.load(idx_ptr + rows64 * stride_idx_n + j * stride_idx_k, mask=ok, other=-1).to(tl.int64)
        w = tl.load(w_ptr + rows64 * stride_w_n + j * stride_w_k, mask=ok, other=0.0).to(tl.float32)
        gate_total += w
        sel = ok & (e >= 0) & (e < E)
        tl.atomic_add(base + e, one, mask=sel)
        tl.atomic_add(base + plane + e, w, mask=sel)
        tl.atomic_add(base + 2 * plane + e, ent, mask=sel)
    tl.atomic_add(base + E, one, mask=ok)
    tl.atomic_add(base + plane + E, gate_total, mask=ok)
    tl.atomic_add(base + 2 * plane + E, ent, mask=ok)


def _check(top_k_index, top_k_weights, logits, cls, acc, score) -> tuple[int, int, int, int]:
    if score not in SCORES:
        raise ValueError(f"score: expected one of {tuple(SCORES)}, got {score!r}")
    if top_k_index.dim() != 2 or top_k_index.dtype.is_floating_point:
        raise ValueError(f"top_k_index: expected integers of shape (N, K), got {top_k_index.dtype} "
                         f"{tuple(top_k_index.shape)}")
    n, k = top_k_index.shape
    check_float_input("top_k_weights", top_k_weights, 2)
    if tuple(top_k_weights.shape) != (n, k):
        raise ValueError(f"top_k_weights: expected shape ({n}, {k}), got {tuple(top_k_weights.shape)}")
    if cls.dim() != 1 or cls.shape[0] != n or cls.dtype.is_floating_point:
        raise ValueError(f"cls: expected integers of shape ({n},), got {cls.dtype} {tuple(cls.shape)}")
    if acc.dim() != 3 or acc.shape[0] != 3 or acc.shape[2] < 2:
        raise ValueError(f"acc: expected shape (3, C, E + 1), got {tuple(acc.shape)}")
    if acc.dtype not in FLOAT_ACCUMULATORS or not acc.is_contiguous():
        raise ValueError(f"acc: expected a contiguous float32/float64 accumulator, got {acc.dtype}")
    c, e = acc.shape[1], acc.shape[2] - 1
    if logits is not None:
        check_float_input("logits", logits, 2)
        if tuple(logits.shape) != (n, e):
            raise ValueError(f"logits: expected shape ({n}, {e}), got {tuple(logits.shape)}")
    for name, t in (("top_k_index", top_k_index), ("top_k_weights", top_k_weights), ("cls", cls),
                    ("logits", logits)):
        if t is not None and t.device != acc.device:
            raise ValueError(f"{name} on {t.device} but acc on {acc.device}")
    return n, k, c, e


def expert_routing_triton(top_k_index, top_k_weights, logits, cls, acc, score: str = "softmax") -> None:
    """Triton path of :func:`deepsight.kernels.dispatch.expert_routing_`."""
    n, k, c, e = _check(top_k_index, top_k_weights, logits, cls, acc, score)
    if n == 0 or c == 0:
        return
    interp = interpreting()
    BLOCK_N = 16 if interp else CUDA_LAUNCH["block_n"]
    BLOCK_E = max(16, next_pow2(e))
    if not interp:  # keep the logits tile within a register budget of ~16K values per program
        BLOCK_N = max(1, min(BLOCK_N, 16384 // BLOCK_E))
    lg = logits if logits is not None else top_k_weights  # placeholder pointer when unused
    stride_l = (lg.stride(0), lg.stride(1)) if logits is not None else (0, 0)
    _expert_routing_kernel[(cdiv(n, BLOCK_N),)](
        top_k_index, top_k_weights, lg, cls, acc,
        top_k_index.stride(0), top_k_index.stride(1), top_k_weights.stride(0), top_k_weights.stride(1),
        stride_l[0], stride_l[1],
        n, e, c,
        K=k, SCORE=SCORES[score], HAS_LOGITS=logits is not None, BLOCK_N=BLOCK_N, BLOCK_E=BLOCK_E,
        num_warps=4 if interp else CUDA_LAUNCH["num_warps"],
    )  # fmt: skip


def router_entropy_ref(logits: torch.Tensor, score: str = "softmax") -> torch.Tensor:
    """(N, E) -> (N,) entropy (nats) of softmax(logits) or of sigmoid(logits) normalised; -inf = p 0."""
    x = logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
    live = x > float("-inf")
    if score == "softmax":
        p = torch.softmax(x, dim=-1)
    else:
        q = torch.where(live, torch.sigmoid(x), 0.0)
        p = q / q.sum(-1, keepdim=True).clamp_min(1e-30)
    p = torch.nan_to_num(p, nan=0.0)  # a row with every logit -inf: entropy 0
    logp = torch.where(p > 0, torch.log(torch.where(p > 0, p, 1.0)), 0.0)
    return -(p * logp).sum(-1)


def expert_routing_ref(top_k_index, top_k_weights, logits, cls, acc, score: str = "softmax") -> None:
    """Torch reference of :func:`expert_routing_triton` (same formulas, accumulated with index_put_)."""
    n, k, c, e = _check(top_k_index, top_k_weights, logits, cls, acc, score)
    if n == 0 or c == 0:
        return
    dt = acc.dtype
    cls = cls.to(torch.long)
    ok = (cls >= 0) & (cls < c)  # (N,)
    ent = router_entropy_ref(logits, score).to(dt) if logits is not None else torch.zeros(n, dtype=dt,
                                                                                            device=acc.device)
    idx = top_k_index.to(torch.long)
    w = top_k_weights.to(dt)
    sel = ok[:, None] & (idx >= 0) & (idx < e)  # (N, K)
    rows_c = cls[:, None].expand(n, k)[sel]
    cols_e = idx[sel]
    ones = torch.ones(rows_c.shape[0], dtype=dt, device=acc.device)
    acc[0].index_put_((rows_c, cols_e), ones, accumulate=True)
    acc[1].index_put_((rows_c, cols_e), w[sel], accumulate=True)
    acc[2].index_put_((rows_c, cols_e), ent[:, None].expand(n, k)[sel], accumulate=True)
    cv = cls[ok]
    last = torch.full_like(cv, e)
    acc[0].index_put_((cv, last), torch.ones(cv.shape[0], dtype=dt, device=acc.device), accumulate=True)
    acc[1].index_put_((cv, last), w.sum(1)[ok], accumulate=True)
    acc[2].index_put_((cv, last), ent[ok], accumulate=True)
