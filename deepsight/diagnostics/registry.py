"""Scan registry and the context every diagnostic receives.

A scan is ``run(ctx: ScanContext, cfg) -> dict`` returning::

    {"metrics": {...headline numbers named as in the spec...},
     "details": {...per-layer values...},
     "figures": ["figures/<scan>_<what>.png", ...],   # relative to the run dir
     "warnings": [...], "config": {...exact settings used...}}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsight.config.schema import HardwareConfig
from deepsight.data.paths import resolve_data_path
from deepsight.errors import ConfigError

SCANS: dict[str, Callable[..., dict[str, Any]]] = {}


def register_scan(name: str):
    def wrap(fn):
        assert name not in SCANS, f"scan {name!r} registered twice"
        SCANS[name] = fn
        return fn

    return wrap


@dataclass
class ScanContext:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    anatomy: Any  # deepsight.models.anatomy.ModelAnatomy
    run_dir: Path
    data_dir: Path | None
    hardware: HardwareConfig | None  # the run's typed hardware node (None: the defaults)
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hardware is None:
            self.hardware = HardwareConfig()

    @property
    def figures_dir(self) -> Path:
        d = self.run_dir / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def data_path(self, relative: str, key: str) -> Path:
        """Resolve a data file under ``data_dir``; ``key`` is the config key that named it."""
        return resolve_data_path(self.data_dir, relative, key)


def get_scan(name: str):
    # Import the diagnostics so they register themselves.
    import deepsight.diagnostics.all  # noqa: F401

    if name not in SCANS:
        raise ConfigError(f"scan={name!r} is not a known scan; known: {sorted(SCANS)}")
    return SCANS[name]
