"""Run loggers: ``build_logger(LoggerConfig, config, run_dir)`` -> an object with
``log_results(results, run_dir)`` and ``finish()``.

``logger=local`` (default) only points at the run folder; ``logger=wandb`` logs the
config (secrets scrubbed), metrics, figures and sample tables to Weights & Biases,
one W&B run per model, grouped per multirun sweep, offline unless credentials exist
(``wandb sync`` later). ``mode=disabled`` falls back to the local logger, and so does
a W&B start that fails; a failure while logging is reported and never fails the run.

    logger = build_logger(cfg.logger, config_dict, run_dir)
    ...
    logger.log_results(results, run_dir)
    logger.finish()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from deepsight.errors import ConfigError
from deepsight.logging.local import LocalLogger

LOGGERS = ("local", "wandb")
MODES = ("auto", "online", "offline", "disabled")
log = logging.getLogger("deepsight")


def build_logger(cfg: Any, config: dict[str, Any], run_dir: str | Path):
    """The logger named by ``cfg.name`` (``logger.name``)."""
    if cfg.name not in LOGGERS:
        raise ConfigError(f"logger.name={cfg.name!r} is not one of {list(LOGGERS)}")
    if cfg.mode not in MODES:
        raise ConfigError(f"logger.mode={cfg.mode!r} is not one of {list(MODES)}")
    if cfg.name == "local" or cfg.mode == "disabled":
        return LocalLogger(run_dir)
    try:
        from deepsight.logging.wandb_logger import WandbLogger

        return WandbLogger(cfg, config, run_dir)
    except Exception as e:  # the audit's results are on disk either way: never lose a run to its logger
        log.warning("W&B logger unavailable (%s: %s); results stay in %s", type(e).__name__, e, run_dir)
        return LocalLogger(run_dir)


__all__ = ["build_logger", "LocalLogger"]
