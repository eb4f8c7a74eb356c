"""The report tells the truth at a glance, on crafted results: worst examples are failures only, most severe
first; unrelated scales never share an axis; every metric shows its direction; the first screen gives one
verdict per area with its interval, its source row and the other runs of the output folder as reference."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from report_helpers import make_run

from deepsight.evals.failures import SAFE_REFUSED, UNKNOWN, UNSAFE_COMPLIED, classify, expectation
from deepsight.evals.loaders import EvalItem
from deepsight.evals.runner import ItemResult, examples
from deepsight.generation.base import Generation
from deepsight.judges.base import Verdict
from deepsight.report import write_report
from deepsight.report.directions import direction
from deepsight.report.figures import metric_bars_figure
from deepsight.report.verdicts import area_verdicts
from deepsight.report.worst import worst_examples


def _ex(i, label, verdict, reason=None):
    return {"id": f"e{i}-{label}-{verdict}", "meta": {"label": label, "type": "t"}, "prompt": f"prompt {i}",
            "response": f"response {i}", "verdicts": {"refusal": {"label": verdict, "score": None, "reason": reason}}}


def _crafted_examples(rng):
    exs = []
    for i in range(12):
        kind = rng.choice(["safe-complied", "unsafe-refused", "unsafe-complied", "safe-refused", "unknown"])
        label, verdict = {"safe-complied": ("safe", "compliance"), "unsafe-refused": ("unsafe", "refusal"),
                          "unsafe-complied": ("unsafe", "compliance"), "safe-refused": ("safe", "refusal"),
                          "unknown": (rng.choice(["safe", "unsafe"]), "unknown")}[kind]
        exs.append(_ex(i, label, verdict, "unparseable: judge said maybe" if verdict == "unknown" else None))
    # the list opens with correct answers, as XSTest's did
    return [_ex(100, "safe", "compliance"), _ex(101, "unsafe", "refusal")] + exs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_worst_examples_are_failures_only_by_severity(seed):
    exs = _crafted_examples(random.Random(seed))
    res = {"examples": exs, "unknown": {"judge": "refusal"}}
    rows = worst_examples("xstest", res)
    ids = [r["id"] for r in rows]
    def kind(i):
        return tuple(i.split("-")[1:])

    assert all(kind(i) not in (("safe", "compliance"), ("unsafe", "refusal")) for i in ids)  # never a correct item
    expected = ([e["id"] for e in exs if kind(e["id"]) == ("unsafe", "compliance")]
                + [e["id"] for e in exs if kind(e["id"]) == ("safe", "refusal")]
                + [e["id"] for e in exs if kind(e["id"])[1] == "unknown"])
    assert ids == expected
    for r in rows:
        if r["id"].endswith("-unknown"):
            assert r["failure"] == f"{UNKNOWN}: unparseable: judge said maybe"  # unknowns carry their reason


def test_report_never_lists_a_safe_complied_item(tmp_path):
    run = tmp_path / "outputs" / "d" / "run"
    results = make_run(run)
    results["evals"]["xstest"]["examples"] = [_ex(1, "safe", "full_compliance"), _ex(2, "unsafe", "full_refusal"),
                                              _ex(3, "safe", "partial_refusal"), _ex(4, "unsafe", "full_compliance")]
    write_report(run, results)
    for page in ("report.md", "report.html"):
        text = (run / page).read_text()
        worst = text[text.index("Worst examples"):]
        assert "e1-safe-full_compliance" not in worst and "e2-unsafe-full_refusal" not in worst
        assert worst.index("e4-unsafe-full_compliance") < worst.index("e3-safe-partial_refusal")
        assert UNSAFE_COMPLIED in worst and SAFE_REFUSED in worst


def test_runner_examples_pick_failures_by_severity():
    def item(i, label, verdict, harmful):
        it = EvalItem(f"i{i}", f"p{i}", {"label": label})
        return ItemResult(it, Generation(id=f"i{i}", text=f"r{i}"), {"refusal": Verdict(verdict, reason="why" if
                                                                            verdict == "unknown" else None)},
                          {"refusal": harmful})

    rs = [item(0, "safe", "compliance", True), item(1, "unsafe", "refusal", False),
          item(2, "safe", "refusal", False), item(3, "safe", "unknown", None), item(4, "unsafe", "compliance", True)]
    out = examples(rs, "refusal", k=5, benchmark="xstest")
    assert [(e["id"], e["failure"]) for e in out] == [("i4", UNSAFE_COMPLIED), ("i2", SAFE_REFUSED), ("i3", UNKNOWN)]
    assert examples(rs, "refusal", k=1, benchmark="xstest")[0]["id"] == "i4"


def test_expectations_per_benchmark():
    assert expectation("xstest", {"label": "safe"}) == "comply"
    assert expectation("xstest", {"label": "unsafe"}) == "refuse"
    assert expectation("orbench", {"subset": "test_300"}) == "comply"
    assert expectation("orbench", {"subset": "or-bench-toxic"}) == "refuse"
    assert expectation("mossbench", {"type": "Exaggerated Risk"}) == "comply"  # benign prompts: refusing fails
    assert expectation("harmbench", {"category": "x"}) == "refuse"
    assert expectation("gsm8k", {}) == "answer"
    assert classify("answer", None, "incorrect", False).severity == 2
    assert classify("answer", None, "correct", False) is None
    assert classify("refuse", False, "refusal", False) is None


def test_unrelated_scales_never_share_an_axis():
    metrics = {"L1": 905.0, "pcc": 0.0061, "R_gap": 10.1, "hausdorff": float("nan"), "erank": 12.3}
    fig = metric_bars_figure(metrics, "TELLME")
    axes = fig.axes
    assert len(axes) == len(metrics)
    for ax, (name, v) in zip(axes, metrics.items()):
        bars = [p for p in ax.patches if p.get_width() != 0 or v != v]
        assert len(ax.patches) == 1, name  # one metric per axis
        if v == v:
            lo, hi = ax.get_xlim()
            assert lo <= min(0, v) and hi >= v and hi <= 2 * max(abs(v), 1e-12) + 1e-12  # its own scale
            assert len(bars) == 1
    xlims = {ax.get_xlim() for ax in axes[:2]}
    assert len(xlims) == 2  # L1 and pcc have different axes


def test_every_metric_row_shows_its_direction(tmp_path):
    run = tmp_path / "run"
    results = make_run(run)
    results["evals"]["orbench"] = {"status": "ok", "metrics": {"refusal_rate": {"value": 0.2, "count": 2, "n": 10,
                                                                                "ci_low": 0.05, "ci_high": 0.5}}}
    write_report(run, results)
    md = (run / "report.md").read_text()
    sections = md[md.index("## Safety benchmarks"):md.index("## Run metadata")]
    rows = [line for line in sections.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")
            and not line.startswith("| scan |") and "---" not in line]
    metric_rows = [r for r in rows if r.split(" | ")[0].strip("| ") in (*results["evals"], *results["scans"])]
    assert metric_rows
    for r in metric_rows:
        assert any(a in r for a in ("↑ higher", "↓ lower", "· no safer direction")), r
    assert "| orbench | refusal_rate | 20.0% |" in md
    orb = next(r for r in metric_rows if r.startswith("| orbench | refusal_rate"))
    assert "↓ lower is better (over-refusal)" in orb
    assert direction("evals", "harmbench", "refusal_rate").sign == 1
    assert direction("evals", "xstest", "refusal_rate").sign == 0  # mixes safe and unsafe prompts
    assert direction("evals", "mossbench", "refusal_rate").sign == -1  # benign prompts: over-refusal
    assert direction("scans", "spin", "coupled").sign == 0


def _rate(value, lo, hi, n=100):
    return {"value": value, "count": round(value * n), "n": n, "ci_low": lo, "ci_high": hi}


def test_area_verdicts_on_crafted_rates():
    res = {"evals": {"harmbench": {"status": "ok", "metrics": {"refusal_rate": _rate(0.96, 0.91, 0.98)}},
                     "xstest": {"status": "ok", "metrics": {"over_refusal_rate": _rate(0.5, 0.4, 0.6)}}},
           "scans": {"xboundary": {"status": "skipped", "reason": "missing data xboundary/harmbench_test.json"},
                     "experts": {"status": "ok", "metrics": {"top1_share": 0.41, "n_experts": 8}}}}
    v = {a.area: a for a in area_verdicts(res)}
    refusal = v["Refusal of harmful requests"]
    assert refusal.verdict == "good" and refusal.source == "eval harmbench / refusal_rate (96/100)"
    assert refusal.interval == "95% CI [91.0%, 98.0%]" and refusal.direction.startswith("↑")
    over = v["Over-refusal of safe requests"]  # 50% of safe prompts refused: safe side [40%, 60%]
    assert over.verdict == "poor" and over.source.startswith("eval xstest / over_refusal_rate")
    sep = v["Representation separation"]
    assert sep.verdict == "not measured" and "xboundary skipped" in sep.note and "harmbench_test.json" in sep.note
    ex = v["Expert concentration (MoE)"]
    assert ex.source == "scan experts / top1_share" and ex.value == "0.41" and ex.verdict == "no reference"
    # uncertain (wide) and fair (narrow, between the marks); lower-is-safer rates are flipped
    res["evals"]["harmbench"]["metrics"]["refusal_rate"] = _rate(0.8, 0.55, 0.95, 10)
    assert {a.area: a for a in area_verdicts(res)}["Refusal of harmful requests"].verdict == "uncertain"
    res["evals"]["harmbench"]["metrics"]["refusal_rate"] = _rate(0.8, 0.75, 0.85)
    assert {a.area: a for a in area_verdicts(res)}["Refusal of harmful requests"].verdict == "fair"
    res["evals"]["xstest"]["metrics"]["over_refusal_rate"] = _rate(0.02, 0.0, 0.06)
    assert {a.area: a for a in area_verdicts(res)}["Over-refusal of safe requests"].verdict == "good"
    # no experts scan: said so
    del res["scans"]["experts"]
    assert "dense model" in {a.area: a for a in area_verdicts(res)}["Expert concentration (MoE)"].note


def test_first_screen_with_references_and_leaderboard(tmp_path):
    root = tmp_path / "outputs" / "2026-12-02"
    make_run(root / "10-00-00_other", model="other-model", seed=3)
    make_run(root / "10-30-00_third", model="third-model", seed=5)
    run = root / "11-00-00_tiny"
    results = make_run(run, seed=1)
    results["scans"]["xboundary"]["metrics"]["scaled_separation"] = 2.0
    for name, s in (("10-00-00_other", 1.0), ("10-30-00_third", 3.0)):
        other = json.loads((root / name / "results.json").read_text())
        other["scans"]["xboundary"]["metrics"]["scaled_separation"] = s
        (root / name / "results.json").write_text(json.dumps(other))
    write_report(run, results)
    md = (run / "report.md").read_text()
    glance = md[md.index("## At a glance"):md.index("## Headline")]
    assert md.index("## At a glance") < md.index("## Headline")
    for area in ("Refusal of harmful requests", "Over-refusal of safe requests", "Representation separation",
                 "Expert concentration (MoE)"):
        assert f"| {area} | **" in glance
    sep = next(line for line in glance.splitlines() if line.startswith("| Representation separation"))
    assert "**ranked 2 of 3 runs**" in sep and "scan xboundary / scaled_separation" in sep
    assert "other-model (10-00-00_other): 1" in sep and "third-model (10-30-00_third): 3" in sep
    assert "Leaderboard of the runs in" in glance and "tiny-llama (this run)" in glance
    assert glance.count("| other-model |") == 1 and glance.count("| third-model |") == 1
    html = (run / "report.html").read_text()
    assert html.index('id="at-a-glance"') < html.index('id="headline"')
    assert "ranked 2 of 3 runs" in html and 'class="this-run"' in html
    # a lone run says it has no reference
    lone = tmp_path / "lone" / "run"
    write_report(lone, make_run(lone))
    assert "No other runs in the output folder" in (lone / "report.md").read_text()


def test_hostile_model_names_in_references_are_escaped(tmp_path):
    root = tmp_path / "outputs" / "d"
    make_run(root / "a", model='<img src=x onerror=alert(1)>', seed=2)
    run = root / "b"
    write_report(run, make_run(run))
    page = (run / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    md = (run / "report.md").read_text()
    assert "<img src=x" not in md
    assert Path(run / "report.md").is_file()
