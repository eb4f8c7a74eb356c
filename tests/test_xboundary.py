"""X-Boundary: loaders, moment math, and the scan against a float64 computation from output_hidden_states."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diag_helpers import char_tokenizer, random_chats, reference_states, tiny_llama, tiny_moe

from deepsight.config.schema import HardwareConfig, XBoundaryConfig
from deepsight.data.xboundary import BOUNDARY, HARMFUL, SAFE, load_xboundary
from deepsight.diagnostics.registry import ScanContext, get_scan
from deepsight.diagnostics.xboundary import collect_pooled_moments, resolve_layers, xboundary_from_chats
from deepsight.diagnostics.xboundary_metrics import layer_metrics
from deepsight.errors import ConfigError, DataFormatError, MissingDataError
from deepsight.models.anatomy import inspect_model
from deepsight.stats import ClassCentroids

XB = "xboundary"


# ---------------------------------------------------------------- loaders
def _paths(data_dir: Path) -> tuple[Path, Path, Path]:
    d = data_dir / XB
    return d / "harmbench_test.json", d / "SafeMT_train_600.json", d / "ORbench_retain_set.json"


def test_loader_on_real_data(data_dir):
    h, s, b = _paths(data_dir)
    chats, warnings = load_xboundary(h, s, b, n_per_class=200, seed=42)
    assert warnings == []
    assert [sum(c.label == k for c in chats) for k in (HARMFUL, SAFE, BOUNDARY)] == [200, 200, 200]
    harm = json.loads(h.read_text())["data"]
    orb = json.loads(b.read_text())
    for c in chats:
        assert [m["role"] for m in c.messages] == ["user", "assistant"]
        if c.label == HARMFUL:
            assert c.messages[1]["content"] == harm[c.row]["default_target"]
            assert c.messages[0]["content"] == harm[c.row]["behavior"]
        if c.label == BOUNDARY:
            assert orb[c.row]["status"] == "1_full_compliance"
            assert c.messages[1]["content"] == orb[c.row]["completion"]
    rows = [c.row for c in chats if c.label == SAFE]
    assert rows == sorted(rows) and len(set(rows)) == 200  # file order, no repeats
    again, _ = load_xboundary(h, s, b, n_per_class=200, seed=42)
    other, _ = load_xboundary(h, s, b, n_per_class=200, seed=7)
    assert [c.row for c in again] == [c.row for c in chats]
    assert [c.row for c in other] != [c.row for c in chats]
    first, _ = load_xboundary(h, s, b, n_per_class=60, sampling="first")
    assert [c.row for c in first if c.label == HARMFUL] == list(range(60))
    assert all(c.row not in (3,) for c in first if c.label == BOUNDARY)  # record 3 is a refusal


def test_loader_short_class_and_context(data_dir):
    h, s, b = _paths(data_dir)
    chats, warnings = load_xboundary(h, s, b, n_per_class=400)
    assert sum(c.label == HARMFUL for c in chats) == 240  # the whole file
    assert any("harmful" in w and "240" in w for w in warnings)
    ctx_chats, _ = load_xboundary(h, s, b, n_per_class=240, harmful_with_context=True, sampling="first")
    harm = json.loads(h.read_text())["data"]
    k = next(i for i, r in enumerate(harm) if r.get("context"))
    assert ctx_chats[k].messages[0]["content"].startswith(harm[k]["context"])
    assert ctx_chats[k].messages[0]["content"].endswith(harm[k]["behavior"])


def test_loader_bad_input(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"prompt": "p", "output": "o"}] * 3))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"prompt": "p", "output": "o"}, {"prompt": "p", "answer": "x"}]))
    with pytest.raises(DataFormatError, match=r"bad.json record 1.*record keys: \['answer', 'prompt'\]"):
        load_xboundary(good, bad, good, n_per_class=5)
    no_reply = tmp_path / "noreply.jsonl"
    no_reply.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataFormatError, match="noreply.jsonl record 0.*no assistant"):
        load_xboundary(good, no_reply, good, n_per_class=5)
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(DataFormatError, match="broken.json"):
        load_xboundary(broken, good, good, n_per_class=5)
    with pytest.raises(ConfigError, match="sampling"):
        load_xboundary(good, good, good, sampling="shuffle")


def test_missing_file_names_the_key(tmp_path):
    ctx = ScanContext(model=None, tokenizer=None, anatomy=None, run_dir=tmp_path, data_dir=tmp_path, hardware=None)
    with pytest.raises(MissingDataError, match="scan.xboundary.harmful_path"):
        get_scan("xboundary")(ctx, XBoundaryConfig())


# ---------------------------------------------------------------- math
def _naive(x: torch.Tensor, y: torch.Tensor) -> dict:
    c = {k: x[y == k].mean(0) for k in (0, 1, 2)}
    sep = (c[1] - c[0]).norm()
    ratio = (c[2] - c[1]).norm() / (c[2] - c[0]).norm()
    ss = sum(((x[y == k] - c[k]) ** 2).sum() for k in (0, 1))
    spread = (ss / ((y == 0).sum() + (y == 1).sum() - 2)).sqrt()
    return {"separation_score": sep, "boundary_ratio": ratio, "dist_bound_safe": (c[2] - c[1]).norm(),
            "dist_bound_harmful": (c[2] - c[0]).norm(), "scaled_separation": sep / spread}


def _moments(d: int) -> ClassCentroids:
    return ClassCentroids(3, d, dtype="float64", spread=True)


@pytest.mark.parametrize("n,d", [(7, 3), (61, 29), (300, 128)])
def test_moments_match_naive_and_merge(n, d):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 5 + 40  # large common offset
    y = torch.arange(n) % 3
    one = _moments(d)
    one.update(x, y)
    a, b = _moments(d), _moments(d)
    a.update(x[: n // 2], y[: n // 2])
    b.update(x[n // 2 :], y[n // 2 :])
    a.merge(b)
    ref = _naive(x, y)
    for m in (one, a):
        got, w = layer_metrics(m)
        assert w == []
        for k, v in ref.items():
            assert got[k] == pytest.approx(float(v), rel=1e-9), k


def test_scaled_separation_is_scale_free_and_degenerate_cases():
    x = torch.randn(30, 5, dtype=torch.float64)
    y = torch.arange(30) % 3
    m1, m2 = _moments(5), _moments(5)
    m1.update(x, y)
    m2.update(x * 1000.0, y)
    r1, _ = layer_metrics(m1)
    r2, _ = layer_metrics(m2)
    assert r2["separation_score"] == pytest.approx(1000 * r1["separation_score"], rel=1e-12)
    assert r2["scaled_separation"] == pytest.approx(r1["scaled_separation"], rel=1e-9)
    # boundary centroid == harmful centroid -> +inf
    z = torch.zeros(6, 2, dtype=torch.float64)
    z[1::3] = 1.0
    m = _moments(2)
    m.update(z, torch.arange(6) % 3)
    r, _ = layer_metrics(m)
    assert r["boundary_ratio"] == math.inf
    # empty class -> NaN and a warning
    m = _moments(2)
    m.update(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    r, w = layer_metrics(m)
    assert math.isnan(r["separation_score"]) and math.isnan(r["boundary_ratio"]) and "boundary" in w[0]


def test_resolve_layers():
    assert resolve_layers("default", 30) == [10, 20]
    assert resolve_layers("all", 4) == [0, 1, 2, 3, 4]
    assert resolve_layers([-1, 0, 2], 4) == [0, 2, 4]
    assert resolve_layers("1,3", 4) == [1, 3]
    with pytest.raises(ConfigError, match="index 9"):
        resolve_layers([9], 4)
    with pytest.raises(ConfigError):
        resolve_layers("sideways", 4)


# ---------------------------------------------------------------- scan vs float64 reference
def _reference_metrics(model, tok, chats, layers, max_length):
    states = reference_states(model, tok, chats, add_special_tokens=False, max_length=max_length)
    y = torch.tensor([c.label for c in chats])
    out = {}
    for idx in layers:
        x = torch.stack([hs[idx].mean(0) for hs, _ in states])  # (N, d) masked mean, no padding at all
        out[idx] = _naive(x, y)
    return out


def _ctx(model, tok, tmp_path, max_batch_tokens=200):
    return ScanContext(model=model, tokenizer=tok, anatomy=inspect_model(model), run_dir=tmp_path, data_dir=None,
                       hardware=HardwareConfig(max_batch_tokens=max_batch_tokens))


@pytest.mark.parametrize("build", [tiny_llama, tiny_moe], ids=["dense", "moe"])
def test_scan_matches_float64_reference(build, tmp_path):
    g = torch.Generator().manual_seed(3)
    model, tok = build(), char_tokenizer()
    chats = random_chats(23, 3, g)
    cfg = XBoundaryConfig(layers="all", max_length=50, batch_size=5, projection="pca")
    res = xboundary_from_chats(_ctx(model, tok, tmp_path), cfg, chats, [])
    num = model.config.num_hidden_layers
    assert res["details"]["layers"] == list(range(num + 1))
    ref = _reference_metrics(model, tok, chats, range(num + 1), 50)
    for idx, vals in ref.items():
        got = res["details"]["per_layer"][str(idx)]
        for k, v in vals.items():
            assert got[k] == pytest.approx(float(v), rel=1e-9), (idx, k)
    best = max(ref, key=lambda i: float(ref[i]["separation_score"]))
    assert res["metrics"]["best_separation_layer"] == best
    assert res["metrics"]["separation_score"] == pytest.approx(float(ref[best]["separation_score"]), rel=1e-9)
    for f in res["figures"]:
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len([f for f in res["figures"] if "pca_layer" in f]) == 2


def test_float32_model_within_tolerance(tmp_path):
    g = torch.Generator().manual_seed(5)
    model64, tok = tiny_llama(), char_tokenizer()
    model32 = tiny_llama(dtype=torch.float32)
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    chats = random_chats(18, 3, g)
    cfg = XBoundaryConfig(layers="default", projection="none")
    res = xboundary_from_chats(_ctx(model32, tok, tmp_path), cfg, chats, [])
    ref = _reference_metrics(model64, tok, chats, res["details"]["layers"], 1024)
    for idx, vals in ref.items():
        for k in ("separation_score", "boundary_ratio", "dist_bound_safe", "dist_bound_harmful"):
            assert res["details"]["per_layer"][str(idx)][k] == pytest.approx(float(vals[k]), rel=1e-4), (idx, k)


def test_early_exit_and_bucketing_do_not_change_results(tmp_path):
    g = torch.Generator().manual_seed(9)
    model, tok = tiny_llama(layers=5), char_tokenizer()
    chats = random_chats(15, 3, g)
    calls = []
    h = model.model.layers[4].register_forward_hook(lambda *a: calls.append(1))
    try:
        m_small, _ = collect_pooled_moments(model, tok, None, chats, [1, 3], max_batch_size=2, max_batch_tokens=60)
        assert calls == []  # blocks after the deepest needed index never run
        m_big, rows = collect_pooled_moments(model, tok, None, chats, [3], max_batch_size=None,
                                             max_batch_tokens=10**6, keep_rows={3})
    finally:
        h.remove()
    assert torch.allclose(m_small[3].class_sums, m_big[3].class_sums, rtol=1e-12, atol=1e-12)
    assert torch.equal(m_small[3].class_counts, torch.tensor([5.0, 5.0, 5.0], dtype=torch.float64))
    labels = torch.tensor([c.label for c in chats])
    for k in range(3):  # kept rows are in data order: their class sums are the moments' sums
        assert torch.allclose(rows[3][labels == k].double().sum(0), m_big[3].class_sums[k], rtol=1e-6, atol=1e-6)


def test_registered_scan_on_real_data(data_dir, tmp_path):
    model, tok = tiny_llama(layers=3, dtype=torch.float32), char_tokenizer()
    ctx = ScanContext(model=model, tokenizer=tok, anatomy=inspect_model(model), run_dir=tmp_path,
                      data_dir=data_dir, hardware=HardwareConfig())
    cfg = replace(XBoundaryConfig(), n_per_class=6, max_length=48, projection="tsne", projection_layers=[1])
    res = get_scan("xboundary")(ctx, cfg)
    assert set(res) >= {"metrics", "details", "figures", "warnings", "config"}
    assert res["details"]["counts"] == {"harmful": 6, "safe": 6, "boundary": 6}
    assert res["config"]["n_per_class"] == 6
    assert math.isfinite(res["metrics"]["separation_score"]) and res["metrics"]["boundary_ratio"] > 0
    assert any("tsne_layer1" in f for f in res["figures"])
    assert any("50..400" in w for w in res["warnings"])
