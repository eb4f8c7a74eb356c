"""A fresh clone with no data folder runs the quick audit to completion, its data fetched on first use.

The committed tree is cloned into a temporary folder and ``python -m deepsight`` runs there (so the
clone's code is what runs) with ``DEEPSIGHT_DATA_DIR`` unset, an empty ``$DEEPSIGHT_CACHE/data`` and
``HF_ENDPOINT`` / ``DEEPSIGHT_GITHUB_ENDPOINT`` / ``DEEPSIGHT_PYPI_ENDPOINT`` pointing at a loopback server
that serves the shared data files the way their hosts do; every other HTTP(S) request goes to a dead
proxy, so nothing but the loopback endpoints can be reached. Every part of the quick audit (X-Boundary,
TELLME, XSTest) must complete; sizes are reduced so the test takes about a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from data_server import DataServer

from deepsight.data.sources import SOURCES
from deepsight.models.default_model import cache_root

REPO = Path(__file__).resolve().parent.parent
QUICK_FILES = ("xboundary/harmbench_test.json", "xboundary/SafeMT_train_600.json",
               "xboundary/ORbench_retain_set.json", "tellme/test.csv", "xstest/xstest_prompts.csv")

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing answers there

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and a checkout")
def test_fresh_clone_quick_audit_fetches_its_data(tmp_path, data_dir):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    cache = tmp_path / "cache"
    model_cache = cache_root() / "models"
    if model_cache.is_dir():  # reuse the converted default model (not what this test is about)
        (cache).mkdir()
        (cache / "models").symlink_to(model_cache)
    with DataServer(data_dir) as srv:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DEEPSIGHT_DATA_DIR", "DEEPSIGHT_OFFLINE", "HF_HUB_OFFLINE", "PYTHONPATH")}
        env.update(HF_ENDPOINT=srv.url, DEEPSIGHT_GITHUB_ENDPOINT=srv.url, DEEPSIGHT_PYPI_ENDPOINT=srv.url,
                   DEEPSIGHT_CACHE=str(cache), DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "outputs"),
                   OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
                   # only the loopback endpoints: any other HTTP(S) request goes to a dead proxy and fails
                   HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY,
                   ALL_PROXY=DEAD_PROXY, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        where = subprocess.run([sys.executable, "-c", "import deepsight; print(deepsight.__file__)"], cwd=clone,
                               env=env, capture_output=True, text=True, check=True)
        assert Path(where.stdout.strip()).is_relative_to(clone)  # the clone's code runs
        cmd = [sys.executable, "-m", "deepsight", "audit=quick", "scan.xboundary.n_per_class=8",
               "scan.xboundary.max_length=64", "scan.tellme.limit=16", "eval.xstest.limit=6",
               "eval.xstest.max_new_tokens=8"]
        proc = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        served = {p for p, _ in srv.requests}
        verify = subprocess.run([sys.executable, "-m", "deepsight", "data", "verify"], cwd=clone, env=env,
                                capture_output=True, text=True, timeout=120)
    results_file, = (tmp_path / "outputs").rglob("results.json")
    results = json.loads(results_file.read_text())
    assert results["status"] == "completed"
    assert {k: v["status"] for k, v in results["scans"].items()} == {"xboundary": "ok", "tellme": "ok"}
    assert {k: v["status"] for k, v in results["evals"].items()} == {"xstest": "ok"}
    for key in QUICK_FILES:
        s = SOURCES[key]
        assert f"/{s.repo}/{s.revision}/{s.path}" in served, key
        assert (cache / "data" / key).read_bytes() == (data_dir / key).read_bytes()
    assert verify.returncode == 0 and "0 mismatch(es)" in verify.stdout, verify.stdout + verify.stderr
    report = (results_file.parent / "report.md").read_text()
    assert "## At a glance" in report and "Skipped or failed stages" not in report
