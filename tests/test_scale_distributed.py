"""Data-parallel scans: items split over ranks by length, statistics summed; 1 and 2 gloo processes agree."""

from __future__ import annotations

import math
import random
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from diag_helpers import char_tokenizer, random_chats, tiny_llama

from deepsight.capture.sharding import all_reduce_store, shard_by_length
from deepsight.diagnostics.tellme import collect_last_token, tellme_from_rows
from deepsight.models.anatomy import inspect_model
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


def _tellme(model_seed: int = 0) -> dict:
    torch.manual_seed(model_seed)
    model = tiny_llama(layers=3, dtype=torch.float32)
    tok = char_tokenizer()
    chats = random_chats(23, 2, torch.Generator().manual_seed(5), max_len=30)
    rows, gram = collect_last_token(model, tok, inspect_model(model), chats, 1, max_batch_size=4,
                                    max_batch_tokens=4096)
    labels = torch.tensor([c.label for c in chats])
    return {"metrics": tellme_from_rows(rows, labels, gram, 0.1), "rows": rows}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        res = _tellme()
        store = {"probe": torch.tensor([float(rank + 1)])}
        all_reduce_store(store)
        res["probe"] = store["probe"]
        torch.save(res, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_tellme_with_two_gloo_processes_equals_one(tmp_path):
    one = _tellme()
    out = str(tmp_path / "res")
    mp.start_processes(_worker, args=(2, _free_port(), out), nprocs=2, join=True, start_method="spawn")
    got = [torch.load(f"{out}.{r}", weights_only=False) for r in range(2)]
    for g in got:
        assert g["probe"].item() == 3.0
        torch.testing.assert_close(g["rows"], one["rows"], rtol=1e-6, atol=1e-6)
        for k, v in one["metrics"].items():
            w = g["metrics"][k]
            assert (math.isnan(v) and math.isnan(w)) or abs(w - v) <= 1e-6 * max(1.0, abs(v)), (k, v, w)
    assert got[0]["metrics"] == got[1]["metrics"]  # every rank holds the same sums


def test_launcher_reads_processes_and_fixes_one_run_dir():
    assert requested_processes(["hardware.processes=2", "audit=none"]) == 2
    assert requested_processes(["audit=none"]) == 1
    assert requested_processes(["hardware.no_such_key=3"]) == 1  # the audit reports the bad key itself
    cmd = torchrun_command(2, ["scan=[tellme]", "hydra.run.dir=old"], "runs/x")
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert cmd[-3:] == ["deepsight", "scan=[tellme]", "hydra.run.dir=runs/x"]
