"""Backend choice for the statistics kernels: Triton for CUDA tensors, torch otherwise.

The joint histogram's GPU path is a CUDA kernel with shared-memory atomics through CuPy
(``histogram_cuda.py``) when cupy is installed, its Triton kernel otherwise.

Every op takes ``backend``: ``"auto"`` (the process default, see below), ``"triton"``
(force the kernel; on CPU it runs only under ``TRITON_INTERPRET=1``) or ``"torch"``
(the reference path). The process default starts as ``"auto"`` = Triton when all tensors
are on CUDA, Triton imports and the inputs are not float64, else torch. The run sets it
from ``hardware.kernel_backend`` with :func:`set_default_backend` (or temporarily with
:func:`use_backend`).

All ops accumulate IN PLACE into fp32/fp64 accumulators; inputs may be bf16/fp16/fp32
(fp64 inputs take the torch path). See each op's module for its formula and layout.
The Triton launchers of the per-batch ops (pooling, Gram, histogram, |grad| sum) never
read device values back, so they add no host sync: labels are range-checked only when
they live on the CPU, and CUDA labels >= K are ignored like negative ones.

Usage::

    from deepsight.kernels.dispatch import pooled_class_sum_, gram_update_
    pooled_class_sum_(hidden, attention_mask, labels, sums, counts, pooling="mean")
    gram_update_(pooled, gram, labels, class_grams)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from . import histogram_cuda
from .expert_routing import expert_routing_ref, expert_routing_triton
from .grad_abs import grad_abs_sum_ref, grad_abs_sum_triton
from .gram import gram_update_ref, gram_update_triton
from .histogram import histogram_mutual_information, joint_histogram_ref, joint_histogram_triton
from .pool import pooled_class_sum_ref, pooled_class_sum_triton
from .topk import importance_topk_ref, importance_topk_triton
from .utils import HAS_TRITON, interpreting

BACKENDS = ("auto", "triton", "torch")
_default_backend = "auto"

__all__ = [
    "BACKENDS",
    "expert_routing_",
    "get_default_backend",
    "grad_abs_sum_",
    "gram_update_",
    "histogram_mutual_information",
    "importance_topk",
    "joint_histogram_",
    "pooled_class_sum_",
    "resolve_backend",
    "set_default_backend",
    "use_backend",
]


def _validate(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"kernel backend: expected one of {BACKENDS}, got {name!r}")
    return name


def set_default_backend(name: str) -> None:
    """Set what ``backend="auto"`` means for this process (``hardware.kernel_backend``)."""
    global _default_backend
    _default_backend = _validate(name)


def get_default_backend() -> str:
    return _default_backend


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Temporarily set the process default backend."""
    previous = _default_backend
    set_default_backend(name)
    try:
        yield
    finally:
        set_default_backend(previous)


