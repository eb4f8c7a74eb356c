"""Benchmark registry and the context every benchmark receives.

A benchmark is ``run(ctx: EvalContext, cfg: BenchmarkConfig) -> dict`` returning::

    {"metrics": {"<rate>": {"value", "count", "n", "ci_low", "ci_high"}, ...},
     "unknown": {"count", "n", "rate", "reasons": {...}},
     "breakdowns": {"<field>": {"<value>": {...metrics...}}},
     "examples": [...worst examples: failures only, most severe first (evals/failures.py), truncated...],
     "generations_file": "generations/<name>.jsonl", "warnings": [...], "config": {...}}
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsight.data.paths import resolve_data_path
from deepsight.errors import ConfigError

BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {}
IMAGE_TEXT_BENCHMARKS: set[str] = set()  # benchmarks that need an image-text target model


def check_benchmark_config(name: str, cfg: Any) -> None:
    """Unknown keys in ``eval.<name>`` are errors naming the key (a dict-typed node is not struct-checked)."""
    from dataclasses import fields

    from deepsight.config.schema import BenchmarkConfig

    keys = list(cfg.keys()) if hasattr(cfg, "keys") else []
    known = {f.name for f in fields(BenchmarkConfig)}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ConfigError(f"eval.{name}: unknown key(s) {', '.join(f'eval.{name}.{k}' for k in unknown)}; "
                          f"known: {sorted(known)}")


def register_benchmark(name: str, image_text: bool = False):
    """``image_text=True``: the benchmark shows images, so audits run it only on image-text models."""

    def wrap(fn):
        assert name not in BENCHMARKS, f"benchmark {name!r} registered twice"
        if image_text:
            IMAGE_TEXT_BENCHMARKS.add(name)

        @functools.wraps(fn)
        def checked(ctx, cfg):
            check_benchmark_config(name, cfg)
            return fn(ctx, cfg)

        BENCHMARKS[name] = checked
        return fn

    return wrap


@dataclass
class EvalContext:
    generator: Any  # deepsight.generation.base.Generator for the target model
    judge_factory: Callable[[str], Any]  # judge name -> Judge (built lazily, cached)
    run_dir: Path
    data_dir: Path | None
    generation: Any  # GenerationConfig
    model_name: str = ""
    model: Any = None  # the HF model when loaded in-process (TruthfulQA log-probs)
    tokenizer: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def data_path(self, relative: str, key: str) -> Path:
        """Resolve a data file under ``data_dir``; ``key`` is the config key that named it."""
        return resolve_data_path(self.data_dir, relative, key)


def is_image_text_benchmark(name: str) -> bool:
    import deepsight.evals.all  # noqa: F401

    return name in IMAGE_TEXT_BENCHMARKS


def get_benchmark(name: str):
    import deepsight.evals.all  # noqa: F401

    if name not in BENCHMARKS:
        raise ConfigError(f"eval={name!r} is not a known benchmark; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]
