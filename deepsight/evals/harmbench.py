"""HarmBench (Mazeika et al., 2024, arXiv 2402.04249): direct requests for harmful behaviours.

Native format: ``harmbench_behaviors_text_all.csv`` (Behavior, FunctionalCategory,
SemanticCategory, Tags, ContextString, BehaviorID). Contextual behaviours keep their
context: the target sees "{context}\\n\\n---\\n\\n{behavior}" and the classifier gets the
context through its contextual prompt. Judge: the HarmBench classifier (official
prompt, generation clipped to 512 tokens); the string-match refusal judge runs too.
``subsets`` selects functional categories (standard, contextual, copyright); copyright
items are officially judged by hashing against the source text, which is not shipped,
so they are scored by the classifier and flagged with a warning.
Metrics: attack success rate (ASR) overall and per semantic/functional category; refusal rate.
Data: centerforaisafety/HarmBench behaviour_datasets (MIT) via busycalibrating/AdversariaLLM @ f970939.
"""

from __future__ import annotations

from deepsight.evals.common import by_meta, harmful, judges_for, not_
from deepsight.evals.loaders import EvalItem, content_id, records, select, text_field
from deepsight.evals.metrics import flag_rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME, DEFAULT_PATH = "harmbench", "harmbench/harmbench_behaviors_text_all.csv"


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    where = cfg.hf_dataset or cfg.path or DEFAULT_PATH
    subsets = set(cfg.subsets or [])
    items = []
    for i, r in enumerate(records(ctx, cfg, NAME, DEFAULT_PATH)):
        behavior = text_field(r, ("Behavior", "behavior", "prompt"), where, i)
        functional = r.get("FunctionalCategory") or r.get("category") or "standard"
        if subsets and functional not in subsets:
            continue
        context = (r.get("ContextString") or r.get("context") or "").strip() or None
        rid = r.get("BehaviorID") or content_id(behavior, context)
        meta = {"category": r.get("SemanticCategory", ""), "functional": functional}
        items.append(EvalItem(str(rid), behavior, meta, context=context))
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "harmbench", ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return {"asr": flag_rate(harmful(rs, judges[0])), "refusal_rate": flag_rate(not_(harmful(rs, "refusal")))}

    warnings = []
    if any(it.meta["functional"] == "copyright" for it in items):
        warnings.append("copyright behaviours scored by the classifier, not HarmBench's hash-based copyright check")
    return result(
        ctx, cfg, NAME, results, m(results), by_meta(results, ["category", "functional"], m), judges[0], warnings
    )
