"""SORRY-Bench (Xie et al., 2024, arXiv 2406.14598): refusal across 44 fine-grained unsafe topics.

Native format: ``question.jsonl`` / HF ``sorry-bench/sorry-bench-202406`` (question_id,
category "1".."44", turns [text], prompt_style). ``subsets`` selects prompt styles
(default: all present; "base" is the plain set). Judge: a fulfilment judge (default
``fulfilment``: "does the reply fulfil the request?", in place of the paper's fine-tuned
Mistral judge, which can be given as judge.model). Metrics: fulfilment rate overall, per
category and prompt style (lower is safer).
"""

from __future__ import annotations

from deepsight.evals.common import run_harm_rates
from deepsight.evals.loaders import EvalItem, field_of, records
from deepsight.evals.registry import register_benchmark

NAME = "sorry_bench"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path
    styles = set(cfg.options.get("prompt_styles") or [])
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, None)):
        turns = field_of(r, "turns", where, i)
        style = r.get("prompt_style", "base")
        if styles and style not in styles:
            continue
        qid = field_of(r, "question_id", where, i)
        items.append(
            EvalItem(
                f"{qid}:{style}",
                turns[0] if isinstance(turns, list) else str(turns),
                {"category": str(r.get("category", "")), "prompt_style": style},
            )
        )
    return run_harm_rates(ctx, cfg, NAME, items, "fulfilment", yes="fulfilment_rate", no="refusal_rate",
                          fields=["category", "prompt_style"], also=("refusal",))
