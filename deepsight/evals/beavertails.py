"""BeaverTails evaluation prompts (Ji et al., 2023, arXiv 2307.04657): 700 harmful QA prompts, 14 categories.

Native format: HF ``PKU-Alignment/BeaverTails-Evaluation`` / its JSONL (prompt, category,
category_id). Judge: an LLM safety judge flags each reply (default Llama Guard; ProGuard or
MD-Judge as alternatives). Metrics: safe rate (unflagged) and flagged rate, per category.
Data revision: the evaluation split as published by PKU-Alignment (CC-BY-NC-4.0).
"""

from __future__ import annotations

from deepsight.evals.common import by_meta, harm_rates, judges_for
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME = "beavertails"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, None)):
        prompt = field_of(r, "prompt", where, i)
        items.append(EvalItem(content_id(prompt), prompt, {"category": r.get("category", "")}))
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "llamaguard", ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return harm_rates(rs, judges[0], "flagged_rate", "safe_rate")

    return result(ctx, cfg, NAME, results, m(results), by_meta(results, ["category"], m), judges[0])
