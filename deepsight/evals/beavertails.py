"""BeaverTails evaluation prompts (Ji et al., 2023, arXiv 2307.04657): 700 harmful QA prompts, 14 categories.

Native format: HF ``PKU-Alignment/BeaverTails-Evaluation`` / its JSONL (prompt, category,
category_id). Judge: an LLM safety judge flags each reply (default Llama Guard; ProGuard or
MD-Judge as alternatives). Metrics: safe rate (unflagged) and flagged rate, per category.
Data revision: the evaluation split as published by PKU-Alignment (CC-BY-NC-4.0).
"""

from __future__ import annotations

from deepsight.evals.common import run_harm_rates
from deepsight.evals.loaders import EvalItem, content_id, records, text_field
from deepsight.evals.registry import register_benchmark

NAME = "beavertails"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, None)):
        prompt = text_field(r, "prompt", where, i)
        items.append(EvalItem(content_id(prompt), prompt, {"category": r.get("category", "")}))
    return run_harm_rates(ctx, cfg, NAME, items, "llamaguard", yes="flagged_rate", no="safe_rate",
                          fields=["category"], also=("refusal",))
