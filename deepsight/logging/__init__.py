"""Run loggers: ``build_logger(LoggerConfig, config, run_dir)`` -> an object with
``log_results(results, run_dir)`` and ``finish()``.

``logger=local`` (default) only points at the run folder; ``logger=wandb`` logs the
config (secrets scrubbed), metrics, figures and sample tables to Weights & Biases,
one W&B run per model, grouped per multirun sweep, offline unless credentials exist
(``wandb sync`` later). ``mode=disabled`` falls back to the local logger.

    logger = build_logger(cfg.logger, config_dict, run_dir)
    ...
    logger.log_results(results, run_dir)
    logger.finish()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsight.errors import ConfigError
from deepsight.logging.local import LocalLogger

LOGGERS = ("local", "wandb")
MODES = ("auto", "online", "offline", "disabled")


def build_logger(cfg: Any, config: dict[str, Any], run_dir: str | Path):
    """The logger named by ``cfg.name`` (``logger.name``)."""
    if cfg.name not in LOGGERS:
        raise ConfigError(f"logger.name={cfg.name!r} is not one of {list(LOGGERS)}")
    if cfg.mode not in MODES:
        raise ConfigError(f"logger.mode={cfg.mode!r} is not one of {list(MODES)}")
    if cfg.name == "local" or cfg.mode == "disabled":
        return LocalLogger(run_dir)
    from deepsight.logging.wandb_logger import WandbLogger

    return WandbLogger(cfg, config, run_dir)


__all__ = ["build_logger", "LocalLogger"]