def resolve_backend(
    backend: str,
    inputs: tuple[torch.Tensor | None, ...],
    accumulators: tuple[torch.Tensor | None, ...] = (),
) -> str:
    """``"triton"`` or ``"torch"`` for an op on these tensors (None entries are ignored).

    "auto" takes Triton when every tensor is on CUDA and no input is float64.
    """
    choice = _validate(backend)
    if choice == "auto":
        choice = _default_backend
    present = [t for t in inputs + accumulators if t is not None]
    if choice == "torch":
        return "torch"
    if choice == "triton":
        if not HAS_TRITON:
            raise RuntimeError("kernel backend 'triton' requested but triton is not installed")
        if not interpreting() and not all(t.is_cuda for t in present):
            raise RuntimeError("kernel backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
        return "triton"
    cuda = bool(present) and all(t.is_cuda for t in present)
    fp64_input = any(t is not None and t.dtype == torch.float64 for t in inputs)
    return "triton" if (HAS_TRITON and cuda and not fp64_input) else "torch"


def pooled_class_sum_(
    hidden: torch.Tensor,
    mask: torch.Tensor | None,
    labels: torch.Tensor,
    sums: torch.Tensor,
    counts: torch.Tensor,
    pooling: str = "mean",
    backend: str = "auto",
    sq_sums: torch.Tensor | None = None,
) -> None:
    """Pool ``hidden`` (B, T, D) per row and add into ``sums[labels[b]]`` (K, D), ``counts[labels[b]]`` += 1
    and, if given, ``sq_sums[labels[b]]`` (K,) += ||p_b||^2.

    pooling "mean": sum_t m h / max(sum_t m, 1e-9); "sum"; "last": the last position where
    mask != 0 (left or right padding). Rows with label < 0 or no valid token add nothing
    and are not counted. ``mask`` (B, T) bool/int or None (all valid).
    """
    if resolve_backend(backend, (hidden,), (sums,)) == "triton":
        pooled_class_sum_triton(hidden, mask, labels, sums, counts, pooling, sq_sums)
    else:
        pooled_class_sum_ref(hidden, mask, labels, sums, counts, pooling, sq_sums)


def gram_update_(
    x: torch.Tensor,
    gram: torch.Tensor,
    labels: torch.Tensor | None = None,
    class_grams: torch.Tensor | None = None,
    backend: str = "auto",
) -> None:
    """``gram`` (D, D) += x^T x for x (N, D); with labels (N,), ``class_grams[k]`` (K, D, D) += x_k^T x_k.

    Rows with label < 0 enter ``gram`` but no class Gram. Accumulators stay fully symmetric.
    """
    if resolve_backend(backend, (x,), (gram,)) == "triton":
        gram_update_triton(x, gram, labels, class_grams)
    else:
        gram_update_ref(x, gram, labels, class_grams)


def joint_histogram_(
    x: torch.Tensor,
    y: torch.Tensor,
    counts: torch.Tensor,
    lo_x: float | torch.Tensor,
    hi_x: float | torch.Tensor,
    lo_y: float | torch.Tensor,
    hi_y: float | torch.Tensor,
    backend: str = "auto",
) -> None:
    """``counts[s, a, b]`` += #{k : x[s, k] in bin a, y[s, k] (or y[k]) in bin b}; equal-width, edges clamped.

    ``counts`` (S, BINS, BINS) int32/int64/float32/float64; ranges are floats or (S,) tensors.
    On CUDA tensors the CuPy kernel (shared-memory atomics) runs when cupy is installed and the histogram
    fits its shared memory, else the Triton kernel.
    """
    if resolve_backend(backend, (x, y), (counts,)) == "triton":
        if x.is_cuda and histogram_cuda.available() and histogram_cuda.supports(x, y, counts):
            histogram_cuda.joint_histogram_cuda(x, y, counts, lo_x, hi_x, lo_y, hi_y)
        else:
            joint_histogram_triton(x, y, counts, lo_x, hi_x, lo_y, hi_y)
    else:
        joint_histogram_ref(x, y, counts, lo_x, hi_x, lo_y, hi_y)


def grad_abs_sum_(
    delta: torch.Tensor,
    x: torch.Tensor,
    acc: torch.Tensor,
    token_mask: torch.Tensor | None = None,
    backend: str = "auto",
) -> None:
    """``acc`` (O, I) += sum_s |sum_t m_st delta[s, t]^T x[s, t]| for delta (S, T, O), x (S, T, I)."""
    if resolve_backend(backend, (delta, x), (acc,)) == "triton":
        grad_abs_sum_triton(delta, x, acc, token_mask)
    else:
        grad_abs_sum_ref(delta, x, acc, token_mask)


def importance_topk(
    weight: torch.Tensor,
    acc: torch.Tensor,
    k: int,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, flat indices) of the k largest |W| * acc, descending; empty if k == 0 or acc is all zero.

    Ties: the Triton path prefers the lowest flat index; the torch path follows torch.topk.
    """
    if resolve_backend(backend, (weight, acc)) == "triton":
        return importance_topk_triton(weight, acc, k)
    return importance_topk_ref(weight, acc, k)


def expert_routing_(
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
    logits: torch.Tensor | None,
    cls: torch.Tensor,
    acc: torch.Tensor,
    score: str = "softmax",
    backend: str = "auto",
) -> None:
    """``acc`` (3, C, E + 1) += per (class, expert) selections, gate sums and router entropy of the served
    tokens; column E: per-class tokens, gate total and entropy (see kernels/expert_routing.py)."""
    if resolve_backend(backend, (top_k_weights, logits), (acc,)) == "triton":
        expert_routing_triton(top_k_index, top_k_weights, logits, cls, acc, score)
    else:
        expert_routing_ref(top_k_index, top_k_weights, logits, cls, acc, score)
