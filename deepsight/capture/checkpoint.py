"""Checkpointed scans: save a scan's statistics and its position every N batches; resume after a kill.

A long scan of a large model (hours of batches) must survive a lost node. The engine's batch loop
does it once for every scan: the scan keeps its statistics in one dict (``store``: ``Statistic``
objects, tensors, anything ``torch.save`` pickles) and iterates its batches through
``ScanCheckpoint.batches``; every ``every`` batches the dict and the number of finished batches are
written atomically to ``<run_dir>/checkpoints/<scan>.pt``. Rerunning the audit into the same run folder
(``hydra.run.dir=<that folder>``) restores the dict, skips the finished batches and goes on: the
statistics get the same additions in the same order, so the results are bit-identical to an
uninterrupted run (same device and build). A checkpoint written for other inputs (another model, data,
settings or batch plan; the scan passes what defines them as ``fingerprint``) is ignored with a warning.

    ckpt = ScanCheckpoint.for_scan(run_dir, "tellme", every=hardware.checkpoint_every)
    store: dict = {}
    ckpt.restore(store, fingerprint={"ids": ids, "layer": layer})   # fills store, sets ckpt.position
    for batch in ckpt.batches(iter_batches(ids, ...), store):       # skips batches done before the kill
        cap.forward(...)                                            # sinks add into store's statistics
    # store now holds the statistics of every batch

``every=0`` (the default, ``hardware.checkpoint_every``) writes nothing and restores nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("deepsight")

_FORMAT = 1


def fingerprint_of(value: Any) -> str:
    """A stable hash of plain data (lists of token ids, numbers, strings, nested dicts)."""
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


class ScanCheckpoint:
    """Position + statistics of one scan, saved every ``every`` batches to ``path`` (see module docstring)."""

    def __init__(self, path: str | Path | None, every: int = 0):
        if every < 0:
            raise ValueError(f"hardware.checkpoint_every={every} must be >= 0")
        self.path = Path(path) if path is not None else None
        self.every = int(every) if self.path is not None else 0
        self.position = 0  # batches finished (and in the statistics)
        self.fingerprint: str | None = None
        self.resumed_from = 0

    @classmethod
    def for_scan(cls, run_dir: str | Path | None, scan: str, every: int = 0) -> ScanCheckpoint:
        if run_dir is None or not every:
            return cls(None, 0)
        return cls(Path(run_dir) / "checkpoints" / f"{scan}.pt", every)

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def restore(self, store: dict, fingerprint: Any = None) -> int:
        """Fill ``store`` from the saved checkpoint when it was made for the same ``fingerprint``; the
        number of batches already done (0 without a usable checkpoint)."""
        self.fingerprint = fingerprint_of(fingerprint)
        self.position = self.resumed_from = 0
        if not self.enabled or not self.path.is_file():
            return 0
        try:
            # our own file in the run folder; it pickles Statistic objects, hence weights_only=False
            saved = torch.load(self.path, map_location=None, weights_only=False)
        except Exception as e:  # noqa: BLE001 -- a truncated or foreign file: start over, say why
            log.warning("checkpoint %s unreadable (%s): starting the scan from the beginning", self.path, e)
            return 0
        if saved.get("format") != _FORMAT or saved.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s was written for other inputs or settings: starting from the beginning",
                        self.path)
            return 0
        store.clear()
        store.update(saved["store"])
        self.position = self.resumed_from = int(saved["position"])
        log.info("resuming from %s: %d batches already done", self.path, self.position)
        return self.position

    def save(self, store: dict) -> None:
        """Write ``store`` and the position atomically (a kill mid-write leaves the previous checkpoint)."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        torch.save({"format": _FORMAT, "fingerprint": self.fingerprint, "position": self.position,
                    "store": store}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def batches(self, iterable: Iterable, store: dict) -> Iterator:
        """Yield the batches after ``position``; after every ``every``-th finished batch save ``store``.

        The code after ``yield`` runs when the caller asks for the next batch, i.e. once the loop body
        has added the batch into the statistics; a body that raises saves nothing for that batch."""
        for i, batch in enumerate(iterable):
            if i < self.position:
                continue
            yield batch
            self.position = i + 1
            if self.enabled and self.position % self.every == 0:
                self.save(store)
