"""AdvBench harmful behaviours (Zou et al., 2023, arXiv 2307.15043): 520 harmful instructions.

Native formats: ``harmful_behaviors.csv`` (goal, target) or HarmBench's copy
``advbench_behaviors.csv`` (Behavior, Category, Tags, ContextString, BehaviorID).
Judge: string-match refusal (default) or any LLM safety judge. Metrics: refusal rate and
ASR (harmful / complied rate by the judge).
Data: busycalibrating/AdversariaLLM @ f970939 (extra_behavior_datasets).
"""

from __future__ import annotations

from deepsight.evals.common import by_meta, harmful, judges_for, not_
from deepsight.evals.loaders import EvalItem, content_id, records, select, text_field
from deepsight.evals.metrics import flag_rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME, DEFAULT_PATH = "advbench", "advbench/advbench_behaviors.csv"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path or DEFAULT_PATH
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, DEFAULT_PATH)):
        prompt = text_field(r, ("Behavior", "goal", "prompt"), where, i)
        items.append(
            EvalItem(str(r.get("BehaviorID") or content_id(prompt)), prompt, {"category": r.get("Category") or ""})
        )
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "refusal", ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return {"asr": flag_rate(harmful(rs, judges[0])), "refusal_rate": flag_rate(not_(harmful(rs, "refusal")))}

    return result(ctx, cfg, NAME, results, m(results), by_meta(results, ["category"], m), judges[0])
