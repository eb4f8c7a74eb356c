"""The run folder: results.json (rewritten atomically after every stage), timings, metadata.

Nothing computed is lost: each finished scan or benchmark is written at once,
so a run killed later still has every earlier result on disk.
"""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepsight.util.atomic import atomic_write_text
from deepsight.util.jsonable import to_jsonable
from deepsight.util.scrub import scrub_results

RESULTS_SCHEMA_VERSION = 1


def library_versions() -> dict[str, str]:
    import torch
    import transformers

    import deepsight

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "deepsight": deepsight.__version__,
    }
    try:
        import triton

        versions["triton"] = triton.__version__
    except ImportError:
        pass
    return versions


def hardware_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpus": [],
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1)})
    return info


class RunRecorder:
    """Collects a run's results and rewrites ``results.json`` after each change."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Any] = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "status": "running",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(),
            "hardware": hardware_info(),
            "model": {},
            "config": config,
            "timings": {},
            "scans": {},
            "evals": {},
            "warnings": [],
        }
        self.flush()

    @property
    def path(self) -> Path:
        return self.run_dir / "results.json"

    def flush(self) -> None:
        clean = scrub_results(to_jsonable(self.results))  # the one scrubber: nothing secret reaches the file
        atomic_write_text(self.path, json.dumps(clean, indent=2, allow_nan=False) + "\n")

    def set_model(self, info: dict[str, Any]) -> None:
        self.results["model"] = info
        self.flush()

    def record(self, section: str, name: str, result: dict[str, Any]) -> None:
        """Store one scan's or benchmark's result (``section`` is "scans" or "evals")."""
        assert section in ("scans", "evals"), section
        self.results[section][name] = result
        self.flush()

    def warn(self, message: str) -> None:
        self.results["warnings"].append(message)
        self.flush()

    @contextmanager
    def stage(self, name: str):
        """Time a stage; the timing is recorded even if the stage raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.results["timings"][name] = round(time.perf_counter() - start, 3)
            self.flush()

    def finish(self, status: str = "completed") -> None:
        self.results["status"] = status
        self.results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.flush()
