"""Non-finite activations and gradients: excluded row by row, counted per layer, never folded in.

A NaN or an infinity added into a running sum poisons the whole statistic (every later read-out is
NaN), and one clipped silently biases it. The capture hooks therefore screen each captured tensor
before its sink runs: a *row* (one sample of the batch) with any NaN or +-inf at a valid token
(``mask == 1``; padding is ignored) is dropped from that capture's event, so the statistic of that
layer sees only finite rows, and the number of dropped rows is counted per (capture, layer) — or per
module for gradients. The counts are kept on the ``Capture`` / ``GradCapture`` (``.nonfinite``), logged
as a warning the first time a layer has one, and added to every ``collect()`` block in progress, which
the audit runner wraps around each scan to put them into the scan's results (``nonfinite_rows``) and
the run's warnings. A row dropped at one layer may be kept at another where it is finite.

Usage::

    with finite.collect() as counts:          # {capture name: {layer or module: rows dropped}}
        result = scan(ctx, cfg)
    if counts:
        result["nonfinite_rows"] = counts
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from deepsight.capture.event import _Call

log = logging.getLogger("deepsight")

_COLLECTORS: list[dict[str, dict[str, int]]] = []


@contextmanager
def collect() -> Iterator[dict[str, dict[str, int]]]:
    """Gather every non-finite row count reported while the block runs: {capture: {layer: rows}}."""
    counts: dict[str, dict[str, int]] = {}
    _COLLECTORS.append(counts)
    try:
        yield counts
    finally:
        _COLLECTORS.remove(counts)


def summary(counts: dict[str, dict[str, int]]) -> str:
    """One line: ``block_output: layer 3: 2 rows, layer 5: 2 rows; ...``."""
    return "; ".join(f"{name}: " + ", ".join(f"{where}: {n} row{'s' * (n != 1)}" for where, n in per.items())
                     for name, per in counts.items())


class NonFiniteCounts:
    """Rows dropped per (capture, layer) by one engine object; ``record`` warns on a layer's first one."""

    def __init__(self, what: str = "activations"):
        self.what = what
        self.rows: dict[str, dict[str, int]] = {}

    def record(self, name: str, where: str, n: int, total: int, action: str = "excluded") -> None:
        per = self.rows.setdefault(name, {})
        if where not in per:
            log.warning("non-finite %s: %d of %d rows %s at %s %s (counted; later ones are not logged again)",
                        self.what, n, total, action, name, where)
        per[where] = per.get(where, 0) + n
        for counts in _COLLECTORS:
            c = counts.setdefault(name, {})
            c[where] = c.get(where, 0) + n

    def __bool__(self) -> bool:
        return bool(self.rows)


def bad_rows(tensors: Sequence[torch.Tensor | None], batch: int, length: int,
             mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B,) bool: rows with a NaN / inf at a valid token in any of ``tensors``, each (B, T, ...) or
    (B*T, ...) with T = ``length`` (``mask``: (B, T) validity or None; integer tensors are skipped).
    None when every row is finite (one host sync)."""
    bad: torch.Tensor | None = None
    for t in tensors:
        if t is None or not t.is_floating_point() or t.numel() == 0:
            continue
        per_token = _nonfinite_tokens(t.reshape(batch, length, -1))  # (B, T)
        if mask is not None:
            per_token &= mask.to(per_token.device).bool()
        rows = per_token.any(1)
        bad = rows if bad is None else bad | rows.to(bad.device)
    if bad is None or not bool(bad.any()):
        return None
    return bad


def _nonfinite_tokens(t: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: tokens of a (B, T, F) tensor with a NaN or +-inf among their F values.

    One read of ``t``: a token's sum over F is non-finite whenever one of its values is (IEEE addition
    never turns a NaN or an infinity into a finite number). A finite token whose sum overflows is
    flagged too, so the flagged tokens -- rare -- are checked value by value: the result is exact."""
    flagged = ~torch.isfinite(t.sum(-1))
    if not bool(flagged.any()):
        return flagged
    where = flagged.nonzero(as_tuple=True)
    flagged[where] = ~torch.isfinite(t[where]).all(-1)
    return flagged


def drop_rows(call: _Call, keep: torch.Tensor) -> _Call:
    """The scan call restricted to batch rows ``keep`` ((K,) sorted indices): mask and per-row metadata
    sliced. The shared prefix is dropped (callers pass states that already include it)."""
    assert call.step is None, "generation steps are not cut (see screen)"
    mask = None if call.mask is None else call.mask[keep.to(call.mask.device)]
    meta = {k: take_rows(v, keep) for k, v in call.meta.items()}
    return _Call(int(keep.numel()), call.length, mask, meta)


def take_rows(item: Any, keep: torch.Tensor) -> Any:
    if isinstance(item, torch.Tensor):
        return item[keep.to(item.device)]
    return [item[i] for i in keep.tolist()]


def slice_rows(t: torch.Tensor | None, keep: torch.Tensor, batch: int, length: int) -> torch.Tensor | None:
    """Rows ``keep`` of a (B, ...) tensor, or their tokens of a flattened (B*T, ...) one."""
    if t is None:
        return None
    keep = keep.to(t.device)
    if length == 1 or t.shape[0] != batch * length:
        return t[keep]
    return t.reshape(batch, length, *t.shape[1:])[keep].reshape(-1, *t.shape[1:])


def screen(counts: NonFiniteCounts, name: str, layer: int, call: _Call, tensors: Sequence[torch.Tensor | None],
           length: int, mask: torch.Tensor | None) -> tuple[_Call, torch.Tensor | None] | None:
    """Check one capture of ``call``: (call, None) when every row that reaches the sink is finite,
    (call restricted to the finite rows, their (K,) indices) otherwise, None when no row is left.
    Rows a generation step skips anyway (finished rows) are neither checked nor counted. Generation
    steps are counted but not cut: their sinks pair each value row with a decoder row (MI-Peaks keeps
    one state per generated token), so the rows are passed through and the count says so."""
    bad = bad_rows(tensors, call.batch, length, mask)
    if bad is None:
        return call, None
    total = call.batch
    if call.keep is not None:  # generation step: only the rows still running reach the sink
        running = torch.zeros_like(bad)
        running[call.keep.to(bad.device)] = True
        bad &= running
        total = int(call.keep.numel())
        if not bool(bad.any()):
            return call, None
    if call.step is not None:
        counts.record(name, f"layer {layer}", int(bad.sum()), total, "passed through (generation step)")
        return call, None
    counts.record(name, f"layer {layer}", int(bad.sum()), total)
    keep = (~bad).nonzero().squeeze(1)
    if keep.numel() == 0:
        return None
    return drop_rows(call, keep), keep
