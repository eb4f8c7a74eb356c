"""The CPU fast paths an audit turns on (``hardware.cpu_fast_paths``): pre-packed oneDNN linears
(``cpu_linears.py``), grouped-query attention without copies (``cpu_attention.py``), and glibc's malloc
keeping freed memory for the next tensor (``cpu_allocator.py``; process-wide, applied once when the model
is on the CPU). They keep the numbers of the plain path up to float32 rounding and do nothing for GPU
tensors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from deepsight.models.cpu_allocator import keep_freed_memory
from deepsight.models.cpu_attention import native_gqa_on_cpu
from deepsight.models.cpu_linears import PackedLinears


@contextmanager
def cpu_fast_paths(model: nn.Module, enabled: bool = True, packed: PackedLinears | None = None) -> Iterator[dict]:
    """Inside the block ``model`` runs with both fast paths where they apply; yields what was switched on.
    ``packed``: linears packed earlier (benchmarks pack once per model, as the audit does at load)."""
    if packed is None or not enabled:
        packed = PackedLinears(model, enabled=enabled)
    malloc = enabled and _on_cpu(model) and keep_freed_memory()
    with packed.active() as n, native_gqa_on_cpu(enabled=enabled) as gqa:
        yield {"packed_linears": n, "native_gqa": gqa, "malloc_keeps_freed": malloc}


def _on_cpu(model: nn.Module) -> bool:
    return any(p.device.type == "cpu" for p in model.parameters())
