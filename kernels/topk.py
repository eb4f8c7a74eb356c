"""Top-k of the SPIN importance I_W = |W| * G_W, fused with the |W| scaling.

The Triton path computes the importance of a block of BLOCK flat positions in fp32 and
keeps the block's best KB = next_pow2(k) entries as candidates (the global top-k lies in
the union of the blocks' top-k); ``torch.topk`` over the candidates finishes the job.
Each candidate is one int64 key: the fp32 importance bits (order-preserving for values
>= 0) in the high word and (2^32 - 1 - flat index) in the low word, so equal importances
are broken deterministically in favour of the LOWEST flat index. The torch path uses
``torch.topk`` on the importance, whose tie order is implementation defined (the spec
allows that: compare candidate sets allowing ties). No candidates when k = 0 or when acc
is all zero. Values come back in descending order (fp32 on the Triton path, acc's
dtype on the torch path) with int64 flat indices into the row-major (O, I) matrix.
"""

from __future__ import annotations

import warnings

import torch

from .utils import cdiv, interpreting, lazy_jit, next_pow2, tl

_LOW = (1 << 32) - 1
_use_topk = [tl is not None and hasattr(tl, "topk")]  # partial bitonic top-k (newer Triton), else a full sort


@lazy_jit
def _importance_topk_kernel(
    weight_ptr, acc_ptr, cand_ptr,
    numel,
    KB: tl.constexpr, BLOCK: tl.constexpr, USE_TOPK: tl.constexpr,
):  # fmt: skip
    """Program b: cand[b, :KB] = top-KB keys of (|w| * acc, index) over flat block b."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < numel
    w = tl.load(weight_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    a = tl.load(acc_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    imp = tl.maximum(tl.abs(w) * a, 0.0)
    bits = imp.to(tl.int32, bitcast=True).to(tl.int64)
    key = (bits << 32) | (4294967295 - offs)
    key = tl.where(ok, key, -1)
    if USE_TOPK:
        top = tl.topk(key, KB)
        tl.store(cand_ptr + pid.to(tl.int64) * KB + tl.arange(0, KB), top)
    else:
        top = tl.sort(key, descending=True)
        rank = tl.arange(0, BLOCK)
        tl.store(cand_ptr + pid.to(tl.int64) * KB + rank, top, mask=rank < KB)


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


def importance_topk_triton(weight, acc, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton path of :func:`deepsight.kernels.dispatch.importance_topk`."""
    _check(weight, acc, k)
    numel = weight.numel()
    k = min(k, numel)
    if k == 0 or not bool(acc.any()):
        return _empty(weight.device, torch.float32)
    if numel >= 1 << 32:
        raise ValueError(f"weight: {numel} entries exceed the 2^32 flat indices the candidate keys hold")
    KB = next_pow2(k)
    BLOCK = max(64 if interpreting() else 1024, KB * 16)
    if BLOCK > (256 if interpreting() else 16384):  # k too large for block candidates: one pass over all keys
        importance = weight.abs().float() * acc.float()  # (O, I)
        return _decode(torch.topk(_pack(importance.flatten()), k).values)
    n_blocks = cdiv(numel, BLOCK)
    cand = torch.empty(n_blocks * KB, dtype=torch.int64, device=weight.device)
    args = (weight.contiguous(), acc.contiguous(), cand, numel)
    meta = dict(KB=KB, BLOCK=BLOCK, num_warps=8 if BLOCK >= 4096 else 4)
    launched = False
    if _use_topk[0]:
        try:
            _importance_topk_kernel[(n_blocks,)](*args, USE_TOPK=True, **meta)
            launched = True
        except Exception as err:  # a kernel that fails to compile launches nothing
            _use_topk[0] = False
            warnings.warn(f"tl.topk did not compile ({err!r:.200}); using tl.sort", stacklevel=2)
    if not launched:
        _importance_topk_kernel[(n_blocks,)](*args, USE_TOPK=False, **meta)
    return _decode(torch.topk(cand, k).values)  # descending keys: by importance, then lowest index


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


def importance_topk_ref(weight, acc, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-torch path and reference: ``torch.topk`` of |W| * acc in acc's (promoted) dtype."""
    _check(weight, acc, k)
    k = min(k, weight.numel())
    dtype = torch.promote_types(acc.dtype, torch.float32)
    if k == 0 or not bool(acc.any()):
        return _empty(weight.device, dtype)
    importance = weight.abs().to(dtype) * acc.to(dtype)  # (O, I)
    top = torch.topk(importance.flatten(), k)
    return top.values, top.indices
