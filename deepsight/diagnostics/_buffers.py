"""Grow-only flat buffers kept between calls, one per purpose, device and dtype.

A fresh multi-MB tensor in every call of a hot loop costs a page fault per 4 kB on first touch (on the
2-core dev VM ~1.8 us each: more than the arithmetic in SPIN's head loss or the HSIC basis recurrence).
A buffer here is reused instead; callers view the first n elements and must not hold the view across a
later call for the same purpose.
"""

from __future__ import annotations

import torch

_buffers: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}


def reused_buffer(purpose: str, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A flat (n,) view of the ``purpose`` buffer on ``device`` in ``dtype``, grown when n exceeds it."""
    key = (purpose, torch.device(device), dtype)
    buf = _buffers.get(key)
    if buf is None or buf.numel() < n:
        buf = _buffers[key] = torch.empty(n, device=device, dtype=dtype)
    return buf[:n]
