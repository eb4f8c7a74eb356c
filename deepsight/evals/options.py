"""Benchmark-specific settings (``eval.<name>.options``) with defaults; unknown keys are errors.

    opts = options_of(cfg, "uncontrolled_aird", {"stages": ["eval", "deploy"], "max_turns": None})
"""

from __future__ import annotations

from typing import Any

from deepsight.errors import ConfigError


def options_of(cfg: Any, name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    given = dict(getattr(cfg, "options", None) or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        keys = ", ".join(f"eval.{name}.options.{k}" for k in unknown)
        raise ConfigError(f"eval.{name}.options: unknown key(s) {keys}; known: {sorted(defaults)}")
    return {**defaults, **given}
