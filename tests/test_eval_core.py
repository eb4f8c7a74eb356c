"""Metrics (Wilson vs the quadratic's roots), the resume store, and the resumable generate-then-judge runner."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from scripted import ScriptedGenerator

from deepsight.config.schema import BenchmarkConfig, GenerationConfig
from deepsight.evals.loaders import EvalItem, select
from deepsight.evals.metrics import binary_prf, flag_rate, mean_summary, rate, unknown_summary, wilson_interval
from deepsight.evals.registry import EvalContext
from deepsight.evals.resume import ResumeStore, stable_hash
from deepsight.evals.runner import generate_and_judge
from deepsight.judges.base import Verdict, unknown
from deepsight.judges.refusal import RefusalJudge

# ---------------------------------------------------------------- metrics


def wilson_by_roots(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Independent form: the interval's ends solve (k/n - p)^2 = z^2 p (1 - p) / n for p."""
    ph = k / n
    a = 1 + z * z / n
    b = -(2 * ph + z * z / n)
    c = ph * ph
    disc = math.sqrt(max(b * b - 4 * a * c, 0.0))
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_wilson_matches_direct_formula():
    rng = random.Random(11)
    cases = [(0, 1), (1, 1), (0, 7), (7, 7), (3, 10), (1, 1000), (999, 1000)]
    cases += [(k, n) for n in (rng.randint(1, 5000) for _ in range(50)) for k in (rng.randint(0, n),)]
    for k, n in cases:
        lo, hi = wilson_interval(k, n)
        rlo, rhi = wilson_by_roots(k, n)
        assert lo == pytest.approx(rlo, abs=1e-12) and hi == pytest.approx(rhi, abs=1e-12), (k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_known_value_and_degenerate():
    lo, hi = wilson_interval(5, 10)  # symmetric around 0.5
    assert lo == pytest.approx(1 - hi, abs=1e-12)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    r = rate(0, 0)
    assert math.isnan(r["value"]) and r["n"] == 0


def test_flag_rate_ignores_unknown():
    r = flag_rate([True, False, None, True, None])
    assert (r["count"], r["n"], r["value"]) == (2, 3, pytest.approx(2 / 3))


def test_mean_summary_vs_statistics():
    rng = random.Random(5)
    xs = [rng.random() for _ in range(37)]
    s = mean_summary(xs + [None])
    assert s["value"] == pytest.approx(statistics.fmean(xs)) and s["n"] == 37
    half = 1.959963984540054 * statistics.stdev(xs) / math.sqrt(37)
    assert s["ci_low"] == pytest.approx(s["value"] - half) and s["ci_high"] == pytest.approx(s["value"] + half)
    assert math.isnan(mean_summary([])["value"]) and math.isnan(mean_summary([0.3])["ci_low"])


def test_unknown_summary_groups_reasons():
    vs = [Verdict("yes"), unknown("unparseable", "??"), unknown("judge_call_failed: HTTP 500"),
          unknown("judge_call_failed: timeout"), Verdict("no")]
    u = unknown_summary(vs)
    assert u["count"] == 3 and u["n"] == 5 and u["rate"] == pytest.approx(0.6)
    assert u["reasons"] == {"unparseable": 1, "judge_call_failed": 2}


def test_binary_prf():
    pairs = [(True, True), (True, False), (False, True), (False, False), (True, True)]
    prf = binary_prf(pairs)
    assert prf["precision"] == pytest.approx(2 / 3) and prf["recall"] == pytest.approx(2 / 3)
    assert prf["f1"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- loaders: selection


def test_select_is_seeded_and_ids_unique():
    items = [EvalItem("x" if i % 10 == 0 else str(i), f"p{i}") for i in range(50)]
    a, b = select(list(items), 10, seed=3), select([EvalItem(i.id, i.prompt) for i in items], 10, seed=3)
    assert [i.id for i in a] == [i.id for i in b] and len(a) == 10
    ids = [i.id for i in select(items, None, 0)]
    assert len(set(ids)) == 50 and "x#2" in ids
    assert [i.id for i in select(items, 10, 4)] != [i.id for i in a]


# ---------------------------------------------------------------- resume store


def test_stable_hash_is_order_independent():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_resume_store_roundtrip_and_partial_line(tmp_path):
    p = tmp_path / "g" / "x.jsonl"
    with ResumeStore(p) as s:
        s.append({"key": "k1", "text": "héllo\nworld"})
        s.append({"key": "k2", "text": "two"})
    with open(p, "ab") as fh:  # a write cut by a kill: no newline at the end
        fh.write(b'{"key": "k3", "text": "trunc')
    s = ResumeStore(p)
    assert set(s.records) == {"k1", "k2"} and s.get("k1")["text"] == "héllo\nworld"
    s.append({"key": "k4", "text": "after"})
    s.close()
    lines = p.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["k1", "k2", "k4"]


# ---------------------------------------------------------------- runner: generate, judge, resume


def _ctx(tmp_path, generator, judges=None, batch_size=2):
    judges = judges or {"refusal": RefusalJudge()}
    return EvalContext(generator=generator, judge_factory=lambda name: judges[name], run_dir=tmp_path, data_dir=None,
                       generation=GenerationConfig(batch_size=batch_size, max_new_tokens=32), model_name="m")


def _items(n):
    return [EvalItem(f"i{i}", f"prompt {i}", {"k": i % 2}) for i in range(n)]


def _reply(req):
    n = int(req.messages[-1]["content"].split()[-1])
    return "I'm sorry, I can't." if n % 3 == 0 else f"Sure, answer {n}."


class CountingJudge(RefusalJudge):
    def __init__(self, crash_after=None):
        super().__init__()
        self.seen = 0
        self.crash_after = crash_after

    def judge(self, inputs):
        out = []
        for x in inputs:
            if self.crash_after is not None and self.seen >= self.crash_after:
                raise KeyboardInterrupt("simulated kill while judging")
            self.seen += 1
            out.append(self.classify(x.response))
        return out


def test_runner_generates_and_judges(tmp_path):
    gen = ScriptedGenerator(_reply)
    res = generate_and_judge(_ctx(tmp_path, gen), BenchmarkConfig(max_new_tokens=7), "t", _items(7), ["refusal"])
    assert [r.verdicts["refusal"].label for r in res] == ["refusal" if i % 3 == 0 else "compliance" for i in range(7)]
    assert [r.harmful["refusal"] for r in res] == [i % 3 != 0 for i in range(7)]
    assert all(p.max_new_tokens == 7 for p in gen.params)  # the benchmark's override wins
    lines = [json.loads(x) for x in (tmp_path / "generations" / "t.jsonl").read_text().splitlines()]
    assert sum(x["kind"] == "generation" for x in lines) == 7 and sum(x["kind"] == "verdict" for x in lines) == 7


def test_runner_resumes_after_kill_during_generation(tmp_path):
    items = _items(9)
    with pytest.raises(KeyboardInterrupt):
        generate_and_judge(_ctx(tmp_path, ScriptedGenerator(_reply, crash_after=5), batch_size=1),
                           BenchmarkConfig(), "t", items, ["refusal"])
    gen = ScriptedGenerator(_reply)
    res = generate_and_judge(_ctx(tmp_path, gen, batch_size=1), BenchmarkConfig(), "t", items, ["refusal"])
    assert [r.id for r in gen.requests] == [f"i{i}" for i in range(5, 9)]  # only the unfinished ones
    assert len(res) == 9 and all(not r.verdicts["refusal"].unknown for r in res)
    again = ScriptedGenerator(_reply)
    generate_and_judge(_ctx(tmp_path, again, batch_size=1), BenchmarkConfig(), "t", items, ["refusal"])
    assert again.requests == []


def test_runner_resumes_after_kill_during_judging(tmp_path):
    items = _items(150)  # more than one judge chunk of 64
    j1 = CountingJudge(crash_after=100)
    with pytest.raises(KeyboardInterrupt):
        generate_and_judge(_ctx(tmp_path, ScriptedGenerator(_reply), {"refusal": j1}, batch_size=50),
                           BenchmarkConfig(), "t", items, ["refusal"])
    j2 = CountingJudge()
    gen = ScriptedGenerator(_reply)
    res = generate_and_judge(_ctx(tmp_path, gen, {"refusal": j2}, batch_size=50), BenchmarkConfig(), "t", items,
                             ["refusal"])
    assert gen.requests == [] and j2.seen == 150 - 64  # the first judged chunk was stored before the kill
    assert len(res) == 150


def test_changed_parameters_do_not_reuse(tmp_path):
    items = _items(3)
    generate_and_judge(_ctx(tmp_path, ScriptedGenerator(_reply)), BenchmarkConfig(), "t", items, ["refusal"])
    gen = ScriptedGenerator(_reply)
    generate_and_judge(_ctx(tmp_path, gen), BenchmarkConfig(max_new_tokens=5), "t", items, ["refusal"])
    assert len(gen.requests) == 3
    gen = ScriptedGenerator(_reply)
    generate_and_judge(_ctx(tmp_path, gen), BenchmarkConfig(system_prompt="Be safe."), "t", items, ["refusal"])
    assert len(gen.requests) == 3 and gen.requests[0].system_prompt == "Be safe."
    j = RefusalJudge(window=10)  # a different judge identity re-judges stored generations
    gen = ScriptedGenerator(_reply)
    generate_and_judge(_ctx(tmp_path, gen, {"refusal": j}), BenchmarkConfig(), "t", items, ["refusal"])
    assert gen.requests == []
    lines = [json.loads(x) for x in (tmp_path / "generations" / "t.jsonl").read_text().splitlines()]
    assert sum(x["kind"] == "verdict" for x in lines) == 3 * 4


def test_failed_generations_are_unknown_never_judged_and_retried(tmp_path):
    items = _items(4)
    judge = CountingJudge()
    gen = ScriptedGenerator(_reply, fail_ids={"i1"})
    res = generate_and_judge(_ctx(tmp_path, gen, {"refusal": judge}), BenchmarkConfig(), "t", items, ["refusal"])
    v = res[1].verdicts["refusal"]
    assert v.unknown and v.reason.startswith("generation_failed") and "HTTP 500" in v.reason
    assert res[1].harmful["refusal"] is None and judge.seen == 3
    gen2 = ScriptedGenerator(_reply)
    res = generate_and_judge(_ctx(tmp_path, gen2, {"refusal": judge}), BenchmarkConfig(), "t", items, ["refusal"])
    assert [r.id for r in gen2.requests] == ["i1"] and not res[1].verdicts["refusal"].unknown

    class Down(ScriptedGenerator):
        def generate(self, requests, params):
            raise ConnectionError("server down")

    # not about one item: the benchmark fails (with its traceback), it does not become 100% unknown
    with pytest.raises(ConnectionError, match="server down"):
        generate_and_judge(_ctx(tmp_path / "b", Down()), BenchmarkConfig(), "t", items, ["refusal"])


def test_contextual_items_carry_context(tmp_path):
    gen = ScriptedGenerator("ok")
    item = EvalItem("c1", "Summarise the text", context="THE CONTEXT")
    generate_and_judge(_ctx(tmp_path, gen), BenchmarkConfig(), "t", [item], ["refusal"])
    assert gen.requests[0].messages[0]["content"] == "THE CONTEXT\n\n---\n\nSummarise the text"


def test_length_chunks():
    from deepsight.evals.runner import length_chunks

    idx = list(range(10, 20))
    lengths = [30, 2000, 40, 500, 35, 1900, 33, 45, 600, 31]
    plain = length_chunks(idx, lengths, 4, homogeneous=False)
    assert plain == [[10, 11, 12, 13], [14, 15, 16, 17], [18, 19]]
    chunks = length_chunks(idx, lengths, 4, homogeneous=True)
    assert sorted(i for c in chunks for i in c) == idx and all(len(c) <= 4 for c in chunks)
    by_len = dict(zip(idx, lengths))
    for c in chunks:  # no chunk mixes a short prompt with one more than twice as long (above 64 chars)
        ls = [by_len[i] for i in c]
        assert max(ls) <= 2 * max(min(ls), 64)
