"""glibc's malloc set to keep freed memory for the next tensor instead of returning it to the kernel.

Role: one of the CPU fast paths (``hardware.cpu_fast_paths``). PyTorch's CPU allocator takes every
tensor from ``malloc``. glibc serves a block above its mmap threshold (128 KiB at start, raised
dynamically up to 32 MiB) with fresh ``mmap`` pages, and gives the top of its heap back to the
kernel once more than its trim threshold (twice the mmap threshold) is free. A forward over a batch
frees several MB of activations per layer (SmolLM2's MLP intermediates at 1,200 tokens: 7 MB each),
so the heap is trimmed and the same memory page-faulted and zeroed again in the next layer: a 60-prompt
generation's prefill took 394k minor faults (1.6 GB of pages) on the dev machine, 67k with the
thresholds fixed, and a whole 60 x 128-token run 550k faults and 1.4 s of system time against 130k and
0.4 s. ``keep_freed_memory()`` fixes ``M_MMAP_THRESHOLD`` at 32 MiB (the largest glibc accepts on 64-bit)
and ``M_TRIM_THRESHOLD`` at 1 GiB, so freed blocks stay in the heap for reuse, as jemalloc and
tcmalloc (the allocators PyTorch's CPU performance guides recommend) keep theirs.

The numbers do not change (only where memory comes from). The setting is process-wide and stays (glibc
has no call that restores its dynamic thresholds); it keeps up to 1 GiB of freed heap resident. It is
left alone where the user chose an allocator: ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
set, or jemalloc / tcmalloc / mimalloc in ``LD_PRELOAD``; and it does nothing off glibc.

    from deepsight.models.cpu_allocator import keep_freed_memory
    keep_freed_memory()   # True once glibc took the settings in this process
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger("deepsight")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc; mallopt refuses larger values
TRIM_THRESHOLD = 1 << 30
_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")
_applied = False


def user_chose_allocator(environ: dict[str, str] | None = None) -> str | None:
    """Why the user's own allocator settings win (an env variable or a preloaded allocator), else None."""
    env = os.environ if environ is None else environ
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        if name in env:
            return f"{name} is set"
    preload = env.get("LD_PRELOAD", "")
    for lib in _OTHER_ALLOCATORS:
        if lib in preload:
            return f"{lib} is preloaded"
    return None


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once); True when they are in effect."""
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    reason = user_chose_allocator()
    if reason:
        log.debug("malloc thresholds left alone: %s", reason)
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold first: setting it also fixes the trim threshold's
    # dynamic rule, which the second call then overrides
    _applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _applied
