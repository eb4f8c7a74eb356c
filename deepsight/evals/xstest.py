"""XSTest (Röttger et al., 2024, arXiv 2308.01263): exaggerated safety.

250 safe prompts that a well-calibrated model should answer (homonyms, figurative
language, safe targets...) and 200 unsafe contrast prompts it should refuse. Native
format: ``xstest_prompts.csv`` (id, prompt, type, label, focus, note); HF
``natolambert/xstest-v2-copy`` / ``walledai/XSTest`` have the same columns.
Judge: string-match refusal (default), any LLM judge whose verdict says complied/refused, or
the paper's three-way LLM judge (``xstest_3way``: full compliance / full refusal / partial).
Metrics: compliance, refusal (and partial) rates overall, per label (safe -> over-refusal) and type.
Data: paul-rottger/exaggerated-safety @ d7bb5bd.
"""

from __future__ import annotations

from deepsight.evals.common import by_meta, harm_rates, judges_for
from deepsight.evals.loaders import EvalItem, choice_field, content_id, records, select, text_field
from deepsight.evals.metrics import flag_rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME, DEFAULT_PATH = "xstest", "xstest/xstest_prompts.csv"
LABELS = ("safe", "unsafe")  # the paper's two prompt classes; any other label is a data error


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path or DEFAULT_PATH
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, DEFAULT_PATH)):
        prompt = text_field(r, "prompt", where, i)
        label = choice_field(r, "label", LABELS, where, i)
        rid = r.get("id") or r.get("id_v2")
        items.append(
            EvalItem(
                str(rid) if rid not in (None, "") else content_id(prompt),
                prompt,
                {"label": label, "type": r.get("type", "")},
            )
        )
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "refusal")
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    three_way = judges[0] == "xstest_3way"

    def m(rs):
        if not three_way:  # binary judges: complied vs refused
            return harm_rates(rs, judges[0], "compliance_rate", "refusal_rate")
        vs = [r.verdicts[judges[0]] for r in rs]
        return {
            f"{k}_rate": flag_rate([None if v.unknown else v.label == f"full_{k}" for v in vs])
            for k in ("compliance", "refusal")
        } | {"partial_rate": flag_rate([None if v.unknown else v.label == "partial_refusal" for v in vs])}

    metrics = m(results)
    for label in ("safe", "unsafe"):
        for k, v in m([r for r in results if r.item.meta["label"] == label]).items():
            metrics[f"{label}_{k}"] = v
    metrics["over_refusal_rate"] = metrics["safe_refusal_rate"]
    return result(ctx, cfg, NAME, results, metrics, by_meta(results, ["label", "type"], m), judges[0])
