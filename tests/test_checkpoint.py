"""Checkpointed scans (deepsight/capture/checkpoint.py): a scan SIGKILLed mid-way and rerun into the same
folder resumes from its last checkpoint and gives bit-identical statistics to an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.stats import GramMatrix

HERE = Path(__file__).resolve().parent


def _child(run_dir: Path, out: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE))
    args = [sys.executable, str(HERE / "_checkpoint_child.py"), str(run_dir), str(out)]
    if kill_at:
        args.append(str(kill_at))
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


def _assert_same_bits(a: dict, b: dict) -> None:
    assert torch.equal(a["rows"], b["rows"])
    for k, v in a["gram"].items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, b["gram"][k]), k


def test_sigkilled_scan_resumes_bit_identical(tmp_path):
    full = _child(tmp_path / "full", tmp_path / "full.pt")
    assert full.returncode == 0, full.stderr
    ref = torch.load(tmp_path / "full.pt", weights_only=False)
    assert ref["resumed_from"] == 0 and ref["position"] == 14  # 41 rows, 3 per batch
    assert torch.equal(ref["rows"], ref["plain_rows"])  # checkpointing changes nothing
    _assert_same_bits(ref, {"rows": ref["plain_rows"], "gram": ref["plain_gram"]})

    run = tmp_path / "killed"
    killed = _child(run, tmp_path / "never.pt", kill_at=8)  # killed as the 8th batch starts
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "never.pt").exists()
    saved = torch.load(run / "checkpoints" / "tellme.pt", weights_only=False)
    assert saved["position"] == 6  # checkpoints after batches 2, 4, 6 (counted from 1); the 7th finished unsaved
    resumed = _child(run, tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    got = torch.load(tmp_path / "resumed.pt", weights_only=False)
    assert got["resumed_from"] == 6 and got["position"] == 14
    _assert_same_bits(ref, got)


def _fill(store: dict, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    store.setdefault("gram", GramMatrix(5, 2)).update(torch.randn(4, 5, generator=g), torch.tensor([0, 1, 1, 0]))


def test_resume_skips_done_batches_and_refuses_other_inputs(tmp_path, caplog):
    ck = ScanCheckpoint.for_scan(tmp_path, "x", every=3)
    store: dict = {}
    assert ck.restore(store, {"ids": [[1, 2], [3]]}) == 0
    seen = []
    for b in ck.batches(range(7), store):
        _fill(store, b)
        seen.append(b)
        if b == 4:
            break  # as if killed during batch 5: the checkpoint holds batches 0..2
    assert seen == [0, 1, 2, 3, 4]
    again: dict = {}
    ck2 = ScanCheckpoint.for_scan(tmp_path, "x", every=3)
    assert ck2.restore(again, {"ids": [[1, 2], [3]]}) == 3
    rest = []
    for b in ck2.batches(range(7), again):
        _fill(again, b)
        rest.append(b)
    assert rest == [3, 4, 5, 6]
    whole: dict = {}
    for b in range(7):
        _fill(whole, b)
    assert torch.equal(again["gram"].total_gram, whole["gram"].total_gram)
    assert torch.equal(again["gram"].class_grams, whole["gram"].class_grams)
    other: dict = {}
    assert ScanCheckpoint.for_scan(tmp_path, "x", every=3).restore(other, {"ids": [[1, 2], [4]]}) == 0
    assert other == {} and "other inputs" in caplog.text
    (tmp_path / "checkpoints" / "x.pt").write_bytes(b"truncated")
    assert ScanCheckpoint.for_scan(tmp_path, "x", every=3).restore({}, {"ids": [[1, 2], [3]]}) == 0
    assert "unreadable" in caplog.text


def test_off_by_default_writes_nothing(tmp_path):
    ck = ScanCheckpoint.for_scan(tmp_path, "x", every=0)
    store: dict = {}
    assert ck.restore(store, None) == 0
    assert list(ck.batches(range(3), store)) == [0, 1, 2]
    assert not (tmp_path / "checkpoints").exists()


def test_xboundary_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    import pytest
    from diag_helpers import char_tokenizer, random_chats, tiny_llama

    from deepsight.diagnostics.xboundary import collect_pooled_moments
    from deepsight.models.anatomy import inspect_model

    torch.manual_seed(0)
    model = tiny_llama(layers=3, dtype=torch.float32)
    tok, anatomy = char_tokenizer(), inspect_model(model)
    chats = random_chats(17, 3, torch.Generator().manual_seed(2), max_len=30)
    kw = {"max_batch_size": 2, "max_batch_tokens": 4096, "keep_rows": {3}}
    full_m, full_r = collect_pooled_moments(model, tok, anatomy, chats, [1, 3], **kw)
    calls = [0]

    def fail_at_sixth(module, args):
        calls[0] += 1
        if calls[0] == 6:
            raise RuntimeError("node lost")

    handle = model.register_forward_pre_hook(fail_at_sixth)
    with pytest.raises(RuntimeError, match="node lost"):
        collect_pooled_moments(model, tok, anatomy, chats, [1, 3], **kw,
                               checkpoint=ScanCheckpoint.for_scan(tmp_path, "xboundary", every=2))
    handle.remove()
    ck = ScanCheckpoint.for_scan(tmp_path, "xboundary", every=2)
    got_m, got_r = collect_pooled_moments(model, tok, anatomy, chats, [1, 3], **kw, checkpoint=ck)
    assert ck.resumed_from == 4 and ck.position == 9  # 17 chats, 2 per batch
    for layer, m in full_m.items():
        got = got_m[layer].state_dict()
        for key, t in m.state_dict().items():
            assert torch.equal(t, got[key]) if isinstance(t, torch.Tensor) else t == got[key], (layer, key)
    assert torch.equal(full_r[3], got_r[3])
