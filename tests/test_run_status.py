"""Exit codes people can script: run status and generator-level failures (issue 15, point 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from scripted import ScriptedGenerator

from deepsight.config.schema import BenchmarkConfig, DeepSightConfig, GenerationConfig
from deepsight.evals.loaders import EvalItem
from deepsight.evals.registry import EvalContext
from deepsight.evals.runner import FAIL_FAST_AFTER, GenerationFailedError, generate_and_judge
from deepsight.generation.base import Generation
from deepsight.judges.refusal import RefusalJudge
from deepsight.run.audit import explicit_parts, run_problems


def _ctx(tmp_path, generator, batch_size=4):
    return EvalContext(generator=generator, judge_factory=lambda name: RefusalJudge(), run_dir=tmp_path,
                       data_dir=None, generation=GenerationConfig(batch_size=batch_size), model_name="m")


def _items(n):
    return [EvalItem(f"i{i}", f"prompt {i}") for i in range(n)]


class Forbidden(ScriptedGenerator):
    """Every request answered HTTP 403, as a server with a wrong key does."""

    def generate(self, requests, params):
        self.requests += requests
        return [Generation(r.id, "", finish_reason="error", error="HTTP 403 from http://h/v1: forbidden")
                for r in requests]


def test_every_request_failing_fails_the_benchmark_early(tmp_path):
    gen = Forbidden()
    with pytest.raises(GenerationFailedError, match="all 8 generations attempted failed: HTTP 403"):
        generate_and_judge(_ctx(tmp_path, gen), BenchmarkConfig(), "t", _items(40), ["refusal"])
    assert len(gen.requests) == FAIL_FAST_AFTER  # stopped after two chunks, not 40 requests
    with pytest.raises(GenerationFailedError, match="all 3 generations"):  # fewer items than the threshold
        generate_and_judge(_ctx(tmp_path / "small", Forbidden()), BenchmarkConfig(), "t", _items(3), ["refusal"])


def test_a_programming_error_in_the_generator_propagates(tmp_path):
    class Broken(ScriptedGenerator):
        def generate(self, requests, params):
            return [Generation(r.id, len(r)) for r in requests]  # TypeError: a bug, not an item's failure

    with pytest.raises(TypeError):
        generate_and_judge(_ctx(tmp_path, Broken()), BenchmarkConfig(), "t", _items(3), ["refusal"])


def test_some_failed_items_stay_unknowns(tmp_path):
    fail = {f"i{i}" for i in range(0, 20, 2)}  # half the items, including the first ones
    res = generate_and_judge(_ctx(tmp_path, ScriptedGenerator("Sure.", fail_ids=fail)), BenchmarkConfig(), "t",
                             _items(20), ["refusal"])
    assert sum(r.verdicts["refusal"].unknown for r in res) == 10


def test_run_problems_and_explicit_parts():
    cfg = OmegaConf.structured(DeepSightConfig)
    cfg.audit_name = "quick"
    cfg.eval = {"xstest": BenchmarkConfig(), "harmbench": BenchmarkConfig()}
    assert explicit_parts(cfg, None) == set()
    assert explicit_parts(cfg, ["eval=[xstest,harmbench]", "model.name=x"]) == {"eval/xstest", "eval/harmbench"}
    assert explicit_parts(cfg, ["+eval=harmbench", "scan=tellme"]) == {"eval/harmbench", "scan/tellme"}
    cfg.audit_name = "none"
    assert explicit_parts(cfg, None) == {"eval/xstest", "eval/harmbench"}
    ok = {"status": "ok", "unknown": {"count": 1, "n": 10, "rate": 0.1}}
    results = {"scans": {"tellme": {"status": "skipped", "reason": "missing tellme.jsonl"}},
               "evals": {"xstest": ok, "harmbench": {"status": "ok", "unknown": {"count": 6, "n": 10, "rate": 0.6}}}}
    problems = run_problems(results, set(), 0.5)
    assert len(problems) == 1 and "harmbench: unknown rate 0.600" in problems[0]
    assert run_problems(results, set(), 0.6) == []  # at the threshold: not above it
    assert any("tellme was requested but skipped" in p for p in run_problems(results, {"scan/tellme"}, 1.0))
    results["evals"]["xstest"] = {"status": "failed", "reason": "TypeError: x"}
    assert any("xstest failed" in p for p in run_problems(results, set(), 1.0))


def _cli(args, tmp_path, **env):
    full = dict(os.environ, DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "out"), **env)
    return subprocess.run([sys.executable, "-m", "deepsight", *args], cwd=tmp_path, env=full, capture_output=True,
                          text=True, timeout=300)


def test_cli_exit_code_when_a_requested_benchmark_is_skipped(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    out = _cli(["audit=none", "eval=[xstest]", f"data_dir={empty}", "hydra.run.dir=run"], tmp_path)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["evals"]["xstest"]["status"] == "skipped"
    assert out.returncode == 1 and results["status"] == "completed_with_errors", out.stderr[-2000:]
    assert any("requested but skipped" in w for w in results["warnings"])
    bad = _cli(["audit=none", "fail_unknown_rate=2", "hydra.run.dir=run2"], tmp_path)
    assert bad.returncode == 2 and "fail_unknown_rate" in bad.stdout + bad.stderr


def test_cli_multirun_exit_code_says_a_job_failed(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    out = _cli(["-m", "audit=none", "eval=[xstest]", f"data_dir={empty}", "model.name=a,b",
                "hydra.sweep.dir=sweep"], tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    assert len(list(Path(tmp_path / "sweep").glob("*/results.json"))) == 2  # the sweep went on


def _compose(overrides):
    from hydra import compose, initialize_config_module

    from deepsight.config import register_configs

    register_configs()
    with initialize_config_module(config_module="deepsight.conf", version_base=None):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize("failure", ["forbidden", "type_error"])
def test_audit_with_a_broken_generator_fails_the_stage_with_a_traceback(tmp_path, monkeypatch, failure):
    """The issue's probe end to end: every request 403, or a TypeError in the generator -> failed, exit 1."""
    data = Path(os.environ.get("DEEPSIGHT_DATA_DIR", "/nonexistent")) / "xstest" / "xstest_prompts.csv"
    if not data.is_file():
        pytest.skip("XSTest data not available (set DEEPSIGHT_DATA_DIR)")
    import deepsight.generation.factory as factory
    from deepsight.run.audit import run_audit

    class Raising(ScriptedGenerator):
        def generate(self, requests, params):
            return [Generation(r.id, None + 1) for r in requests]

    gen = Forbidden() if failure == "forbidden" else Raising()
    monkeypatch.setattr(factory, "build_generator", lambda *a, **k: gen)
    cfg = _compose(["audit=none", "eval=[xstest]", "eval.xstest.limit=20", "generation=openai",
                    "generation.base_url=http://127.0.0.1:9/v1", "generation.batch_size=4",
                    f"data_dir={data.parent.parent}"])
    results = run_audit(cfg, tmp_path)
    res = results["evals"]["xstest"]
    assert results["status"] == "completed_with_errors" and res["status"] == "failed", res
    assert ("HTTP 403" in res["reason"]) if failure == "forbidden" else res["reason"].startswith("TypeError")
    trace = (tmp_path / res["traceback_file"]).read_text()
    assert "Traceback" in trace and ("GenerationFailedError" in trace or "TypeError" in trace)
    assert len(gen.requests) <= FAIL_FAST_AFTER
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["status"] == "completed_with_errors" and any("xstest failed" in w for w in on_disk["warnings"])
