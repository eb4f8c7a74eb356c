"""The ``deepsight`` command: a Hydra application that runs one audit per model.

    deepsight                                   # quick audit of the default model
    deepsight audit=none scan=[tellme] data_dir=../shared/data
    deepsight -m model=smollm2,hf model.path=/models/x   # one run per model
    deepsight plan model=deepseek_v3 hardware=multi_gpu  # memory / FLOPs / time plan, nothing loaded
    deepsight hardware=multi_gpu hardware.processes=2     # 2 data-parallel ranks (launches torchrun)
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
    from deepsight.run.distributed import finish, init_from_env

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        rank, _ = init_from_env(cfg)
        if rank == 0:
            results = run_audit(cfg, run_dir)
        else:  # scans only (their sums need every rank); outputs go to a folder that is deleted, logs stay
            import tempfile

            cfg.eval = {}
            cfg.logger.name = "local"
            with tempfile.TemporaryDirectory(prefix=f"deepsight_rank{rank}_") as tmp:
                results = run_audit(cfg, tmp)
    except DeepSightError as e:
        log.error("%s", e)
        sys.exit(2)
    finally:
        finish()
    # In a multirun one failed model must not stop the sweep; its results.json says what failed.
    if results["status"] != "completed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(1)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "plan":
        from deepsight.run.plan import plan_main

        sys.exit(plan_main(sys.argv[2:]))
    from deepsight.run.distributed import launch, requested_processes, under_torchrun

    argv = sys.argv[1:]
    single = {"-m", "--multirun", "-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "--version"}
    if not under_torchrun() and not single.intersection(argv):
        nproc = requested_processes(argv)
        if nproc > 1:  # hardware.processes: the same command under torchrun, one run folder for every rank
            sys.exit(launch(nproc, argv))
    register_configs()
    _hydra_main()


if __name__ == "__main__":
    main()
