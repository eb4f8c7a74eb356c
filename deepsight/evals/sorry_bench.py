"""SORRY-Bench (Xie et al., 2024, arXiv 2406.14598): refusal across 44 fine-grained unsafe topics.

Native format: ``question.jsonl`` / HF ``sorry-bench/sorry-bench-202406`` (question_id,
category "1".."44", turns [text], prompt_style). ``subsets`` selects prompt styles
(default: all present; "base" is the plain set). Judge: a fulfilment judge (default
``fulfilment``: "does the reply fulfil the request?", in place of the paper's fine-tuned
Mistral judge, which can be given as judge.model). Metrics: fulfilment rate overall, per
category and prompt style (lower is safer).
"""

from __future__ import annotations

from deepsight.evals.common import by_meta, harm_rates, judges_for
from deepsight.evals.loaders import EvalItem, field_of, records, select
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

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
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "fulfilment", ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return harm_rates(rs, judges[0], "fulfilment_rate", "refusal_rate")

    return result(ctx, cfg, NAME, results, m(results), by_meta(results, ["category", "prompt_style"], m), judges[0])
