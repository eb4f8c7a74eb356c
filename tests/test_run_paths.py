"""Run folders and the files a run reads back stay inside the run folder (issue 15, point 4)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_helpers import make_run

from deepsight.report import write_report
from deepsight.util.paths import inside, safe_name


@pytest.mark.parametrize("name,expected", [("../../x", "x"), ("a/b\\c", "a_b_c"), ("..", "model"), ("", "model"),
                                           (".hidden", "hidden"), ("Qwen/Qwen3 8B", "Qwen_Qwen3_8B"),
                                           ("qwen3-8b", "qwen3-8b"), ("a..b", "a.b"), ("x" * 300, "x" * 100)])
def test_safe_name(name, expected):
    out = safe_name(name)
    assert out == expected and "/" not in out and ".." not in out and not out.startswith(".")


def test_inside(tmp_path):
    (tmp_path / "run" / "figures").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    (tmp_path / "run" / "figures" / "link.png").symlink_to(tmp_path / "secret.png")
    run = tmp_path / "run"
    assert inside(run, "figures/a.png") == (run / "figures" / "a.png").resolve()
    for bad in ("/etc/passwd", str(tmp_path / "secret.png"), "../secret.png", "figures/../../secret.png",
                "figures/link.png", "."):
        assert inside(run, bad) is None, bad


def test_cli_model_name_cannot_leave_the_output_dir(tmp_path):
    out_dir = tmp_path / "a" / "b" / "out"
    env = dict(os.environ, DEEPSIGHT_OUTPUT_DIR=str(out_dir))
    proc = subprocess.run([sys.executable, "-m", "deepsight", "audit=none", "model.name=../../../x"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = list(tmp_path.rglob("results.json"))
    assert len(results) == 1 and results[0].is_relative_to(out_dir), results
    assert results[0].parent.name.endswith("_x")
    assert not (tmp_path / "a" / "x").exists() and not list(tmp_path.glob("*x*"))


def test_report_inlines_only_figures_inside_the_run(tmp_path):
    run = tmp_path / "run"
    results = make_run(run)
    outside = tmp_path / "outside.png"
    png = next((run / "figures").glob("*.png")).read_bytes()
    outside.write_bytes(png)
    marker = base64.b64encode(png).decode("ascii")[:200]
    results["scans"]["xboundary"]["figures"] = [str(outside), "../outside.png"]
    results["scans"]["tellme"]["figures"] = []
    results["scans"]["spin"]["figures"] = []
    results["scans"]["mi_peaks"]["figures"] = []
    write_report(run, results)
    page = (run / "report.html").read_text()
    assert marker not in page  # neither the absolute nor the climbing path was read
    assert "../outside.png" in page and "figure missing" in (run / "report.md").read_text()
    results["scans"]["xboundary"]["figures"] = [f"figures/{p.name}" for p in (run / "figures").glob("*.png")][:1]
    write_report(run, results)
    assert "data:image/png;base64," in (run / "report.html").read_text()  # a figure inside is still inlined


def test_multirun_subdirs_are_safe(tmp_path):
    env = dict(os.environ, DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "out"))
    proc = subprocess.run([sys.executable, "-m", "deepsight", "-m", "audit=none", "model.name=../up,ok",
                           "hydra.sweep.dir=sweep"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = sorted(p.parent.name for p in Path(tmp_path / "sweep").glob("*/results.json"))
    assert found == ["0_up", "1_ok"], found
