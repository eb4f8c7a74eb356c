"""SALAD-Bench base set (Li et al., 2024, arXiv 2402.05044): harmful questions in a 3-level taxonomy.

Native formats: ``base_set.json`` / HF ``OpenSafetyLab/Salad-Data`` (qid, question,
1-category, 2-category, 3-category, source) and single-column CSVs of questions
(``questions``; the file stem is the category, e.g. SPIN's salad_fairness.csv).
Judge: MD-Judge (default; safe/unsafe + O1..O6 category). Metrics: safety rate overall
and per category level.
"""

from __future__ import annotations

from deepsight.evals.common import run_harm_rates
from deepsight.evals.loaders import EvalItem, content_id, records, text_field
from deepsight.evals.registry import register_benchmark

NAME = "salad_bench"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, None, hf_subsets=["base_set"])):
        q = text_field(r, ("question", "questions", "prompt"), where, i)
        meta = {
            "category": r.get("1-category") or r.get("_file", ""),
            "category_2": r.get("2-category", ""),
            "category_3": r.get("3-category", ""),
        }
        rid = r.get("qid")
        items.append(EvalItem(str(rid) if rid not in (None, "") else content_id(q), q, meta))
    return run_harm_rates(ctx, cfg, NAME, items, "md_judge", yes="unsafe_rate", no="safety_rate",
                          fields=["category", "category_2", "category_3"], also=("refusal",))
