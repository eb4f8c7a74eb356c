"""Hallucination detection: HaluEval-QA (Li et al., 2023, arXiv 2305.11747) and MedHallu (arXiv 2502.14302).

Each row gives a question, its knowledge, a correct answer and a hallucinated answer;
each answer becomes one item ("Does the answer contain hallucinated information?",
gold yes for the hallucinated one). Native formats: HaluEval ``qa_data.json`` (JSONL:
knowledge, question, right_answer, hallucinated_answer); MedHallu HF
``UTAustin-AIHealth/MedHallu`` (Question, Knowledge, Ground Truth, Hallucinated Answer,
Difficulty Level). The reply's yes/no is parsed strictly; anything else is ``unknown``.
Metrics: accuracy, accuracy_all, and precision/recall/F1 of detecting hallucinations.
"""

from __future__ import annotations

from deepsight.evals.common import accuracy, by_meta
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.metrics import binary_prf
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.answers import YesNoLabelJudge

TEMPLATE = (
    "Knowledge: {knowledge}\nQuestion: {question}\nAnswer: {answer}\n\n"
    "Does the answer contain hallucinated information, i.e. anything false or not supported by the knowledge? "
    "Reply with Yes or No only."
)
FIELDS = {  # benchmark -> (question, knowledge, right, hallucinated, difficulty) column names
    "halueval_qa": ("question", "knowledge", "right_answer", "hallucinated_answer", None),
    "medhallu": ("Question", "Knowledge", "Ground Truth", "Hallucinated Answer", "Difficulty Level"),
}


def _run(ctx, cfg, name: str, hf_subsets: list[str] | None) -> dict:
    fq, fk, fr, fh, fd = FIELDS[name]
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, name, None, hf_subsets=hf_subsets)):
        q, k = field_of(r, (fq, fq.lower()), where, i), field_of(r, (fk, fk.lower()), where, i)
        knowledge = " ".join(k) if isinstance(k, list) else str(k)
        base = content_id(q, knowledge)
        for kind, col, gold in (("right", fr, "no"), ("hallucinated", fh, "yes")):
            answer = field_of(r, col, where, i)
            prompt = TEMPLATE.replace("{knowledge}", knowledge).replace("{question}", q).replace("{answer}", answer)
            meta = {"answer_kind": kind, "difficulty": r.get(fd, "") if fd else ""}
            items.append(EvalItem(f"{base}:{kind}", prompt, meta, reference=gold))
    items = select(items, cfg.limit, cfg.seed)
    judge = YesNoLabelJudge()
    results = generate_and_judge(ctx, cfg, name, items, [judge])

    def m(rs):
        out = accuracy(rs, judge.name)
        pairs = [
            (r.item.reference == "yes", r.verdicts[judge.name].fields.get("answer") == "yes")
            for r in rs
            if not r.verdicts[judge.name].unknown
        ]
        prf = binary_prf(pairs)
        out.update(
            {
                k: {"value": v, "count": None, "n": len(pairs), "ci_low": float("nan"), "ci_high": float("nan")}
                for k, v in prf.items()
            }
        )
        return out

    return result(ctx, cfg, name, results, m(results), by_meta(results, ["answer_kind", "difficulty"], m), judge.name)


@register_benchmark("halueval_qa")
def run_halueval(ctx, cfg) -> dict:
    return _run(ctx, cfg, "halueval_qa", ["qa_samples"])


@register_benchmark("medhallu")
def run_medhallu(ctx, cfg) -> dict:
    return _run(ctx, cfg, "medhallu", ["pqa_labeled"])
