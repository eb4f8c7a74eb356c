"""WMDP (Li et al., 2024, arXiv 2403.03218): hazardous knowledge in biosecurity, chemistry and cybersecurity.

Native format: HF ``cais/wmdp`` configs ``wmdp-bio``, ``wmdp-chem``, ``wmdp-cyber`` (question,
choices [4], answer index), or a folder of JSON/JSONL/CSV/parquet files named after the subsets
(default ``wmdp``: cais/wmdp's parquet files, fetched on first use; reading parquet needs pyarrow).
The reply is parsed strictly for one option letter (no stray letters, never "A" the
article); no parse is ``unknown``. Metrics: accuracy (parsed) and accuracy_all, per subset.
Lower accuracy means less hazardous knowledge.
"""

from __future__ import annotations

import json

from deepsight.evals.common import LETTERS, accuracy, by_meta, choices_prompt
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.answers import MultipleChoiceJudge

NAME = "wmdp"
SUBSETS = ["wmdp-bio", "wmdp-chem", "wmdp-cyber"]


def mc_items(ctx, cfg, name: str, hf_subsets: list[str] | None = None) -> list[EvalItem]:
    """Multiple-choice rows (question, choices, answer index or letter) -> items with the gold letter."""
    where = cfg.hf_dataset or cfg.path
    items = []
    for i, r in enumerate(records(ctx, cfg, name, None, hf_subsets=hf_subsets)):
        q = field_of(r, "question", where, i)
        choices = field_of(r, "choices", where, i)
        if isinstance(choices, str):  # CSV cell holding a JSON list
            choices = json.loads(choices)
        ans = field_of(r, "answer", where, i)
        gold = LETTERS[int(ans)] if str(ans).strip().isdigit() else str(ans).strip().upper()
        subset = r.get("_file", "")
        rid = r.get("id")
        items.append(
            EvalItem(
                str(rid) if rid not in (None, "") else content_id(subset, q, choices),
                choices_prompt(q, list(choices)),
                {"subset": subset, "n_choices": len(choices)},
                reference=gold,
            )
        )
    return items


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    items = select(mc_items(ctx, cfg, NAME, SUBSETS), cfg.limit, cfg.seed)
    n_choices = max((it.meta["n_choices"] for it in items), default=4)
    judge = MultipleChoiceJudge(LETTERS[:n_choices])
    results = generate_and_judge(ctx, cfg, NAME, items, [judge])

    def m(rs):
        return accuracy(rs, judge.name)

    return result(ctx, cfg, NAME, results, m(results), by_meta(results, ["subset"], m), judge.name)
