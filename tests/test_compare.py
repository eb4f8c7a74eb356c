"""deepsight-compare: results.json discovery, leaderboard values, and the Markdown / CSV / HTML files."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import sys

import pytest
from report_helpers import make_run

from deepsight.report.compare import build_leaderboard, find_results, main


@pytest.fixture
def sweep(tmp_path):
    """A multirun-like folder with two runs, plus a separate run elsewhere."""
    runs = {}
    for i, model in enumerate(("model-a", "model-b")):
        runs[model] = make_run(tmp_path / "sweep" / "2026-11-28" / "01-00-00" / f"{i}_{model}", model=model, seed=i,
                               figures=False)
    runs["model-c"] = make_run(tmp_path / "single" / "run", model="model-c", seed=7, figures=False)
    (tmp_path / "sweep" / "multirun.yaml").write_text("x: 1\n")
    return tmp_path, runs


def test_find_results_dirs_files_and_sweeps(sweep):
    root, _ = sweep
    files = find_results([root / "sweep", root / "single" / "run", root / "single" / "run" / "results.json"])
    assert [f.parent.name for f in files] == ["0_model-a", "1_model-b", "run"]  # no repeats
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_results([root / "nope"])
    (root / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no results.json"):
        find_results([root / "empty"])


def test_leaderboard_values(sweep):
    root, runs = sweep
    columns, rows = build_leaderboard(find_results([root]))
    assert [r["model"] for r in rows] == ["model-c", "model-a", "model-b"]  # sorted paths: single/ < sweep/
    assert "eval/strongreject/mean_score" in columns and "eval/xstest/over_refusal_rate" in columns
    assert "eval/xstest/refusal_rate" not in columns  # headlines only
    assert [c for c in columns if c.startswith("eval/")] == [
        "eval/strongreject/mean_score", "eval/strongreject/refusal_rate", "eval/strongreject/unknown_rate",
        "eval/xstest/over_refusal_rate", "eval/xstest/unsafe_compliance_rate", "eval/xstest/unknown_rate"]
    assert columns.index("scan/xboundary/separation_score") < columns.index("scan/tellme/R_gap")  # result order
    assert "scan/xboundary/separation_score" in columns and "scan/tellme/R_gap" in columns
    for r in rows:
        res = runs[r["model"]]
        cell = r["cells"]["eval/xstest/over_refusal_rate"]
        assert cell.value == res["evals"]["xstest"]["metrics"]["over_refusal_rate"]["value"] and cell.is_rate
        assert not r["cells"]["eval/strongreject/mean_score"].is_rate
        assert r["cells"]["scan/tellme/R_gap"].value == res["scans"]["tellme"]["metrics"]["R_gap"]
        assert r["problems"] == 2 and r["status"] == "completed_with_errors"
    all_cols, _ = build_leaderboard(find_results([root]), all_metrics=True)
    assert "scan/tellme/hausdorff" in all_cols and "eval/xstest/compliance_rate" in all_cols
    assert "scan/mi_peaks/thinking_tokens" not in all_cols  # lists are not leaderboard numbers


def test_main_writes_three_formats(sweep, capsys):
    root, runs = sweep
    out = root / "lb"
    assert main([str(root / "sweep"), str(root / "single" / "run"), "-o", str(out), "--all-metrics"]) == 0
    md, html, text = (out / "leaderboard.md").read_text(), (out / "leaderboard.html").read_text(), \
        (out / "leaderboard.csv").read_text()
    assert md in capsys.readouterr().out
    table = list(csv.DictReader(io.StringIO(text)))
    assert [row["model"] for row in table] == ["model-a", "model-b", "model-c"]
    for row in table:
        res = runs[row["model"]]
        xs = res["evals"]["xstest"]["metrics"]["refusal_rate"]
        assert float(row["eval/xstest/refusal_rate"]) == pytest.approx(xs["value"])
        assert float(row["eval/xstest/refusal_rate/ci_low"]) == pytest.approx(xs["ci_low"])
        assert float(row["eval/xstest/unknown_rate"]) == pytest.approx(3 / 450)
        assert math.isnan(float(row["scan/tellme/hausdorff"]))
        assert float(row["scan/xboundary/worst_ratio"]) == math.inf
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 3 and lines[0].startswith("| model | audit | status | problems |")
    xs_a = runs["model-a"]["evals"]["xstest"]["metrics"]["refusal_rate"]
    assert f"{100 * xs_a['value']:.1f}% [{100 * xs_a['ci_low']:.1f}%, {100 * xs_a['ci_high']:.1f}%]" in lines[2]
    assert html.startswith("<!DOCTYPE html>") and html.count("<tr>") == 4 and "<script" not in html


def test_model_names_are_escaped(tmp_path):
    results = make_run(tmp_path / "r", model="<b>evil</b>|x", figures=False)
    (tmp_path / "r" / "results.json").write_text(json.dumps(results))
    assert main([str(tmp_path / "r"), "-o", str(tmp_path / "o")]) == 0
    assert "&lt;b&gt;evil&lt;/b&gt;\\|x" in (tmp_path / "o" / "leaderboard.md").read_text()
    html = (tmp_path / "o" / "leaderboard.html").read_text()
    assert "<b>evil" not in html and "&lt;b&gt;evil&lt;/b&gt;|x" in html


def test_bad_inputs(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    assert main([str(tmp_path / "bad"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "skipping" in err and "no readable results.json" in err


def test_console_script_entry_point(sweep):
    root, _ = sweep
    proc = subprocess.run([sys.executable, "-m", "deepsight.report.compare", str(root / "sweep"), "-o",
                           str(root / "cli")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Leaderboard of 2 runs", proc.stdout)
    assert (root / "cli" / "leaderboard.csv").is_file()
