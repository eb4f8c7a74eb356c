"""benchmarks/gpu_scale.sh --tiny: every phase of the real-size GPU benchmark runs on CPU with tiny dimensions."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_scale_sh_tiny_runs_every_phase():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable)
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_scale.sh"), "--tiny"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    cap = res["xboundary+tellme"]
    assert cap["bare_s"] > 0 and cap["capture_s"] > 0 and cap["reference_s"] > 0 and cap["tokens_per_s"] > 0
    assert res["spin"]["matrices"] > 0 and res["spin"]["seconds"] > 0
    assert res["mi_peaks"]["new_tokens"] == 8
    assert "experts" in res and res["hardware"]["matmul_tflops"] > 0


def test_experts_phase_runs_when_the_module_imports(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_scale", REPO / "benchmarks" / "gpu_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(sys.modules, "deepsight.diagnostics.experts", types.ModuleType("deepsight.diagnostics.experts"))
    out = mod.main(["--tiny", "--layers", "2", "--samples", "6", "--repeats", "1", "--json", str(tmp_path / "r.json")])
    assert out["experts"]["seconds"] > 0 and "router-logit" in out["experts"]["status"]
    assert json.loads((tmp_path / "r.json").read_text())["layers"] == 2
