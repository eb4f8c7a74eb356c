"""all_reduce over 2 processes (gloo) equals one process over all the data; capture included."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _engine_models import random_seqs, tiny_llama
from diag_helpers import free_port

from deepsight.capture import Capture, CaptureSpec, iter_batches
from deepsight.stats import ClassCentroids, GradAbsSum, GramMatrix, JointHistogram

N, D = 24, 6


def _data():
    g = torch.Generator().manual_seed(123)
    x = torch.randn(N, D, generator=g)
    labels = torch.randint(0, 3, (N,), generator=g)
    y = torch.randn(D, generator=g)
    delta, inp = torch.randn(N, 4, 5, generator=g), torch.randn(N, 4, D, generator=g)
    return x, labels, y, delta, inp


def _stats(rows: slice, steps: int):
    x, labels, y, delta, inp = _data()
    c = ClassCentroids(3, D).update(x[rows], labels[rows])
    g = GramMatrix(D, num_classes=3, dtype="float64").update(x[rows], labels[rows])
    h = JointHistogram(5, (-2, 2), (-2, 2)).update(x[rows][:steps], y)  # ranks see different step counts
    a = GradAbsSum((5, D)).update(delta[rows], inp[rows])
    return {"centroids": c, "gram": g, "hist": h, "grad": a}


def _capture_centroids(rows: list[int]):
    model = tiny_llama(layers=2, hidden=32)
    seqs = random_seqs([3, 7, 5, 4, 6, 2], model.config.vocab_size)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    cent = ClassCentroids(2, 32, dtype="float64")
    sink = lambda ev: cent.update(ev.value, ev.take("labels"))  # noqa: E731
    with Capture(model, [CaptureSpec("block_output", [1], "mean")], sink) as cap:
        for b in iter_batches([seqs[i] for i in rows], max_batch_tokens=12, pad_id=0):
            cap.forward(b.input_ids, b.attention_mask, labels=labels[rows][b.index])
    return cent


def _worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        half = N // 2
        stats = _stats(slice(0, half) if rank == 0 else slice(half, N), steps=3 if rank == 0 else 7)
        stats["capture"] = _capture_centroids([0, 1, 2] if rank == 0 else [3, 4, 5])
        for s in stats.values():
            s.all_reduce()
        if rank == 0:
            torch.save({k: s.state_dict() for k, s in stats.items()}, out)
    finally:
        dist.destroy_process_group()



@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_gloo_all_reduce_equals_one_process(tmp_path):
    out = str(tmp_path / "reduced.pt")
    # spawn, not fork: a child forked after the parent used OpenMP threads (earlier tests) can deadlock
    mp.start_processes(_worker, args=(2, free_port(), out), nprocs=2, join=True, start_method="spawn")
    reduced = torch.load(out)
    # one process over all the data (the histogram: steps 0..6 from rank 1, 0..2 from rank 0)
    whole = _stats(slice(0, N), steps=0)
    x, labels, y, _, _ = _data()
    whole["hist"] = JointHistogram(5, (-2, 2), (-2, 2)).update(x[N // 2:][:7], y).update(x[:3], y)
    whole["capture"] = _capture_centroids(list(range(6)))
    for name, stat in whole.items():
        got = reduced[name]
        for key, expect in stat.state_dict().items():
            if key == "config":
                assert got[key] == expect
            else:
                torch.testing.assert_close(got[key], expect, rtol=1e-6, atol=1e-6, msg=f"{name}.{key}")
    assert reduced["hist"]["counts"].shape[0] == 7
