"""Generation mode of the capture engine: one ``step`` per model call, rows that finished skipped.

A ``GenerationSteps`` numbers the calls of one generation (0 = prefill) and tracks which rows
finished: a row whose fed-back token (the last input id of a later call) is an EOS id, or that
the caller marked with ``mark_finished``. ``on_call`` returns (step, rows still generating or
None for all) for the ``step`` reduction. Used by ``Capture.generate`` / ``begin_generation``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class GenerationSteps:
    def __init__(self, eos_token_id: int | Sequence[int] | None, meta: dict):
        self.eos = None if eos_token_id is None else torch.as_tensor(eos_token_id, dtype=torch.long).reshape(-1)
        self.meta = meta  # per-row metadata of the whole generation
        self.finished: torch.Tensor | None = None  # (B,) bool
        self.calls = 0

    def on_call(self, batch: int, ids: torch.Tensor | None, device: torch.device) -> tuple[int, torch.Tensor | None]:
        """Step index of this call and the (R,) rows still generating (None: every row)."""
        if self.finished is None:
            self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        if self.calls > 0 and self.eos is not None and ids is not None:  # token fed back = last generated
            self.finished |= torch.isin(ids[:, -1], self.eos.to(ids.device))
        step = self.calls
        self.calls += 1
        keep = (~self.finished).nonzero().squeeze(1) if bool(self.finished.any()) else None
        return step, keep

    def mark_finished(self, finished: torch.Tensor) -> None:
        f = finished.bool()
        self.finished = f.clone() if self.finished is None else self.finished | f.to(self.finished.device)
