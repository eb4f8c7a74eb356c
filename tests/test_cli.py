"""The `deepsight` Hydra app: help, strict config keys, run folders, multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str], tmp_path: Path, **env) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "out"), **env)
    full_env.pop("WANDB_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "deepsight", *args], cwd=tmp_path, env=full_env,
        capture_output=True, text=True, timeout=600,
    )


def test_help_lists_config_groups(tmp_path):
    out = _run(["--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    for group in ("model:", "scan:", "eval:", "judge:", "logger:", "hardware:", "audit:"):
        assert group in out.stdout


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["model.pathh=x"], "pathh"),
        (["bogus=1"], "bogus"),
        (["scan=[xboundary]", "scan.xboundary.n_per_clas=3"], "n_per_clas"),  # inside a selected scan
    ],
)
def test_unknown_keys_are_errors_naming_them(tmp_path, overrides, key):
    out = _run(["audit=none", *overrides], tmp_path)
    assert out.returncode != 0
    assert key in out.stderr


def test_run_folder_without_selection(tmp_path):
    out = _run(["audit=none", "hydra.run.dir=run1"], tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run1"
    results = json.loads((run / "results.json").read_text())
    assert results["schema_version"] == 1
    assert results["status"] == "completed"
    assert {"torch", "transformers", "deepsight"} <= set(results["versions"])
    assert "cpu_count" in results["hardware"]
    assert results["config"]["model"]["path"] == "default"
    assert any("nothing selected" in w for w in results["warnings"])
    assert (run / "config.yaml").is_file() and (run / "report.md").is_file()


def test_multirun_over_models_writes_one_folder_each(tmp_path):
    out = _run(["-m", "audit=none", "model.name=a,b", "hydra.sweep.dir=sweep"], tmp_path)
    assert out.returncode == 0, out.stderr
    found = sorted(p.parent.name for p in (tmp_path / "sweep").glob("*/results.json"))
    assert len(found) == 2 and found[0].endswith("_a") and found[1].endswith("_b")
