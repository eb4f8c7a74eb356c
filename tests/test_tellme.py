"""TELLME: loader, metric math (coding rates from Grams, erank, distances), and the scan against float64."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import pytest
import torch
from diag_helpers import char_tokenizer, random_chats, reference_states, tiny_llama, tiny_moe

from deepsight.config.schema import HardwareConfig, TELLMEConfig
from deepsight.data.tellme import load_tellme
from deepsight.diagnostics.registry import ScanContext, get_scan
from deepsight.diagnostics.tellme import resolve_layer, tellme_from_chats
from deepsight.diagnostics.tellme_metrics import NAMES, coding_rates, distance_metrics, erank, tellme_metrics
from deepsight.errors import ConfigError, DataFormatError
from deepsight.models.anatomy import inspect_model

SUFFIX = "Start evaluating the safety of my responses."


# ---------------------------------------------------------------- loader
def test_loader_on_real_data(data_dir):
    path = data_dir / "tellme" / "test.csv"
    chats = load_tellme(path, suffix=SUFFIX)
    assert len(chats) == 2000 and sum(c.label for c in chats) == 1000
    with open(path, newline="", encoding="utf-8") as f:
        first = next(csv.DictReader(f))
    assert chats[0].messages == [{"role": "user", "content": first["prompt"]},
                                 {"role": "assistant", "content": first["response"] + SUFFIX}]
    assert chats[0].label == (1 if first["is_safe"] == "True" else 0)
    head = load_tellme(path, limit=37, balanced=False)
    assert [c.row for c in head] == list(range(37)) and {c.label for c in head} == {0}  # unsafe rows come first
    bal = load_tellme(path, limit=37)
    assert len(bal) == 37 and sum(c.label for c in bal) == 18
    assert [c.row for c in bal] == sorted(c.row for c in bal)
    assert [c.row for c in bal if c.label == 1] == [c.row for c in chats if c.label == 1][:18]


def test_loader_bad_input(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('prompt,response,is_safe\n"a","b",True\n"c","d",maybe\n')
    with pytest.raises(DataFormatError, match=r"t.csv record 1 \(line 3\).*maybe"):
        load_tellme(p)
    p.write_text("prompt,answer,is_safe\na,b,True\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['response'\]"):
        load_tellme(p)
    p.write_text("prompt,response,is_safe\n")
    with pytest.raises(DataFormatError, match="no data rows"):
        load_tellme(p)
    with pytest.raises(ConfigError, match="limit"):
        load_tellme(p, limit=0)


# ---------------------------------------------------------------- math against direct float64 formulas
def _direct(z: torch.Tensor, y: torch.Tensor, eps: float, unstable: bool = False) -> dict[str, float]:
    """The spec's formulas written out on the rows (column-normalised Z, cdist on full blocks)."""
    order = torch.argsort(y) if unstable else torch.sort(y, stable=True).indices
    z, y = z[order], y[order]
    m, d = z.shape
    zn = z / z.norm(dim=0).clamp_min(1e-12)
    eye = torch.eye(d, dtype=torch.float64) / d
    r_diff = d * math.log(d) / 2 + torch.logdet(eye + zn.T @ zn / (m * eps)) / 2
    r_same = 0.0
    classes = y.unique().tolist()
    for k in classes:
        zk = zn[y == k]
        r_same += (d * math.log(d) + torch.logdet(eye + zk.T @ zk / (len(zk) * eps))) * len(zk) / (2 * m)
    r = z - z.mean(0)
    r = r / r.norm(dim=1, keepdim=True)
    a = r.T @ r / m
    s = torch.linalg.svdvals(a / torch.trace(a))
    er = math.exp(float(-(s * s.log()).nansum()))
    c = len(classes)
    step = m // c
    vals = []
    for i in range(c):
        for j in range(i + 1, c):
            x, w = z[i * step:(i + 1) * step], z[j * step:(j + 1) * step]
            cos = torch.nn.functional.cosine_similarity(x, w, dim=1).mean()
            vx, vw = x - x.mean(), w - w.mean()
            pcc = (vx / vx.norm(dim=0) * (vw / vw.norm(dim=0))).mean()
            dist = torch.cdist(x, w)
            haus = max(dist.min(1).values.max(), dist.min(0).values.max())
            vals.append([cos, pcc, dist.mean(), torch.cdist(x, w, p=1).mean(), haus])
    mean = torch.tensor(vals, dtype=torch.float64).mean(0)
    return {"R_diff": float(r_diff), "R_same": float(r_same), "R_gap": float(r_diff - r_same), "erank": er,
            "cos_sim": math.degrees(math.acos(float(mean[0]))), "pcc": float(mean[1]), "L2": float(mean[2]),
            "L1": float(mean[3]), "hausdorff": float(mean[4])}


