"""Data-parallel scans: items split over ranks by length, statistics summed; 1 and 2 gloo processes agree."""

from __future__ import annotations

import random

import torch
from diag_helpers import char_tokenizer, tiny_llama

from deepsight.capture.sharding import shard_by_length
from deepsight.run.distributed import requested_processes, torchrun_command


def test_shards_partition_the_items_and_balance_tokens():
    rng = random.Random(0)
    for _ in range(50):
        lengths = [rng.randint(1, 500) for _ in range(rng.randint(0, 40))]
        world = rng.randint(1, 5)
        shards = [shard_by_length(lengths, r, world) for r in range(world)]
        flat = sorted(i for s in shards for i in s)
        assert flat == list(range(len(lengths)))  # every item exactly once
        loads = [sum(lengths[i] for i in s) for s in shards]
        if lengths:  # longest-first greedy: no rank exceeds another by more than one item
            assert max(loads) - min(loads) <= max(lengths)
    assert shard_by_length([3, 1, 2], 0, 1) == [0, 1, 2]
    assert shard_by_length([5, 5, 1, 1], 0, 2) == [0, 2] and shard_by_length([5, 5, 1, 1], 1, 2) == [1, 3]


def test_launcher_reads_processes_and_fixes_one_run_dir():
    assert requested_processes(["hardware.processes=2", "audit=none"]) == 2
    assert requested_processes(["audit=none"]) == 1
    assert requested_processes(["hardware.no_such_key=3"]) == 1  # the audit reports the bad key itself
    cmd = torchrun_command(2, ["scan=[tellme]", "hydra.run.dir=old"], "runs/x")
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[-3:] == ["deepsight", "scan=[tellme]", "hydra.run.dir=runs/x"]


def test_cli_processes_2_launches_torchrun_and_matches_one_process(tmp_path, data_dir):
    """The whole command: hardware.processes=2 runs 2 gloo ranks under torchrun into one run folder; rank 0
    alone writes results.json, whose scan metrics equal a one-process run's (every scan split over the ranks:
    metrics within 1e-6 relative, SPIN's candidate sets identical)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny"
    tiny_llama(layers=3, dtype=torch.float32).save_pretrained(model_dir)
    char_tokenizer().save_pretrained(model_dir)
    env = dict(os.environ, OMP_NUM_THREADS="1", DEEPSIGHT_DATA_DIR=str(data_dir))
    env.pop("WANDB_API_KEY", None)
    common = ["model=hf", f"model.path={model_dir}", "model.name=tiny", "audit=none",
              "scan=[tellme,xboundary,spin,mi_peaks]", "scan.tellme.limit=12", "scan.xboundary.n_per_class=3",
              "scan.mi_peaks.n_samples=3", "scan.mi_peaks.max_new_tokens=6", "scan.mi_peaks.top_k=2",
              "scan.xboundary.projection=none", "scan.spin.n_samples=5", "scan.spin.q=0.05",
              "scan.spin.batch_size=2", "hardware.cpu_fast_paths=false"]
    runs = {}
    for n in (1, 2):
        run_dir = tmp_path / f"run{n}"
        r = subprocess.run([sys.executable, "-m", "deepsight", *common, f"hardware.processes={n}",
                            f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert ("deepsight: launching 2 processes" in r.stderr) == (n == 2)  # torchrun only for 2 ranks
        runs[n] = json.loads((run_dir / "results.json").read_text())
        assert runs[n]["status"] == "completed"
    assert sorted(p.name for p in (tmp_path / "run2").iterdir() if p.name.startswith("rank")) == []
    for scan in ("tellme", "xboundary", "mi_peaks"):
        one, two = runs[1]["scans"][scan]["metrics"], runs[2]["scans"][scan]["metrics"]
        assert one.keys() == two.keys()
        for k, v in one.items():
            w = two[k]
            if isinstance(v, (str, list)) or isinstance(w, (str, list)):  # "nan" / "inf", token lists
                if isinstance(v, list) and v and isinstance(v[0], float):  # MI-Peaks' mean trajectory
                    assert len(v) == len(w) and all(abs(a - b) <= 1e-6 * max(1.0, abs(a)) for a, b in zip(v, w))
                else:
                    assert v == w, (scan, k)
            else:
                assert abs(w - v) <= 1e-6 * max(1.0, abs(v)), (scan, k, v, w)
    spin1, spin2 = runs[1]["scans"]["spin"], runs[2]["scans"]["spin"]
    assert spin1["status"] == "ok" and spin1["metrics"]["candidate_dataset1"] > 0
    # identical candidate sets: every count of candidates and coupled weights, per layer and in total
    assert spin2["metrics"] == spin1["metrics"] and spin2["details"]["layers"] == spin1["details"]["layers"]
    assert Path(tmp_path / "run2" / "report.md").is_file()
