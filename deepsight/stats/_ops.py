"""The accumulation ops the statistics call: ``deepsight.kernels.dispatch`` (Triton on CUDA,
torch on CPU), with a plain-torch stand-in used only while that module is absent.

Every op adds into float32/float64 accumulators in place, whatever the input dtype.
"""

from __future__ import annotations

import torch

try:  # the kernels package is written concurrently; the stand-ins below keep the engine usable meanwhile
    from deepsight.kernels import dispatch as _dispatch
except ImportError:  # pragma: no cover - depends on the checkout
    _dispatch = None

HAVE_KERNELS = _dispatch is not None


def _pool(hidden: torch.Tensor, mask: torch.Tensor | None, pooling: str, dtype: torch.dtype) -> torch.Tensor:
    h = hidden.to(dtype)  # (B, T, D)
    if mask is None:
        mask = torch.ones(h.shape[:2], device=h.device, dtype=dtype)
    m = mask.to(dtype)  # (B, T)
    if pooling == "sum":
        return torch.einsum("btd,bt->bd", h, m)
    if pooling == "mean":
        return torch.einsum("btd,bt->bd", h, m) / m.sum(1, keepdim=True).clamp_min(1e-9)
    if pooling == "last":
        t = h.shape[1]
        pos = torch.arange(t, device=h.device)
        last = torch.where(m > 0, pos, -1).amax(1).clamp_min(0)  # (B,) last valid position (0 if none)
        return h[torch.arange(h.shape[0], device=h.device), last]
    raise ValueError(f"pooling={pooling!r} must be mean | last | sum")


def pooled_class_sum_(hidden, mask, labels, sums, counts, pooling="mean", backend="auto") -> None:
    if _dispatch is not None:
        _dispatch.pooled_class_sum_(hidden, mask, labels, sums, counts, pooling=pooling, backend=backend)
        return
    pooled = _pool(hidden, mask, pooling, sums.dtype)  # (B, D)
    sums.index_add_(0, labels, pooled)
    counts.index_add_(0, labels, torch.ones_like(labels, dtype=counts.dtype))


def gram_update_(x, gram, labels=None, class_grams=None, backend="auto") -> None:
    if _dispatch is not None:
        _dispatch.gram_update_(x, gram, labels, class_grams, backend=backend)
        return
    xf = x.to(gram.dtype)  # (N, D)
    gram.add_(xf.T @ xf)
    if class_grams is not None:
        for k in labels.unique().tolist():
            xk = xf[labels == k]
            class_grams[k].add_(xk.T @ xk)


def joint_histogram_(x, y, counts, lo_x, hi_x, lo_y, hi_y, backend="auto") -> None:
    if _dispatch is not None:
        _dispatch.joint_histogram_(x, y, counts, lo_x, hi_x, lo_y, hi_y, backend=backend)
        return
    s, bins = counts.shape[0], counts.shape[1]
    xf = x.to(torch.float64)
    yf = y.to(torch.float64).expand_as(xf)

    def binned(v, lo, hi):
        return ((v - lo) / (hi - lo) * bins).floor().clamp(0, bins - 1).long()

    flat = binned(xf, lo_x, hi_x) * bins + binned(yf, lo_y, hi_y)  # (S, D)
    flat = flat + torch.arange(s, device=x.device)[:, None] * bins * bins
    add = torch.bincount(flat.reshape(-1), minlength=s * bins * bins).to(counts.dtype)
    counts.add_(add.view(s, bins, bins))  # (S, BINS, BINS)


def histogram_mutual_information(counts: torch.Tensor) -> torch.Tensor:
    if _dispatch is not None:
        return _dispatch.histogram_mutual_information(counts)
    p = counts.to(torch.float64)
    total = p.sum(dim=(1, 2), keepdim=True)
    p = p / total.clamp_min(1e-300)
    pa = p.sum(2, keepdim=True)
    pb = p.sum(1, keepdim=True)
    ratio = torch.where(p > 0, p / (pa * pb).clamp_min(1e-300), torch.ones_like(p))
    return (p * ratio.log()).sum(dim=(1, 2))


def grad_abs_sum_(delta, x, acc, token_mask=None, backend="auto") -> None:
    if _dispatch is not None:
        _dispatch.grad_abs_sum_(delta, x, acc, token_mask, backend=backend)
        return
    d = delta.to(acc.dtype)  # (S, T, O)
    xf = x.to(acc.dtype)  # (S, T, I)
    if token_mask is not None:
        d = d * token_mask.to(acc.dtype)[..., None]
    acc.add_(torch.einsum("sto,sti->soi", d, xf).abs().sum(0))


def importance_topk(weight, acc, k, backend="auto"):
    if _dispatch is not None:
        return _dispatch.importance_topk(weight, acc, k, backend=backend)
    imp = (weight.to(acc.dtype).abs() * acc).reshape(-1)
    return torch.topk(imp, k)