def _grams(z, y):
    return {int(k): z[y == k].T @ z[y == k] for k in y.unique()}


@pytest.mark.parametrize("m,d,classes", [(40, 7, 2), (33, 50, 2), (301, 37, 3), (12, 5, 2)])
def test_metrics_match_direct_formulas(m, d, classes):
    g = torch.Generator().manual_seed(m * d)
    z = torch.randn(m, d, generator=g, dtype=torch.float64) * torch.rand(d, generator=g, dtype=torch.float64) * 4 + 2
    y = torch.randint(0, classes, (m,), generator=g)
    y[:classes] = torch.arange(classes)  # every class present
    got = tellme_metrics(z, y, _grams(z, y), eps=0.1)
    ref = _direct(z, y, 0.1)
    for k in NAMES:
        assert got[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12), k


def test_l1_with_ties_and_zero_columns():
    z = torch.tensor([[0.0, 1, 2], [0, 1, 2], [1, 1, 0], [0, 3, 2], [1, 1, 2], [0, 1, 5]], dtype=torch.float64)
    z[:, 0] = 0.0  # an all-zero feature column: F.normalize leaves it zero, no NaN
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    got = tellme_metrics(z, y, _grams(z, y), eps=0.1)
    ref = _direct(z, y, 0.1)
    for k in ("R_diff", "R_same", "L1"):
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12), k
    for k in ("L2", "hausdorff"):  # the Gram route's absolute error is ~sqrt(1e-16) * row norm at coincident rows
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-7), k
    assert all(math.isfinite(got[k]) for k in ("R_diff", "R_same", "R_gap"))


def test_grams_can_be_accumulated_in_pieces_and_one_class_gives_nan_distances():
    z = torch.randn(50, 6, dtype=torch.float64)
    y = torch.arange(50) % 2
    halves = [_grams(z[:20], y[:20]), _grams(z[20:], y[20:])]
    merged = {k: halves[0][k] + halves[1][k] for k in (0, 1)}
    counts = {0: 25, 1: 25}
    a, b = coding_rates(merged, counts, 0.1), coding_rates(_grams(z, y), counts, 0.1)
    assert a == pytest.approx(b, rel=1e-12)
    assert all(math.isnan(v) for v in distance_metrics(z, 1).values())
    assert erank(torch.eye(4, dtype=torch.float64).repeat(3, 1)) == pytest.approx(3.0, rel=1e-9)  # centred: rank 3


def test_resolve_layer():
    assert resolve_layer(None, 30) == 18  # floor(0.6666 * 30) = 19, minus 1
    assert resolve_layer(None, 1) == 0
    assert resolve_layer(-1, 4) == 3
    with pytest.raises(ConfigError, match="layer=4"):
        resolve_layer(4, 4)


