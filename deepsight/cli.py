"""The ``deepsight`` command: a Hydra application that runs one audit per model.

    deepsight                                   # quick audit of the default model
    deepsight audit=none scan=[tellme] data_dir=../shared/data
    deepsight -m model=smollm2,hf model.path=/models/x   # one run per model
    deepsight plan model=deepseek_v3 hardware=multi_gpu  # memory / FLOPs / time plan, nothing loaded
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from deepsight.config import register_configs
from deepsight.errors import DeepSightError

log = logging.getLogger("deepsight")


@hydra.main(version_base=None, config_path="pkg://deepsight.conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from deepsight.run.audit import run_audit

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        results = run_audit(cfg, run_dir)
    except DeepSightError as e:
        log.error("%s", e)
        sys.exit(2)
    # In a multirun one failed model must not stop the sweep; its results.json says what failed.
    if results["status"] != "completed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(1)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "plan":
        from deepsight.run.plan import plan_main

        sys.exit(plan_main(sys.argv[2:]))
    register_configs()
    _hydra_main()


if __name__ == "__main__":
    main()
