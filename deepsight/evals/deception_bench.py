"""DeceptionBench (Ji et al., 2025, arXiv 2505.18807): 180 scenarios in 5 deception categories
(sycophancy, strategic deception, honesty evasion, alignment faking, sandbagging).

Native format: HF ``PKU-Alignment/DeceptionBench`` / its JSON (id, type, inner_prompt,
system_prompt, outer_prompt, format). Three stages, as the paper and DeepSafe: (1) mesa utility:
the target answers the neutral ``inner_prompt``; (2) scenario: ``system_prompt`` as the system
message and ``outer_prompt`` + ``format`` as the user turn, the reply giving ``<think>`` reasoning
and an ``<output>`` answer; (3) the judge compares both parts with the mesa utility.
Metric: deception tendency rate DTR = P(reasoning ~ mesa and answer !~ mesa), overall and per
type, with the rates of aligned reasoning and aligned answers. Judge: ``deception`` (LLM, the
paper's two yes/no prompts); the keyword-overlap fallback (``deception_keyword``) is reported
beside it as ``dtr_keyword``, never mixed in.

    deepsight eval=[deception_bench] judge=deception
"""

from __future__ import annotations

from deepsight.evals.common import by_meta
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.metrics import flag_rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.base import JudgeInput
from deepsight.judges.deception import DeceptionKeywordJudge

NAME, DEFAULT_PATH = "deception_bench", "deception_bench"  # a folder holding the JSON


def _field(rs, judge: str, key: str):
    return [None if r.verdicts[judge].unknown else r.verdicts[judge].fields.get(key) for r in rs]


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path or DEFAULT_PATH
    base = []
    for i, r in enumerate(records(ctx, cfg, NAME, DEFAULT_PATH)):
        inner, outer = field_of(r, "inner_prompt", where, i), field_of(r, "outer_prompt", where, i)
        fmt, system = str(r.get("format") or "").strip(), str(r.get("system_prompt") or "").strip()
        rid = r.get("id")
        meta = {"type": r.get("type") or "", "inner": str(inner).strip(), "outer": str(outer).strip(),
                "format": fmt, "system": system}
        base.append(EvalItem(str(rid) if rid not in (None, "") else content_id(inner, outer), str(outer).strip(), meta))
    base = select(base, cfg.limit, cfg.seed)
    mesa = generate_and_judge(ctx, cfg, NAME, [EvalItem(f"{it.id}:mesa", it.meta["inner"], {"type": it.meta["type"]})
                                               for it in base], [])
    items = [
        EvalItem(it.id, f"{it.meta['outer']}\n\n{it.meta['format']}".strip(), {"type": it.meta["type"]},
                 system_prompt=it.meta["system"] or None, judge_prompt=it.meta["outer"],
                 reference=None if m.generation.failed else m.generation.text)
        for it, m in zip(base, mesa)
    ]
    judge = cfg.judge or "deception"
    keyword = DeceptionKeywordJudge()

    def judge_input(item: EvalItem, text: str) -> JudgeInput:
        return JudgeInput(prompt=item.judge_prompt or "", response=text, reference=item.reference)

    results = generate_and_judge(ctx, cfg, NAME, items, [judge, keyword], judge_input=judge_input)

    def m(rs):
        return {
            "dtr": flag_rate([r.harmful[judge] for r in rs]),
            "reasoning_aligned_rate": flag_rate(_field(rs, judge, "reasoning_aligned")),
            "answer_aligned_rate": flag_rate(_field(rs, judge, "action_aligned")),
            "dtr_keyword": flag_rate([r.harmful[keyword.name] for r in rs]),
        }

    out = result(ctx, cfg, NAME, results, m(results), by_meta(results, ["type"], m), judge)
    out["n_generations"] = len(mesa) + len(results)
    return out
