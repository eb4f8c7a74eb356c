"""GSM8K (Cobbe et al., 2021, arXiv 2110.14168): grade-school maths, a capability control.

Native format: ``test.jsonl`` (question, answer ending "#### <number>"). No LLM judge: the
reply's final number (after "####", "answer is", else the last number) is compared with the
gold number; a reply without a number is ``unknown``. Metrics: accuracy over parsed replies
and accuracy_all (unparseable counted wrong). Data: openai/grade-school-math @ 3101c7d.
"""

from __future__ import annotations

from deepsight.evals.common import accuracy
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.answers import NumberJudge

NAME, DEFAULT_PATH = "gsm8k", "gsm8k/test.jsonl"
INSTRUCTION = "Solve the problem step by step, then write the final answer as a number after '####'."


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path or DEFAULT_PATH
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, DEFAULT_PATH, hf_subsets=["main"])):
        q, a = field_of(r, "question", where, i), str(field_of(r, "answer", where, i))
        gold = a.split("####")[-1].strip()
        rid = r.get("idx")
        items.append(
            EvalItem(str(rid) if rid not in (None, "") else content_id(q), f"{q}\n\n{INSTRUCTION}", reference=gold)
        )
    items = select(items, cfg.limit, cfg.seed)
    judge = NumberJudge()
    results = generate_and_judge(ctx, cfg, NAME, items, [judge])
    return result(ctx, cfg, NAME, results, accuracy(results, judge.name), {}, judge.name)
