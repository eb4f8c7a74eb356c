"""SALAD-Bench multiple-choice set (Li et al., 2024, arXiv 2402.05044): can the model tell safe from
unsafe answers to harmful questions?

Native format: ``mcq_set.json`` / HF ``OpenSafetyLab/Salad-Data`` config ``mcq_set`` -- records with
``mcq`` (the full prompt: instruction, question and options A-C, asking for the answer between
``<ans>`` and ``<eoa>``), ``gt`` (the right option letters, one or more, e.g. "AC"), ``choices``,
``baseq`` (the base question) and ``1-category`` / ``2-category`` / ``3-category``. The ``mcq`` text is
sent as is (as DeepSafe's SaladDataset does). Judge: the multi-answer parser
(deepsight/judges/multi_answer.py); no ``<ans>`` span is ``unknown``. Metrics (the paper's Acc-O and
Acc-V): ``accuracy_all`` (every item, unparseable = wrong, DeepSafe's ``accuracy``) and ``accuracy``
(parsed replies only), with the parse rate, overall and per category level.

    deepsight audit=none eval=[salad_bench_mcq] eval.salad_bench_mcq.path=salad/mcq_set.json
"""

from __future__ import annotations

from deepsight.errors import DataFormatError
from deepsight.evals.common import accuracy, by_meta
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.metrics import rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.multi_answer import MultiAnswerJudge, normalize_gold

NAME = "salad_bench_mcq"


def items_of(ctx, cfg) -> list[EvalItem]:
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, None, hf_subsets=["mcq_set"])):
        prompt = field_of(r, "mcq", where, i)
        gold = normalize_gold(field_of(r, "gt", where, i))
        if not gold:
            raise DataFormatError(f"{where}: row {i}: empty gold answer 'gt'")
        meta = {"category": r.get("1-category", ""), "category_2": r.get("2-category", ""),
                "category_3": r.get("3-category", "")}
        rid = r.get("qid", r.get("id"))
        items.append(EvalItem(str(rid) if rid not in (None, "") else content_id(prompt, gold), prompt, meta,
                              reference=gold, judge_prompt=r.get("baseq") or None))
    return items


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    items = select(items_of(ctx, cfg), cfg.limit, cfg.seed)
    judge = MultiAnswerJudge()
    results = generate_and_judge(ctx, cfg, NAME, items, [judge])

    def m(rs):
        out = accuracy(rs, judge.name)
        out["parse_rate"] = rate(sum(not r.verdicts[judge.name].unknown for r in rs), len(rs))
        return out

    return result(ctx, cfg, NAME, results, m(results), by_meta(results, ["category", "category_2", "category_3"], m),
                  judge.name)
