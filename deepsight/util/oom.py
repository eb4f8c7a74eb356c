"""Out-of-memory helpers shared by generation and the capture engine.

``is_out_of_memory(exc)`` recognises an accelerator out-of-memory error (``torch.OutOfMemoryError``,
CUDA's, or a RuntimeError saying so); ``free_accelerator_memory()`` releases cached blocks after one,
so that a retry with fewer rows can use them.

Usage::

    try:
        run(rows)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        oom = True  # leave the except block first: the traceback pins the batch's tensors
    if oom:
        free_accelerator_memory(); run(rows[: len(rows) // 2]); ...
"""

from __future__ import annotations

import gc

import torch


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA (or other accelerator) out-of-memory errors."""
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError) if t)
    return isinstance(exc, oom_types) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def free_accelerator_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
