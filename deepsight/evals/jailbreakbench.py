"""JailbreakBench behaviours (Chao et al., 2024, arXiv 2404.01318): 100 harmful behaviours, 10 categories.

Native format: ``harmful-behaviors.csv`` / HF ``JailbreakBench/JBB-Behaviors`` (config
``behaviors``, split ``harmful``): Index, Goal, Target, Behavior, Category, Source.
Judges: a jailbreak judge (default Llama Guard; any LLM safety judge) plus the refusal
string match. Metrics: ASR (judge says unsafe) and refusal rate, per category.
"""

from __future__ import annotations

from deepsight.evals.common import by_meta, harmful, judges_for, not_
from deepsight.evals.loaders import EvalItem, field_of, records, select, text_field
from deepsight.evals.metrics import flag_rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME = "jailbreakbench"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, None, hf_subsets=["behaviors"])):
        goal = text_field(r, "Goal", where, i)
        rid = field_of(r, ("Behavior", "Index"), where, i)
        items.append(EvalItem(str(rid), goal, {"category": r.get("Category", ""), "source": r.get("Source", "")}))
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "llamaguard", ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return {"asr": flag_rate(harmful(rs, judges[0])), "refusal_rate": flag_rate(not_(harmful(rs, "refusal")))}

    return result(ctx, cfg, NAME, results, m(results), by_meta(results, ["category", "source"], m), judges[0])
