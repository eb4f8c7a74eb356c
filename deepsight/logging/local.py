"""The default logger: everything is already in the run folder, so it only says where.

results.json, report.md and report.html are written by the run itself; this logger
adds nothing to the folder and talks to no service.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("deepsight")


class LocalLogger:
    """Logger interface of ``build_logger``: ``log_results(results, run_dir)`` and ``finish()``."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)

    def log_results(self, results: dict[str, Any], run_dir: str | Path) -> None:
        n_scans, n_evals = len(results.get("scans") or {}), len(results.get("evals") or {})
        log.info("%d scans, %d benchmarks: results in %s", n_scans, n_evals, Path(run_dir) / "results.json")

    def finish(self) -> None:
        pass
