"""Shared pieces of the kernel tests (tests/test_kernels_*.py).

Where CUDA is present (and TRITON_INTERPRET is not set) the Triton kernels run natively on
the GPU; elsewhere they run in Triton's CPU interpreter, which tests/conftest.py switches on
before anything imports triton (the mode is fixed at import).
"""

from __future__ import annotations

import os

import pytest
import torch

NATIVE_CUDA = torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") != "1"
DTYPES = [torch.float32, torch.bfloat16]


@pytest.fixture
def device() -> torch.device:
    """Where the Triton kernels under test run: the GPU natively, else the CPU interpreter."""
    pytest.importorskip("triton")
    if NATIVE_CUDA:
        return torch.device("cuda")
    assert os.environ.get("TRITON_INTERPRET") == "1", "no CUDA: run with TRITON_INTERPRET=1 (tests/conftest.py sets it)"
    return torch.device("cpu")


def odd_size(gen: torch.Generator, lo: int, hi: int, avoid: int = 16) -> int:
    """A random size in [lo, hi] that is not a multiple of ``avoid`` (block sizes are powers of two)."""
    while True:
        n = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        if n % avoid:
            return n


def randn(gen: torch.Generator, *shape: int, dtype=torch.float32, device="cpu", scale: float = 1.0) -> torch.Tensor:
    """Random normal values rounded to ``dtype`` (drawn on CPU so every device sees the same numbers)."""
    return (torch.randn(*shape, generator=gen) * scale).to(dtype).to(device)


def poison_like(t_shape: tuple[int, ...], dtype, device, gen: torch.Generator) -> torch.Tensor:
    """An accumulator pre-filled with large random values: the op must add to them, not overwrite."""
    return (torch.randn(*t_shape, generator=gen, dtype=torch.float64) * 100).to(dtype).to(device)


def assert_close64(actual: torch.Tensor, expected: torch.Tensor, rel: float = 2e-5, what: str = "") -> None:
    """Compare with a float64 expectation, tolerance relative to the expectation's scale.

    bf16 inputs are compared against float64 math on the same bf16-rounded values: the
    kernels upcast to fp32 (products of bf16 numbers are exact in fp32), so the only
    error left is fp32 accumulation and the result's rounding, as for fp32 inputs.
    """
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    scale = max(1.0, float(e.abs().max())) if e.numel() else 1.0
    err = float((a - e).abs().max()) if e.numel() else 0.0
    assert err <= rel * scale, f"{what}: max abs error {err:.3g} > {rel:g} * {scale:.3g}"
