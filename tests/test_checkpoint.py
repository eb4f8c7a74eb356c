"""Checkpointed scans (deepsight/capture/checkpoint.py): a scan SIGKILLed mid-way and rerun into the same
folder resumes from its last checkpoint and gives bit-identical statistics to an uninterrupted run; the
in-process cases (X-Boundary, SPIN's layer groups and datasets, MI-Peaks' generation batches) fail at the
k-th forward call, resume, and compare with an uninterrupted run, plus checkpoints made for other settings."""

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


class _FailAt:
    """A forward pre-hook that counts the model's forward calls and raises at the k-th (0: never)."""

    def __init__(self, model, k: int = 0):
        self.calls, self.k = 0, k
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.calls += 1
        if self.calls == self.k:
            raise RuntimeError("node lost")


def _spin_setup(moe: bool = False):
    from diag_helpers import char_tokenizer, tiny_llama, tiny_moe

    from deepsight.models.anatomy import inspect_model

    torch.manual_seed(0)
    model = tiny_moe(layers=2, dtype=torch.float32) if moe else tiny_llama(layers=3, dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    words = ["privacy", "name", "phone", "fair", "group", "please", "no", "address", "why", "ok"]

    def text(lo, hi):
        n = int(torch.randint(lo, hi, (1,), generator=g))
        return " ".join(words[int(i)] for i in torch.randint(0, len(words), (n,), generator=g))

    rows1 = [(text(1, 5), text(1, 7)) for _ in range(7)]
    rows2 = [(text(1, 5), text(1, 7)) for _ in range(5)]
    return model, char_tokenizer(), inspect_model(model), rows1, rows2


def _same_candidates(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"] and a["details"] == b["details"]
    for d in range(2):
        assert a["candidates"][d].keys() == b["candidates"][d].keys()
        for name, idx in a["candidates"][d].items():
            assert torch.equal(idx, b["candidates"][d][name]), (d, name)


def test_spin_sums_interrupted_in_a_layer_group_then_resumed_equal_uninterrupted(tmp_path):
    import pytest

    from deepsight.diagnostics.spin import encode_sample, grad_abs_sums
    from deepsight.diagnostics.spin_math import weights_of_model

    model, tok, anatomy, rows1, _ = _spin_setup()
    refs = weights_of_model(anatomy, "all")
    samples = [encode_sample(tok, p, r) for p, r in rows1]
    kw = {"batch_size": 2, "max_batch_tokens": 4096, "pad_id": 1, "stat_dtype": "float32", "groups": [[0, 1], [2]]}
    count = _FailAt(model)
    full, info = grad_abs_sums(model, anatomy, refs, samples, **kw)
    count.handle.remove()
    assert info["layer_groups"] == [[0, 1], [2]] and count.calls == 8  # 7 samples, 2 per batch, 2 groups
    fail = _FailAt(model, k=8)  # the 4th batch of the second group
    ck, store = ScanCheckpoint.for_scan(tmp_path, "spin", every=2), {}
    assert ck.restore(store, {"samples": samples}) == 0
    with pytest.raises(RuntimeError, match="node lost"):
        grad_abs_sums(model, anatomy, refs, samples, **kw, label="d1", store=store, checkpoint=ck)
    fail.handle.remove()
    ck = ScanCheckpoint.for_scan(tmp_path, "spin", every=2)
    store: dict = {}
    assert ck.restore(store, {"samples": samples}) == 2
    assert store["label"] == "d1" and store["groups_done"] == 1
    count = _FailAt(model)
    got, _ = grad_abs_sums(model, anatomy, refs, samples, **kw, label="d1", store=store, checkpoint=ck)
    count.handle.remove()
    assert count.calls == 2  # only the last two batches of the second group ran again
    assert got.keys() == full.keys()
    for name, s in full.items():
        assert torch.equal(s.acc, got[name].acc) and torch.equal(s.samples, got[name].samples), name


def test_spin_interrupted_then_resumed_gives_the_same_candidates(tmp_path, caplog):
    import pytest

    from deepsight.config.schema import SPINConfig
    from deepsight.diagnostics.spin import run_spin

    model, tok, anatomy, rows1, rows2 = _spin_setup()
    cfg = SPINConfig(q=0.02, target_module="all", batch_size=2, layer_group_size=2)
    count = _FailAt(model)
    full = run_spin(model, tok, anatomy, rows1, rows2, cfg)
    count.handle.remove()
    assert count.calls == 2 * 4 + 2 * 3  # groups [0, 1] and [2]; 4 then 3 batches per group
    assert full["metrics"]["candidate_dataset1"] > 0

    fail = _FailAt(model, k=12)  # dataset2, second group, its first batch
    with pytest.raises(RuntimeError, match="node lost"):
        run_spin(model, tok, anatomy, rows1, rows2, cfg, checkpoint=ScanCheckpoint.for_scan(tmp_path, "spin", 1))
    fail.handle.remove()
    count = _FailAt(model)
    ck = ScanCheckpoint.for_scan(tmp_path, "spin", 1)
    got = run_spin(model, tok, anatomy, rows1, rows2, cfg, checkpoint=ck)
    count.handle.remove()
    assert count.calls == 3  # dataset1 and dataset2's first group restored
    _same_candidates(full, got)

    # a checkpoint of other inputs (another q) is ignored: the scan starts over and gives the fresh result
    fail = _FailAt(model, k=5)
    with pytest.raises(RuntimeError, match="node lost"):
        run_spin(model, tok, anatomy, rows1, rows2, cfg, checkpoint=ScanCheckpoint.for_scan(tmp_path, "s2", 1))
    fail.handle.remove()
    other = SPINConfig(q=0.03, target_module="all", batch_size=2, layer_group_size=2)
    ck = ScanCheckpoint.for_scan(tmp_path, "s2", 1)
    stale = run_spin(model, tok, anatomy, rows1, rows2, other, checkpoint=ck)
    assert ck.resumed_from == 0 and "other inputs" in caplog.text
    _same_candidates(run_spin(model, tok, anatomy, rows1, rows2, other), stale)


def test_spin_per_sample_route_interrupted_then_resumed(tmp_path):
    import pytest

    from deepsight.config.schema import SPINConfig
    from deepsight.diagnostics.spin import run_spin

    model, tok, anatomy, rows1, rows2 = _spin_setup(moe=True)
    cfg = SPINConfig(q=0.02, target_module="all", batch_size=2)
    full = run_spin(model, tok, anatomy, rows1, rows2, cfg)
    assert full["details"]["passes"]["dataset1"]["route"] == "per-sample weight grads"
    fail = _FailAt(model, k=6)  # dataset1, its 6th sample
    with pytest.raises(RuntimeError, match="node lost"):
        run_spin(model, tok, anatomy, rows1, rows2, cfg, checkpoint=ScanCheckpoint.for_scan(tmp_path, "spin", 2))
    fail.handle.remove()
    ck = ScanCheckpoint.for_scan(tmp_path, "spin", 2)
    got = run_spin(model, tok, anatomy, rows1, rows2, cfg, checkpoint=ck)
    assert ck.resumed_from == 4
    _same_candidates(full, got)


def _mi_setup():
    from diag_helpers import char_tokenizer, tiny_llama

    from deepsight.config.schema import MIPeaksConfig
    from deepsight.models.anatomy import inspect_model

    torch.manual_seed(1)
    model = tiny_llama(layers=3, dtype=torch.float32)
    problems = ["what is two plus three?", "ab", "count the apples in the basket", "x = 4, y = 5. x+y?", "q",
                "seven times six is", "name a prime"]
    solutions = ["five", "the answer is 9", "ok.", "9", "42", "forty two", "13"]
    cfg = MIPeaksConfig(layer=1, max_new_tokens=9, batch_size=2, top_k=3)
    return model, char_tokenizer(), inspect_model(model), list(zip(problems, solutions)), cfg


def test_mi_peaks_interrupted_then_resumed_gives_the_same_trajectories(tmp_path, caplog):
    import pytest

    from deepsight.diagnostics.mi_peaks import run_mi_peaks

    model, tok, anatomy, items, cfg = _mi_setup()
    count = _FailAt(model)
    full = run_mi_peaks(model, tok, anatomy, items, cfg)
    count.handle.remove()
    total = count.calls
    assert len(full["details"]["trajectories"]) == 7 and any(full["details"]["trajectories"])
    fail = _FailAt(model, k=total - 2)  # in the last generation batch (4 batches of at most 2 prompts)
    with pytest.raises(RuntimeError, match="node lost"):
        run_mi_peaks(model, tok, anatomy, items, cfg, checkpoint=ScanCheckpoint.for_scan(tmp_path, "mi_peaks", 1))
    fail.handle.remove()
    ck = ScanCheckpoint.for_scan(tmp_path, "mi_peaks", 1)
    count = _FailAt(model)
    got = run_mi_peaks(model, tok, anatomy, items, cfg, checkpoint=ck)
    count.handle.remove()
    assert ck.resumed_from == 3 and ck.position == 4
    assert count.calls < total - 10  # three generation batches were not run again
    assert got == full  # trajectories, histogram MI, tokens and metrics: the same floats

    # the checkpoint is stale for other settings: ignored, and the result is a fresh run's
    other = type(cfg)(layer=2, max_new_tokens=9, batch_size=2, top_k=3)
    ck = ScanCheckpoint.for_scan(tmp_path, "mi_peaks", 1)
    stale = run_mi_peaks(model, tok, anatomy, items, other, checkpoint=ck)
    assert ck.resumed_from == 0 and "other inputs" in caplog.text
    assert stale == run_mi_peaks(model, tok, anatomy, items, other)


def test_spin_and_mi_peaks_scans_write_and_reuse_their_checkpoints(tmp_path):
    import json

    from deepsight.config.schema import HardwareConfig, SPINConfig
    from deepsight.diagnostics.mi_peaks import mi_peaks_scan
    from deepsight.diagnostics.registry import ScanContext
    from deepsight.diagnostics.spin import spin_scan

    model, tok, anatomy, rows1, rows2 = _spin_setup()
    data = tmp_path / "data"
    data.mkdir()
    for name, rows in (("p.csv", rows1), ("f.csv", rows2)):
        (data / name).write_text("prompt,response\n" + "".join(f'"{p}","{r}"\n' for p, r in rows))
    ctx = ScanContext(model=model, tokenizer=tok, anatomy=anatomy, run_dir=tmp_path / "run", data_dir=data,
                      hardware=HardwareConfig(checkpoint_every=1))
    cfg = SPINConfig(dataset1_path="p.csv", dataset2_path="f.csv", n_samples=5, q=0.02, target_module="all",
                     batch_size=2)
    first = spin_scan(ctx, cfg)
    assert (ctx.run_dir / "checkpoints" / "spin.pt").is_file()
    count = _FailAt(model)
    again = spin_scan(ctx, cfg)  # everything restored: no forward pass
    count.handle.remove()
    assert count.calls == 0 and again["metrics"] == first["metrics"] and again["details"] == first["details"]

    model, tok, anatomy, items, mcfg = _mi_setup()
    (data / "m.jsonl").write_text("".join(json.dumps({"question": p, "answer": s}) + "\n" for p, s in items))
    ctx = ScanContext(model=model, tokenizer=tok, anatomy=anatomy, run_dir=tmp_path / "run", data_dir=data,
                      hardware=HardwareConfig(checkpoint_every=1))
    mcfg.data_path, mcfg.n_samples = "m.jsonl", len(items)
    first = mi_peaks_scan(ctx, mcfg)
    assert (ctx.run_dir / "checkpoints" / "mi_peaks.pt").is_file()
    count = _FailAt(model)
    again = mi_peaks_scan(ctx, mcfg)  # only the answer states run again (4 batches of at most 2 solutions)
    count.handle.remove()
    assert count.calls == 4 and again["metrics"] == first["metrics"]
    assert again["details"]["trajectories"] == first["details"]["trajectories"]
