"""The MoE experts scan at scale: its statistics survive a kill through ScanCheckpoint (resumed = uninterrupted,
bit for bit) and split over 2 gloo ranks give the one-process sums (each rank its share of the chats); work
run once on rank 0 (``on_rank_zero``) reaches both ranks, and so does its failure."""

from __future__ import annotations

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _moe_models import tiny_moe_model
from diag_helpers import char_tokenizer, free_port, random_chats

from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.capture.sharding import RankZeroError, on_rank_zero
from deepsight.diagnostics.experts import collect_expert_stats, split_halves
from deepsight.models.anatomy import inspect_model

KW = {"max_length": 40, "max_batch_tokens": 60, "max_batch_size": 2, "stat_dtype": "float64"}


def _setup(family: str = "qwen3_moe"):
    model = tiny_moe_model(family)
    anatomy = inspect_model(model)
    chats = random_chats(11, 3, torch.Generator().manual_seed(5), max_len=14)
    halves = split_halves([c.label for c in chats], seed=1)
    return model, char_tokenizer(), anatomy, chats, halves


RESULTS = ("counts", "tokens", "gate_sums", "entropy_sums", "token_entropy")


def _states(stats: dict) -> dict:
    """The statistics' results (the accumulators' spare row that absorbs padding is not a result)."""
    out = {}
    for layer, st in stats.items():
        for name in RESULTS if not st.dim else ("output_sums",):
            out[(layer, name)] = getattr(st, name)
    return out


def test_experts_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    model, tok, anatomy, chats, halves = _setup()
    layers = anatomy.moe_layer_indices
    full_r, full_o = collect_expert_stats(model, tok, anatomy, chats, 3, layers, halves=halves, **KW)
    calls = [0]

    def fail_at_fourth(module, args):
        calls[0] += 1
        if calls[0] == 4:
            raise RuntimeError("node lost")

    handle = model.register_forward_pre_hook(fail_at_fourth)
    with pytest.raises(RuntimeError, match="node lost"):
        collect_expert_stats(model, tok, anatomy, chats, 3, layers, halves=halves, **KW,
                             checkpoint=ScanCheckpoint.for_scan(tmp_path, "experts", every=1))
    handle.remove()
    ck = ScanCheckpoint.for_scan(tmp_path, "experts", every=1)
    got_r, got_o = collect_expert_stats(model, tok, anatomy, chats, 3, layers, halves=halves, **KW, checkpoint=ck)
    assert ck.resumed_from == 3 and ck.position > 3
    for want, got in ((full_r, got_r), (full_o, got_o)):
        a, b = _states(want), _states(got)
        assert a.keys() == b.keys() and a
        for key in a:
            assert torch.equal(a[key], b[key]), key
    # a checkpoint made for other classes is ignored: a fresh, equal result
    other = [1 - h for h in halves]
    ck2 = ScanCheckpoint.for_scan(tmp_path, "experts", every=1)
    r2, _ = collect_expert_stats(model, tok, anatomy, chats, 3, layers, halves=other, **KW, checkpoint=ck2)
    assert ck2.resumed_from == 0
    fresh, _ = collect_expert_stats(model, tok, anatomy, chats, 3, layers, halves=other, **KW)
    for key, v in _states(fresh).items():
        assert torch.equal(v, _states(r2)[key]), key


def _worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model, tok, anatomy, chats, halves = _setup()
        r, o = collect_expert_stats(model, tok, anatomy, chats, 3, anatomy.moe_layer_indices, halves=halves, **KW)
        if rank == 0:
            torch.save({"routing": _states(r), "outputs": _states(o)}, out)
        # on_rank_zero (eval-verdict classes): run once on rank 0, its result or its failure on every rank
        calls: list[int] = []
        got = on_rank_zero(lambda: (calls.append(rank), {"chats": [7, "x"]})[1])
        try:
            on_rank_zero(lambda: 1 / 0)
            failed = "no error"
        except ZeroDivisionError:
            failed = "ZeroDivisionError"
        except RankZeroError as e:
            failed = f"RankZeroError: {e}"
        with open(f"{out}.rank{rank}.json", "w") as f:
            json.dump({"got": got, "calls": calls, "failed": failed}, f)
    finally:
        dist.destroy_process_group()



@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_experts_two_gloo_ranks_equal_one_process(tmp_path):
    out = str(tmp_path / "reduced.pt")
    # spawn, not fork: a child forked after the parent used OpenMP threads can deadlock
    mp.start_processes(_worker, args=(2, free_port(), out), nprocs=2, join=True, start_method="spawn")
    reduced = torch.load(out)
    r0, r1 = (json.loads(open(f"{out}.rank{r}.json").read()) for r in (0, 1))
    assert r0["got"] == r1["got"] == {"chats": [7, "x"]} and r0["calls"] == [0] and r1["calls"] == []
    assert r0["failed"] == "ZeroDivisionError"  # rank 0 re-raises its own error, the other rank hears of it
    assert r1["failed"].startswith("RankZeroError: rank 0 failed: ZeroDivisionError")
    model, tok, anatomy, chats, halves = _setup()
    r, o = collect_expert_stats(model, tok, anatomy, chats, 3, anatomy.moe_layer_indices, halves=halves, **KW)
    for name, whole in (("routing", _states(r)), ("outputs", _states(o))):
        assert reduced[name].keys() == whole.keys() and whole
        for key, want in whole.items():
            # counts are integers in float64: exact; sums differ only by the order of float64 additions
            torch.testing.assert_close(reduced[name][key], want, rtol=1e-9, atol=1e-12, msg=f"{name} {key}")
