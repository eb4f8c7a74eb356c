"""A scan's or benchmark's settings as a plain dict, whatever form they arrive in.

Hydra hands typed ``DictConfig`` nodes, tests and library callers pass the dataclasses of
``schema.py`` (or plain mappings); results record the exact settings used as JSON-ready dicts.

Usage::

    from deepsight.config.plain import config_dict
    result["config"] = config_dict(cfg)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any


def config_dict(cfg: Any) -> dict[str, Any]:
    """``cfg`` (an OmegaConf node, a dataclass instance or a mapping) as a plain dict, interpolations resolved."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return asdict(cfg)
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"cannot turn a {type(cfg).__name__} into a config dict")
