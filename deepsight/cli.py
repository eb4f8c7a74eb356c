"""The ``deepsight`` command: a Hydra application that runs one audit per model.

    deepsight                                   # quick audit of the default model
    deepsight audit=none scan=[tellme] data_dir=../shared/data
    deepsight -m model=smollm2,hf model.path=/models/x   # one run per model
    deepsight data list|download|verify         # the benchmark data cache (deepsight/data/cli.py)
    deepsight plan model=deepseek_v3 hardware=multi_gpu  # memory / FLOPs / time plan, nothing loaded
    deepsight hardware=multi_gpu hardware.processes=2     # 2 data-parallel ranks (launches torchrun)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from deepsight.config import register_configs
from deepsight.errors import DeepSightError
from deepsight.util.scrub import install_log_scrubber, scrub_yaml_file

log = logging.getLogger("deepsight")
_unfinished: list[int] = []  # exit codes of the jobs of a multirun that did not complete


@hydra.main(version_base=None, config_path="pkg://deepsight.conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from deepsight.run.audit import run_audit
    from deepsight.run.distributed import finish, init_from_env

    run_dir = HydraConfig.get().runtime.output_dir
    _scrub_hydra_files()
    try:
        rank, _ = init_from_env(cfg)
        overrides = list(HydraConfig.get().overrides.task)
        if rank == 0:
            results = run_audit(cfg, run_dir, overrides=overrides)
        else:  # scans only (their sums need every rank); outputs go to a folder that is deleted, logs stay
            import tempfile

            cfg.eval = {}
            cfg.logger.name = "local"
            with tempfile.TemporaryDirectory(prefix=f"deepsight_rank{rank}_") as tmp:
                results = run_audit(cfg, tmp, overrides=overrides)
    except DeepSightError as e:
        log.error("%s", e)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(2)
        _unfinished.append(2)
        return
    finally:
        finish()
    if results["status"] != "completed":
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(1)
        # In a multirun one failed model must not stop the sweep; its results.json says what failed,
        # and the sweep's exit code says that something did.
        _unfinished.append(1)


def _scrub_hydra_files() -> None:
    """Hydra wrote .hydra/{config,hydra,overrides}.yaml (and a sweep's multirun.yaml) with the raw overrides."""
    hc = HydraConfig.get()
    files = []
    if hc.output_subdir is not None:
        files += sorted((Path(hc.runtime.output_dir) / str(hc.output_subdir)).glob("*.yaml"))
    if hc.mode == RunMode.MULTIRUN:
        files.append(Path(str(hc.sweep.dir)) / "multirun.yaml")
    for f in files:
        if f.is_file():
            scrub_yaml_file(f)


def main() -> None:
    if sys.argv[1:2] == ["data"]:  # not a Hydra run: manage the benchmark data cache
        from deepsight.data.cli import main as data_main

        sys.exit(data_main(sys.argv[2:]))
    if sys.argv[1:2] == ["plan"]:  # not a Hydra run: memory / FLOPs / time plan, nothing loaded
        from deepsight.run.plan import plan_main

        sys.exit(plan_main(sys.argv[2:]))
    install_log_scrubber()  # before Hydra logs the overrides of a multirun
    from deepsight.run.distributed import launch, requested_processes, under_torchrun

    argv = sys.argv[1:]
    single = {"-m", "--multirun", "-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "--version"}
    if not under_torchrun() and not single.intersection(argv):
        nproc = requested_processes(argv)
        if nproc > 1:  # hardware.processes: the same command under torchrun, one run folder for every rank
            sys.exit(launch(nproc, argv))
    register_configs()
    _hydra_main()
    if _unfinished:
        sys.exit(max(_unfinished))


if __name__ == "__main__":
    main()
