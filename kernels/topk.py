"""Top-k of the SPIN importance I_W = |W| * G_W, fused with the |W| scaling.

Triton path, one pass over W and G_W (memory bound): a small strided sample of the
importance gives a threshold tau expected to keep about 2k + 256 entries; each program
computes the fp32 importance of its block, keeps the entries >= tau as the block's
candidates and appends them to a compact buffer (one atomic per block reserves the
space, ``tl.cumsum`` gives the slots); ``torch.topk`` over the few candidates finishes.
The result is exact whatever the sample: when fewer than k entries pass (or the buffer
overflows, e.g. on massive ties) a full pass over all entries replaces the filter.

Each candidate is one int64 key: the fp32 importance bits (order-preserving for values
>= 0) in the high word and (2^32 - 1 - flat index) in the low word, so equal importances
are broken deterministically in favour of the LOWEST flat index. The torch path uses
``torch.topk`` on the importance, whose tie order is implementation defined (the spec
allows that: compare candidate sets allowing ties). No candidates when k = 0 or when acc
is all zero. Values come back in descending order (fp32 on the Triton path, acc's
promoted dtype on the torch path) with int64 flat indices into the row-major (O, I) matrix.
"""

from __future__ import annotations

import torch

from .utils import cdiv, interpreting, lazy_jit, tl

_LOW = (1 << 32) - 1
_SAMPLE = 1 << 16  # importance entries sampled to pick the threshold
_CAPACITY_FACTOR = 8  # candidate buffer = this many times the expected number passing the threshold
# CUDA launch parameters of the filter pass; ``benchmarks/kernels.py --sweep`` times alternatives on a GPU.
CUDA_LAUNCH = {"block": 4096, "num_warps": 4}


@lazy_jit
def _importance_filter_kernel(
    weight_ptr, acc_ptr, tau_ptr, keys_ptr, counter_ptr,
    numel, capacity,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """Program b: append key(|w| * a, index) for every entry of flat block b with |w| * a >= tau.

    counter[0] counts the entries that passed (also beyond ``capacity``). Only blocks with candidates touch
    it (a few thousand atomics on one address; one per block would serialise the whole pass).
    """
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < numel
    w = tl.load(weight_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    a = tl.load(acc_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    imp = tl.maximum(tl.abs(w) * a, 0.0)
    tau = tl.load(tau_ptr)
    sel = ((imp >= tau) & ok).to(tl.int32)
    n_sel = tl.sum(sel, axis=0)
    if n_sel > 0:
        base = tl.atomic_add(counter_ptr, n_sel.to(tl.int64))
        slot = base + tl.cumsum(sel, axis=0).to(tl.int64) - 1
        key = (imp.to(tl.int32, bitcast=True).to(tl.int64) << 32) | (4294967295 - offs)
        tl.store(keys_ptr + slot, key, mask=(sel != 0) & (slot < capacity))


def _check(weight, acc, k) -> None:
    if weight.dim() != 2 or tuple(acc.shape) != tuple(weight.shape):
        raise ValueError(
            f"weight/acc: expected two matrices of one shape, got {tuple(weight.shape)} and {tuple(acc.shape)}"
        )
    if weight.device != acc.device:
        raise ValueError(f"weight on {weight.device}, acc on {acc.device}")
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k: expected an integer >= 0, got {k!r}")


def _empty(device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty(0, dtype=dtype, device=device), torch.empty(0, dtype=torch.int64, device=device)


def _pack(importance: torch.Tensor) -> torch.Tensor:
    """The kernel's int64 keys for a flat fp32 importance vector (torch twin of the kernel's packing)."""
    bits = importance.clamp_min(0).view(torch.int32).to(torch.int64)
    flat = torch.arange(importance.numel(), device=importance.device, dtype=torch.int64)
    return (bits << 32) | (_LOW - flat)


def _decode(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp32 values, int64 flat indices) from packed keys."""
    flat = _LOW - (keys & _LOW)
    values = (keys >> 32).to(torch.int32).view(torch.float32)
    return values, flat


def _threshold(w: torch.Tensor, a: torch.Tensor, target: int) -> torch.Tensor | None:
    """(1,) fp32 importance expected to have about ``target`` entries at or above it (stays on the device,
    no sync); None when the sample says to keep everything."""
    numel = w.numel()
    m = min(numel, _SAMPLE)
    rank = cdiv(target * m, numel)  # sample rank whose value ~target entries exceed
    if rank >= m:
        return None
    step, start = numel // m, (numel % m) // 2  # a strided sample: views, no index tensor
    sample = w.view(-1)[start::step][:m].abs().float().mul_(a.view(-1)[start::step][:m])  # (m,), new memory
    tau = torch.topk(sample, rank).values[-1:]  # (1,)
    return tau.clamp_min(torch.finfo(torch.float32).tiny)  # zeros never pass: the full pass covers k > #nonzero


def importance_topk_triton(weight, acc, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton path of :func:`deepsight.kernels.dispatch.importance_topk`."""
    _check(weight, acc, k)
    numel = weight.numel()
    k = min(k, numel)
    if k == 0:
        return _empty(weight.device, torch.float32)
    if numel >= 1 << 32:
        raise ValueError(f"weight: {numel} entries exceed the 2^32 flat indices the candidate keys hold")
    w, a = weight.contiguous(), acc.contiguous()
    target = 2 * k + 256
    tau = _threshold(w, a, target)
    if tau is None:
        if not bool(a.any()):
            return _empty(weight.device, torch.float32)
    else:
        capacity = min(numel, _CAPACITY_FACTOR * target)
        keys = torch.empty(capacity, dtype=torch.int64, device=w.device)
        counter = torch.zeros(1, dtype=torch.int64, device=w.device)
        interp = interpreting()
        BLOCK = 256 if interp else CUDA_LAUNCH["block"]
        _importance_filter_kernel[(cdiv(numel, BLOCK),)](
            w, a, tau, keys, counter,
            numel, capacity,
            BLOCK=BLOCK, num_warps=4 if interp else CUDA_LAUNCH["num_warps"],
        )  # fmt: skip
        passed = int(counter.item())
        if k <= passed <= capacity:  # every top-k entry is among the candidates
            return _decode(torch.topk(keys[:passed], k).values)
        if passed == 0 and not bool(a.any()):  # tau > 0: an all-zero acc passes nothing
            return _empty(weight.device, torch.float32)
    # Full pass: small matrices, a sample that missed, or massive ties at the threshold.
    importance = w.abs().float() * a.float()  # (O, I)
    return _decode(torch.topk(_pack(importance.flatten()), k).values)


def importance_topk_ref(weight, acc, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-torch path and reference: ``torch.topk`` of |W| * acc in acc's (promoted) dtype."""
    _check(weight, acc, k)
    k = min(k, weight.numel())
    dtype = torch.promote_types(acc.dtype, torch.float32)
    if k == 0:
        return _empty(weight.device, dtype)
    importance = weight.abs().to(dtype) * acc.to(dtype)  # (O, I)
    top = torch.topk(importance.flatten(), k)
    if not bool(top.values[0] > 0) and not bool(acc.any()):  # the full check only when nothing is positive
        return _empty(weight.device, dtype)
    return top.values, top.indices
