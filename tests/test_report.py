"""report.md / report.html from synthetic results (all scans, benchmarks, skipped and failed stages,
non-finite values, hostile text), the metric helpers, the figure helpers and the console summary."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from report_helpers import make_run

from deepsight.report import print_summary, write_report
from deepsight.report.figures import plot_metric_bars, plot_per_layer, plot_projection_2d, plot_trajectory
from deepsight.report.html import image_mime
from deepsight.report.metrics import as_number, definition_of, flat_metrics, fmt_rate, fmt_value, stage_problems


def _load(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture
def run(tmp_path):
    d = tmp_path / "run"
    make_run(d)
    return d


# ---------------------------------------------------------------- metric helpers


def test_definitions_match_whole_components():
    assert "C_safe - C_harmful" in definition_of("separation_score")
    assert definition_of("layer_8.separation_score") == definition_of("separation_score")
    assert definition_of("max_separation_score") == definition_of("separation_score")
    assert definition_of("R_gap") != definition_of("R_diff")
    # longest known name wins: coupled_ratio is not "coupled"
    assert definition_of("total.coupled_ratio") == definition_of("coupling_ratio")
    assert definition_of("coupled_rate_vs_candidate_mean").startswith("coupled / mean")
    assert definition_of("refusal_rate") != definition_of("score")
    assert "scale-free" in definition_of("scaled_separation")
    assert "safe prompts refused" in definition_of("over_refusal_rate")
    for unknown in ("foo", "", "sep", "layer_count"):
        assert definition_of(unknown) is None, unknown


def test_formatting_of_nonfinite_and_lists():
    assert fmt_value("nan") == "nan" and fmt_value(float("nan")) == "nan"
    assert fmt_value("inf") == "inf" and fmt_value(-math.inf) == "-inf"
    assert fmt_value(3) == "3" and fmt_value(True) == "true" and fmt_value(None) == "-"
    assert fmt_value(0.123456789) == "0.1235"
    assert fmt_value(list(range(20))).endswith("(20 in all)")
    assert fmt_value([{"token": "so", "count": 5}, {"token": "x"}]) == "so (5), x"
    assert fmt_value({"a": 1, "b": 0.5}) == "a=1 b=0.5"
    assert definition_of("histogram_mean_mi") != definition_of("mean_mi")
    assert fmt_rate(0.516) == "51.6%" and fmt_rate(1) == "100.0%"
    assert fmt_rate("inf") == "inf"
    assert as_number("-inf") == -math.inf and as_number(True) is None and as_number("x") is None


def test_flat_metrics_and_problems(run):
    results = _load(run)
    flat = flat_metrics(results)
    xs = results["evals"]["xstest"]["metrics"]["refusal_rate"]
    assert flat["eval/xstest/refusal_rate"] == xs["value"]
    assert flat["eval/xstest/refusal_rate/ci_low"] == xs["ci_low"]
    assert flat["eval/xstest/unknown_rate"] == pytest.approx(3 / 450)
    assert math.isnan(flat["scan/tellme/hausdorff"])
    assert flat["scan/xboundary/worst_ratio"] == math.inf
    assert not any(k.startswith("eval/harmbench") or k.startswith("scan/broken_scan") for k in flat)
    assert "scan/mi_peaks/thinking_tokens" not in flat  # a list, not a number
    probs = {(p.kind, p.name): p for p in stage_problems(results)}
    assert set(probs) == {("scan", "broken_scan"), ("eval", "harmbench")}
    assert probs[("scan", "broken_scan")].status == "failed"


# ---------------------------------------------------------------- report files


def test_report_md_contents(run):
    results = _load(run)
    write_report(run, results)
    md = (run / "report.md").read_text()
    for heading in ("# DeepSight audit: tiny-llama", "## Headline", "## Skipped or failed stages",
                    "## Safety benchmarks", "## White-box diagnostics", "## Worst examples", "## Warnings",
                    "## Run metadata", "### Timings"):
        assert heading in md, heading
    # the headline: XSTest's over-refusal and unsafe compliance, StrongREJECT's mean score, two numbers per scan
    head = md.split("## Headline")[1].split("\n## ")[0]
    ov = results["evals"]["xstest"]["metrics"]["over_refusal_rate"]
    assert f"| eval xstest | over_refusal_rate | {100 * ov['value']:.1f}% | [{100 * ov['ci_low']:.1f}%, " in head
    assert "| eval xstest | unsafe_compliance_rate |" in head and "| eval strongreject | mean_score |" in head
    assert "| eval xstest | refusal_rate |" not in head
    for scan, metric in (("xboundary", "separation_score"), ("xboundary", "boundary_ratio"), ("tellme", "R_gap"),
                         ("tellme", "erank"), ("spin", "coupled"), ("spin", "coupling_ratio"), ("mi_peaks", "mean_mi")):
        assert f"| scan {scan} | {metric} | {fmt_value(results['scans'][scan]['metrics'][metric])} |" in head
    # headline rates with intervals and counts, computed here from the data
    r = results["evals"]["xstest"]["metrics"]["refusal_rate"]
    row = next(line for line in md.splitlines() if line.startswith("| xstest | refusal_rate |"))
    assert f"{100 * r['value']:.1f}%" in row
    assert f"[{100 * r['ci_low']:.1f}%, {100 * r['ci_high']:.1f}%]" in row
    assert f"{r['count']}/{r['n']}" in row and "0.7%" in row and "refused" in row
    # a mean with an interval is a number, not a percentage
    ms = results["evals"]["strongreject"]["metrics"]["mean_score"]
    row = next(line for line in md.splitlines() if line.startswith("| strongreject | mean_score |"))
    assert f"| {ms['value']:.4g} | [{ms['ci_low']:.4g}, {ms['ci_high']:.4g}] | n=60 |" in row
    assert "unparseable: 3 (e.g. \"unparseable: no verdict in 'hmm &lt;b&gt;'\")" in md
    tellme = results["scans"]["tellme"]["metrics"]
    row = next(line for line in md.splitlines() if line.startswith("| tellme | R_gap |"))
    assert f"{tellme['R_gap']:.4g}" in row and "disentangled" in row
    assert re.search(r"\| tellme \| hausdorff \| nan \|", md)
    assert re.search(r"\| xboundary \| worst_ratio \| inf \|", md)
    # skipped / failed with reasons
    assert "| eval/harmbench | skipped | missing data file harmbench/behaviors.csv" in md
    assert "| scan/broken_scan | failed | RuntimeError: boom" in md and "errors/scan_broken_scan.txt" in md
    # every figure linked by its relative path, and the file exists
    for scan in ("xboundary", "tellme", "spin", "mi_peaks"):
        for rel in results["scans"][scan]["figures"]:
            assert f"(<{rel}>)" in md and (run / rel).is_file()
    assert "| mi_peaks | thinking_tokens | so (5), wait (3), &lt;script&gt;" in md
    traj = results["scans"]["mi_peaks"]["metrics"]["mean_trajectory"]
    assert f"| mi_peaks | mean_trajectory | {fmt_value(traj[0])}, " in md and f"({len(traj)} in all)" in md
    # per-layer details and breakdowns as tables
    assert "Details `per_layer`:" in md
    for layer, v in results["scans"]["xboundary"]["details"]["per_layer"].items():
        assert f"| {layer} | {v['separation_score']:.4g} |" in md
    assert "Details `layers`:" in md and "| layer | coupled | candidate_dataset1 |" in md
    for row in results["scans"]["spin"]["details"]["layers"]:
        assert f"| {row['layer']} | {row['coupled']} | 7 | 8 | 1000 |" in md
    safe = results["evals"]["xstest"]["breakdowns"]["label"]["safe"]["refusal_rate"]
    assert f"| label | safe | refusal_rate | {100 * safe['value']:.1f}% |" in md
    # worst examples: 10 of 12, long text truncated
    assert "### xstest (10 of 12 shown" in md
    ex_lines = [line for line in md.splitlines()
                if line.startswith("| unsafe prompt complied with | x") and "full_compliance" in line]
    assert len(ex_lines) == 10 and all(len(line) < 2000 for line in ex_lines)
    assert "| label: unsafe; type: privacy |" in ex_lines[0]
    assert "| refusal: (label: full_compliance; reason: no refusal phrase) |" in ex_lines[0]
    # secrets scrubbed from the config section, env var names kept
    assert "hf_abcdefghijklmnop" not in md and "OPENAI_API_KEY" in md
    # hostile text never raw
    assert "<script>" not in md and "<img" not in md
    assert "&lt;script&gt;" in md


def test_report_html_self_contained_and_escaped(run):
    results = _load(run)
    write_report(run, results)
    page = (run / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()  # no script of ours, none injected by model text
    assert "onerror=" not in page.replace("onerror=alert(1)&gt;", "")  # only inside escaped text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page or "&lt;script&gt;alert(&quot;x&quot;)" in page
    # no external resource: every src/href is a data URI or an in-page anchor
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith("data:") or attr.startswith("#"), attr
    srcs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    figs = [rel for scan in results["scans"].values() for rel in scan.get("figures", [])]
    assert len(srcs) == len(figs) == 5
    assert sorted(base64.b64decode(s) for s in srcs) == sorted((run / rel).read_bytes() for rel in figs)
    assert "hf_abcdefghijklmnop" not in page
    for text in ("separation_score", "boundary_ratio", "R_gap", "coupling_ratio", "thinking_tokens", "refusal_rate",
                 "missing data file harmbench/behaviors.csv", "model_load", "2.13.0"):
        assert text in page, text


def test_missing_and_non_image_figures_are_listed_not_broken(tmp_path):
    d = tmp_path / "run"
    results = make_run(d, figures=False)
    (d / "figures").mkdir()
    (d / "figures" / "not_png.png").write_text("this is not an image")
    results["scans"]["xboundary"]["figures"] = ["figures/gone.png", "figures/not_png.png"]
    write_report(d, results)
    page = (d / "report.html").read_text()
    assert "<img" not in page
    assert "figures/gone.png" in page and "figures/not_png.png" in page
    assert "(figure missing: `figures/gone.png`)" in (d / "report.md").read_text()


def test_report_of_failed_run_with_nonfinite_strings(tmp_path):
    """results.json as written by a run that failed early: no model, only skipped/failed stages, nan/inf strings."""
    results = {
        "schema_version": 1, "status": "failed", "versions": {}, "hardware": {}, "model": {}, "config": {},
        "timings": {"model_load": "nan"},
        "scans": {"xboundary": {"status": "skipped", "reason": "missing xboundary/harmbench_test.json"},
                  "spin": {"status": "ok", "metrics": {"coupled": 0, "coupling_ratio": "nan", "inf_metric": "-inf"},
                           "figures": "figures/one.png", "details": [1, 2]},
                  "tellme": {"status": "failed", "reason": "ValueError: <bad> & worse"}},
        "evals": {"xstest": {"status": "failed", "reason": "CUDA OOM"},
                  "odd": {"status": "ok", "metrics": 0.5, "unknown": "n/a", "examples": "none", "breakdowns": [1],
                          "warnings": "one warning"},
                  "weird": {"status": "ok", "metrics": {"acc": {"value": "nan", "count": 0, "n": 0,
                                                                "ci_low": "nan", "ci_high": "nan"}}}},
        "warnings": [],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    write_report(tmp_path, json.loads(path.read_text()))
    md = (tmp_path / "report.md").read_text()
    assert "Status: **failed**" in md and "DeepSight audit: unknown" in md
    assert "| spin | coupling_ratio | nan |" in md and "| spin | inf_metric | -inf |" in md
    assert "| weird | acc | nan | [nan, nan] | 0/0 |" in md
    assert "| odd | value | 0.5 | - | - | - |" in md  # malformed result shapes are shown, never a crash
    assert "- eval odd: one warning" in md
    assert "ValueError: &lt;bad&gt; &amp; worse" in md
    assert "| model_load | nan s |" in md
    assert "(figure missing: `figures/one.png`)" in md
    page = (tmp_path / "report.html").read_text()
    assert "ValueError: &lt;bad&gt; &amp; worse" in page and "CUDA OOM" in page


def test_report_from_in_memory_results_with_floats_tensors_numpy(tmp_path):
    """The orchestrator passes its in-memory dict: raw non-finite floats, tensors and numpy values."""
    results = {"status": "completed", "model": {"name": "m"}, "config": {"model": {"name": "m"}},
               "scans": {"xboundary": {"metrics": {"separation_score": torch.tensor(2.5),
                                                   "boundary_ratio": float("inf"), "n": np.int64(7),
                                                   "per_layer": {"4": np.float32(1.5), "8": float("nan")}}}},
               "evals": {}}
    write_report(tmp_path, results)
    md = (tmp_path / "report.md").read_text()
    assert "| xboundary | separation_score | 2.5 |" in md
    assert "| xboundary | boundary_ratio | inf |" in md
    assert "| xboundary | n | 7 |" in md
    assert "| xboundary | per_layer.4 | 1.5 |" in md and "| xboundary | per_layer.8 | nan |" in md
    assert "No benchmark results." in md


# ---------------------------------------------------------------- figures


def _png_shape(path: Path) -> tuple[int, ...]:
    import matplotlib.image

    data = path.read_bytes()
    assert image_mime(data) == "image/png"
    return matplotlib.image.imread(str(path)).shape


def test_figure_helpers_write_pngs(tmp_path):
    p = plot_per_layer({0: 1.0, 2: float("inf"), 10: 3.0, "emb": 0.5}, "sep", tmp_path / "a" / "sep.png")
    assert _png_shape(p)[:2] == (360, 640)
    p = plot_per_layer({"s": {1: 1, 2: 2}, "b": {1: 3, 2: float("nan")}}, "two", tmp_path / "two.png", kind="bar")
    assert _png_shape(p)[2] in (3, 4)
    p = plot_projection_2d(np.random.default_rng(1).normal(size=(17, 2)), ["h"] * 5 + ["s"] * 12, tmp_path / "p.png")
    assert _png_shape(p)[:2] == (440, 520)
    p = plot_trajectory([0.1, 0.5, float("nan"), 0.2], [1, 2, 9], tmp_path / "t.png", peak_labels=["a", "b", "c"])
    assert _png_shape(p)[:2] == (360, 720)
    p = plot_metric_bars({"R_gap": 3.0, "hausdorff": "nan"}, "tellme", tmp_path / "m.png")
    assert len(_png_shape(p)) == 3


def test_figure_helpers_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        plot_projection_2d(np.zeros((4, 3)), [0] * 4, tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels"):
        plot_projection_2d(np.zeros((4, 2)), [0] * 3, tmp_path / "x.png")
    with pytest.raises(ValueError, match="peak labels"):
        plot_trajectory([1.0, 2.0], [0, 1], tmp_path / "x.png", peak_labels=["a"])
    with pytest.raises(ValueError, match="kind"):
        plot_per_layer({0: 1.0}, "t", tmp_path / "x.png", kind="pie")


# ---------------------------------------------------------------- console summary


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_summary_plain_text(run):
    results = _load(run)
    write_report(run, results)
    buf = io.StringIO()
    print_summary(results, run, file=buf)
    text = buf.getvalue()
    lines = text.splitlines()
    assert lines[0] == "DeepSight completed_with_errors: tiny-llama"
    sr = results["evals"]["strongreject"]["metrics"]["mean_score"]
    assert any("strongreject" in line and "mean_score" in line and fmt_value(sr["value"]) in line for line in lines)
    for name, n in (("over_refusal_rate", 150), ("unsafe_compliance_rate", 100)):
        xs = results["evals"]["xstest"]["metrics"][name]
        assert any(re.search(rf"xstest +{name} ", line) and f"{100 * xs['value']:.1f}% [" in line and f"n={n}" in line
                   for line in lines), name
    assert not any(re.search(r"xstest +refusal_rate", line) for line in lines)  # not a headline of XSTest
    assert any("separation_score" in line for line in lines) and any("R_gap" in line for line in lines)
    assert any("broken_scan" in line and "FAILED" in line for line in lines)
    assert any("harmbench" in line and "SKIPPED" in line for line in lines)
    assert lines[-1] == f"Report: {run / 'report.html'}"
    assert "\x1b[" not in text  # no terminal escapes in logs


def test_summary_rich_on_tty_and_without_report(tmp_path):
    results = make_run(tmp_path, figures=False)
    results["evals"]["harmbench"]["reason"] = "missing [bold]file[/bold] x.csv"
    buf = _Tty()
    print_summary(results, tmp_path, file=buf)
    text = buf.getvalue()
    assert "separation_score" in text and "over_refusal_rate" in text and "FAILED" in text
    assert f"Results: {tmp_path / 'results.json'}" in text.replace("\n", "")  # no report.html written yet
    assert "missing [bold]file[/bold] x.csv" in text  # text printed literally, never as rich markup
