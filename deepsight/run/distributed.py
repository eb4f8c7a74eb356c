"""Multi-process audits: launch ``torchrun`` for ``hardware.processes``, join the process group, pick devices.

    deepsight hardware=multi_gpu hardware.processes=2 scan=[tellme] ...      # launches torchrun itself
    torchrun --nproc-per-node 2 -m deepsight hardware=multi_gpu hardware.processes=2 ...   # the same

Topology: ``hardware.processes`` data-parallel ranks on one node; each rank sees its own
``devices / processes`` GPUs (``CUDA_VISIBLE_DEVICES`` set before CUDA starts) and shards the model
over them with ``model.device_map`` (8 GPUs = 2 ranks x 4-GPU shards). Scans split their items over
the ranks and sum their statistics (``deepsight.capture.sharding``); rank 0 runs the black-box
benchmarks (vLLM brings its own tensor parallelism), computes the metrics and writes results.json,
the report and the logger; the other ranks write nothing but their log lines (their scan outputs go
to a temporary folder that is deleted). Every rank of one launch writes into the same run folder:
the launcher fixes ``hydra.run.dir`` once for all of them.
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
import sys

log = logging.getLogger("deepsight")

_TORCHRUN_ENV = ("TORCHELASTIC_RUN_ID", "LOCAL_RANK")


def under_torchrun() -> bool:
    return all(k in os.environ for k in _TORCHRUN_ENV) or int(os.environ.get("WORLD_SIZE", "1")) > 1


def requested_processes(argv: list[str]) -> int:
    """``hardware.processes`` of the config these command-line overrides select (1 on any config error:
    the audit itself reports it)."""
    try:
        from deepsight.run.plan import _compose

        cfg = _compose([a for a in argv if not a.startswith("-")])
        return int(cfg.hardware.processes)
    except Exception:  # noqa: BLE001
        return 1


def torchrun_command(nproc: int, argv: list[str], run_dir: str) -> list[str]:
    """The torchrun command that runs this audit with ``nproc`` ranks writing into ``run_dir``."""
    args = [a for a in argv if not a.startswith("hydra.run.dir=")]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "deepsight", *args, f"hydra.run.dir={run_dir}"]


def launch(nproc: int, argv: list[str]) -> int:
    """Run the audit under torchrun; the exit code of the launch (non-zero when any rank failed)."""
    run_dir = next((a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")), None)
    if run_dir is None:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
        run_dir = os.path.join(os.environ.get("DEEPSIGHT_OUTPUT_DIR", "outputs"), f"{stamp}_ranks{nproc}")
    cmd = torchrun_command(nproc, argv, run_dir)
    print(f"deepsight: launching {nproc} processes: {' '.join(cmd)}", file=sys.stderr, flush=True)
    return subprocess.call(cmd)


def init_from_env(cfg) -> tuple[int, int]:
    """Join torchrun's process group (gloo on CPU, nccl on GPUs) and give this rank its GPUs; (rank, world)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if int(cfg.hardware.processes) not in (1, world):
        log.warning("hardware.processes=%s but torchrun started %d ranks: using %d", cfg.hardware.processes, world,
                    world)
    gpus = _visible_gpus()
    if gpus and "DEEPSIGHT_RANK_DEVICES" not in os.environ:
        per = max(1, len(gpus) // world) if cfg.model.device_map is not None else 1
        mine = gpus[local * per:(local + 1) * per] or gpus[local % len(gpus):][:1]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)  # before CUDA starts in this process
        os.environ["DEEPSIGHT_RANK_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    if not dist.is_initialized():
        backend = "nccl" if gpus and torch.cuda.is_available() else "gloo"
        # long timeout: rank 0 runs the black-box benchmarks while the others wait at the first scan's sums
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=24))
    return rank, world


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() != ""]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def finish() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
