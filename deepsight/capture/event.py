"""What a sink receives: one ``CaptureEvent`` per (spec, layer) per model call, reduced lazily.

``_Call`` is what the engine knows about the model call in progress (batch shape, validity mask,
per-row metadata, generation step, shared prefix); ``CaptureEvent`` wraps one hooked tensor of that
call and reduces it over tokens only when the sink reads ``value`` (see docs/engine.md section 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from deepsight.capture import reduce as R
from deepsight.capture.spec import CaptureSpec

if TYPE_CHECKING:
    from deepsight.capture.prefix import SharedPrefix


@dataclass
class _Call:
    """What the engine knows about the model call in progress."""

    batch: int
    length: int
    mask: torch.Tensor | None  # (B, T) validity of the current positions, on the input device
    meta: dict[str, Any]
    step: int | None = None  # forward-call index within a generation (0 = prefill)
    keep: torch.Tensor | None = None  # (R,) rows still generating at this step; None = all rows
    masks: dict[torch.device, torch.Tensor] = field(default_factory=dict)  # mask per device (moved once)
    prefix: SharedPrefix | None = None  # states to prepend (the call runs the positions after it)

    def mask_on(self, device: torch.device) -> torch.Tensor | None:
        if self.mask is None:
            return None
        if device not in self.masks:
            self.masks[device] = self.mask.to(device, non_blocking=True)
        return self.masks[device]


class CaptureEvent:
    """One capture: ``spec``, ``layer``, the raw ``hidden`` tensor, its ``mask`` and the lazily reduced
    ``value`` with ``rows`` (the batch row of each value row; None = row i is batch row i)."""

    def __init__(self, call: _Call, spec: CaptureSpec, layer: int, hidden: torch.Tensor,
                 top_k_index: torch.Tensor | None = None):
        self.spec, self.layer, self.hidden, self._call = spec, layer, hidden, call
        self.step = call.step
        self._top_k_index = top_k_index
        self._value: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None
        self.experts: torch.Tensor | None = None  # expert_input: (P,) expert of each value row
        self._taken: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return self.hidden.device

    @property
    def mask(self) -> torch.Tensor | None:
        """(B, T) validity of the tokens of ``hidden`` on its device (None = all valid)."""
        return self._call.mask_on(self.hidden.device)

    @property
    def value(self) -> torch.Tensor:
        """mean: (B, D) float32; last: (B, D); all: (N_valid, D); step: (R, D) rows still generating;
        expert_input/all: (P, D) one row per valid (token, expert) pair; none: ``hidden``."""
        if self._value is None:
            self._value, self._rows = self._reduce()
        return self._value

    @property
    def rows(self) -> torch.Tensor | None:
        self.value  # noqa: B018 - computes rows with the value
        return self._rows

    def take(self, key: str) -> Any:
        """Per-row metadata passed to ``Capture.forward`` (e.g. labels), aligned with ``value``'s rows
        and moved to this device (tensors) or listed (sequences)."""
        if key not in self._taken:
            if key not in self._call.meta:
                raise KeyError(f"capture metadata {key!r} was not passed to forward(); have {sorted(self._call.meta)}")
            item, rows = self._call.meta[key], self.rows
            if isinstance(item, torch.Tensor):
                item = item.to(self.device, non_blocking=True)
                self._taken[key] = item if rows is None else item[rows]
            else:
                self._taken[key] = list(item) if rows is None else [item[i] for i in rows.tolist()]
        return self._taken[key]

    def _reduce(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        how, h, mask = self.spec.reduce, self.hidden, self.mask
        if self.spec.site == "expert_input":
            return self._expert_pairs() if how == "all" else (h, None)
        if how == "none":
            return h, None
        if how == "mean":
            return R.masked_mean(h, mask), None
        if how == "last":
            return R.last_token(h, mask), None
        if how == "all":
            return R.valid_tokens(h, mask)
        # step: last position of this call per row (prefill: last valid token), rows still generating
        last = R.last_token(h, mask)  # (B, D)
        keep = self._call.keep
        if keep is None:
            return last, torch.arange(h.shape[0], device=h.device)
        keep = keep.to(h.device)
        return last[keep], keep

    def _expert_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        h, idx = self.hidden, self._top_k_index  # (N, D), (N, k) with N = B * T
        n, k = idx.shape
        token = torch.arange(n, device=h.device)[:, None].expand(n, k)  # (N, k)
        mask = self.mask
        sel = torch.ones_like(idx, dtype=torch.bool) if mask is None else mask.reshape(n, 1).bool().expand(n, k)
        tok = token[sel]
        self.experts = idx[sel]
        return h[tok], tok // self._call.length