# ---------------------------------------------------------------- scan vs float64 reference from output_hidden_states
def _ctx(model, tok, tmp_path, max_batch_tokens=300, data_dir=None):
    return ScanContext(model=model, tokenizer=tok, anatomy=inspect_model(model), run_dir=tmp_path, data_dir=data_dir,
                       hardware=HardwareConfig(max_batch_tokens=max_batch_tokens, stat_dtype="float64"))


def _reference(model, tok, chats, layer, num_layers, unstable=False):
    states = reference_states(model, tok, chats, add_special_tokens=True)
    # block `layer` output at the last token; the last block's raw output is read by a hook (HF's
    # hidden_states[L] has the final norm applied)
    rows = [(raw[layer] if layer == num_layers - 1 else hs[layer + 1])[-1] for hs, raw in states]
    z = torch.stack(rows)
    y = torch.tensor([c.label for c in chats])
    return _direct(z, y, 0.1, unstable)


@pytest.mark.parametrize("build,layer", [(tiny_llama, None), (tiny_llama, -1), (tiny_moe, None)],
                         ids=["dense-default", "dense-last", "moe"])
def test_scan_matches_float64_reference(build, layer, tmp_path):
    g = torch.Generator().manual_seed(11)
    model, tok = build(), char_tokenizer()
    chats = random_chats(26, 2, g)
    cfg = TELLMEConfig(layer=layer, batch_size=4)
    res = tellme_from_chats(_ctx(model, tok, tmp_path), cfg, chats)
    num = model.config.num_hidden_layers
    ref = _reference(model, tok, chats, resolve_layer(layer, num), num)
    for k in NAMES:
        assert res["metrics"][k] == pytest.approx(ref[k], rel=1e-8, abs=1e-10), k
    assert res["details"]["counts"] == {"unsafe": 13, "safe": 13}
    assert (tmp_path / res["figures"][0]).read_bytes()[:4] == b"\x89PNG"


def test_reference_compat_left_padding_and_float32(tmp_path):
    g = torch.Generator().manual_seed(2)
    model64, tok = tiny_llama(), char_tokenizer()
    model32 = tiny_llama(dtype=torch.float32)
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    chats = random_chats(24, 2, g)
    for compat in (False, True):  # RoPE: left padding shifts positions by a constant, which cancels
        # compat pairs rows in torch.argsort's (unstable) order: cos_sim / pcc follow that order
        ref = _reference(model64, tok, chats, resolve_layer(None, 4), 4, unstable=compat)
        res = tellme_from_chats(_ctx(model32, tok, tmp_path), TELLMEConfig(reference_compat=compat), chats)
        for k in NAMES:
            scale = max(abs(ref[k]), 1.0) if k == "pcc" else abs(ref[k])
            assert abs(res["metrics"][k] - ref[k]) <= 1e-4 * scale, (compat, k)
        assert res["details"]["padding_side"] == ("left" if compat else "right")


def test_registered_scan_on_real_data(data_dir, tmp_path):
    model, tok = tiny_llama(layers=3, dtype=torch.float32), char_tokenizer()
    ctx = _ctx(model, tok, tmp_path, max_batch_tokens=4096, data_dir=data_dir)
    res = get_scan("tellme")(ctx, replace(TELLMEConfig(), limit=40, max_length=64))
    assert set(res["metrics"]) == set(NAMES)
    assert res["details"]["num_samples"] == 40 and res["config"]["limit"] == 40
    assert res["details"]["counts"] == {"unsafe": 20, "safe": 20}  # balanced head of each label
    assert all(math.isfinite(v) for v in res["metrics"].values())
    # reference compat: the file lists the 1000 unsafe rows first, a head of 40 has one class -> NaN + warning
    res = get_scan("tellme")(ctx, replace(TELLMEConfig(), limit=40, max_length=64, reference_compat=True))
    assert res["details"]["counts"] == {"unsafe": 40, "safe": 0}
    assert math.isfinite(res["metrics"]["R_diff"]) and math.isnan(res["metrics"]["L2"])
    assert any("one class" in w for w in res["warnings"])
