"""SALAD-Bench base set (Li et al., 2024, arXiv 2402.05044): harmful questions in a 3-level taxonomy.

Native formats: ``base_set.json`` / HF ``OpenSafetyLab/Salad-Data`` (qid, question,
1-category, 2-category, 3-category, source) and single-column CSVs of questions
(``questions``; the file stem is the category, e.g. SPIN's salad_fairness.csv).
Judge: MD-Judge (default; safe/unsafe + O1..O6 category). Metrics: safety rate overall
and per category level.
"""

from __future__ import annotations

from deepsight.evals.common import by_meta, harm_rates, judges_for
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME = "salad_bench"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, None, hf_subsets=["base_set"])):
        q = field_of(r, ("question", "questions", "prompt"), where, i)
        meta = {
            "category": r.get("1-category") or r.get("_file", ""),
            "category_2": r.get("2-category", ""),
            "category_3": r.get("3-category", ""),
        }
        rid = r.get("qid")
        items.append(EvalItem(str(rid) if rid not in (None, "") else content_id(q), q, meta))
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "md_judge", ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return harm_rates(rs, judges[0], "unsafe_rate", "safety_rate")

    bd = by_meta(results, ["category", "category_2", "category_3"], m)
    return result(ctx, cfg, NAME, results, m(results), bd, judges[0])
