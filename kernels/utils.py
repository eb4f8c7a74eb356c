"""Shared helpers of the Triton kernels: optional Triton import, lazy JIT, block sizes, checks.

Triton is optional: when it is missing, ``HAS_TRITON`` is False, ``tl`` is None and every
op falls back to its torch path (kernel bodies are only ever parsed by Triton, and their
``tl.constexpr`` annotations are strings thanks to postponed evaluation).

``lazy_jit`` defers ``triton.jit`` until the first launch and checks that the launch mode
matches the one triton was imported in. Triton decides at import/decoration time whether
its jit functions (including ``tl.sum``, ``tl.max`` ...) run compiled or in the CPU
interpreter, so ``TRITON_INTERPRET=1`` must be set before anything imports triton
(transformers does, too): tests/conftest.py sets it at the top when there is no CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

try:  # optional dependency: CPU-only installs may lack it
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None
    tl = None
    HAS_TRITON = False

FLOAT_INPUTS = (torch.float32, torch.float16, torch.bfloat16)
FLOAT_ACCUMULATORS = (torch.float32, torch.float64)


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (launch sizing: programs aimed at per SM)."""
    return torch.cuda.get_device_properties(device).multi_processor_count


class LazyJit:
    """A ``@triton.jit`` kernel compiled on first launch, once per interpreter mode."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self._by_mode: dict[bool, Any] = {}

    def __getitem__(self, grid: Any) -> Any:
        if not HAS_TRITON:
            raise RuntimeError(f"{self.__name__}: triton is not installed")
        mode = interpreting()
        if mode != _imported_interpreted():
            raise RuntimeError(
                f"{self.__name__}: TRITON_INTERPRET changed after triton was imported; set it before "
                "anything imports triton (tests/conftest.py does so on machines without CUDA)"
            )
        kernel = self._by_mode.get(mode)
        if kernel is None:
            kernel = self._by_mode[mode] = triton.jit(self.fn)
        return kernel[grid]


def _imported_interpreted() -> bool:
    """Whether triton.language was imported in interpreter mode (its own jit functions say so)."""
    return type(tl.standard.max).__name__ == "InterpretedFunction"


def lazy_jit(fn: Callable[..., Any]) -> LazyJit:
    """Decorator: like ``triton.jit`` but resolved at the first launch (see module docstring)."""
    return LazyJit(fn)


def triton_usable(*tensors: torch.Tensor) -> bool:
    """Whether the Triton path can run on these tensors (CUDA, or CPU under the interpreter)."""
    if not HAS_TRITON:
        return False
    if interpreting():
        return True
    return all(t.is_cuda for t in tensors)


def next_pow2(n: int) -> int:
    """Smallest power of two >= max(n, 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def block_size(n: int, lo: int = 16, hi: int = 128) -> int:
    """Power-of-two block covering ``n`` clamped to [lo, hi] (Triton needs powers of two)."""
    return max(lo, min(hi, next_pow2(n)))


def cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def check_float_input(name: str, t: torch.Tensor, ndim: int) -> None:
    """Clear errors for a kernel input of the wrong rank or dtype."""
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_INPUTS + (torch.float64,):
        raise ValueError(f"{name}: expected a floating tensor (bf16/fp16/fp32/fp64), got {t.dtype}")


def check_accumulator(name: str, t: torch.Tensor, shape: tuple[int, ...], device: torch.device) -> None:
    """Accumulators are updated in place: right shape, fp32/fp64, contiguous, on the inputs' device."""
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.dtype not in FLOAT_ACCUMULATORS:
        raise ValueError(f"{name}: accumulator must be float32 or float64, got {t.dtype}")
    if not t.is_contiguous():
        raise ValueError(f"{name}: accumulator must be contiguous (it is updated in place)")
    if t.device != device:
        raise ValueError(f"{name}: accumulator on {t.device}, inputs on {device}")


def check_labels(name: str, labels: torch.Tensor, n: int, num_classes: int) -> None:
    """Integer labels of shape (n,) below ``num_classes`` (negative labels mean "no class").

    The range is checked only for CPU labels: reading CUDA labels would sync every batch. The Triton
    kernels ignore CUDA labels >= num_classes like negative ones (the torch path raises a device assert).
    """
    if labels.dim() != 1 or labels.shape[0] != n or labels.dtype.is_floating_point:
        raise ValueError(f"{name}: expected integers of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
    if n and labels.device.type == "cpu" and int(labels.max()) >= num_classes:
        raise ValueError(f"{name}: largest label {int(labels.max())} >= number of classes {num_classes}")


def as_mask_int(mask: torch.Tensor) -> torch.Tensor:
    """A bool/int mask as a same-shape integer tensor the kernels can load (nonzero = valid)."""
    if mask.dtype == torch.bool:
        return mask.view(torch.uint8)  # same item size: a free reinterpretation, any strides
    if mask.dtype.is_floating_point or mask.dtype.is_complex:
        raise ValueError(f"mask: expected a bool or integer tensor, got {mask.dtype}")
    return mask
