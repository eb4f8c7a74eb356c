"""Small helpers the benchmark modules share: flags per judge, accuracy, MC prompts, per-field breakdowns."""

from __future__ import annotations

from typing import Any

from deepsight.evals.loaders import EvalItem, select
from deepsight.evals.metrics import breakdown, flag_rate, rate
from deepsight.evals.runner import ItemResult, generate_and_judge, result

LETTERS = "ABCDEFGHIJ"


def harmful(results: list[ItemResult], judge: str) -> list[bool | None]:
    """Per item: the judge says harmful / complied (True), not (False), unknown (None)."""
    return [r.harmful[judge] for r in results]


def not_(flags: list[bool | None]) -> list[bool | None]:
    return [None if f is None else not f for f in flags]


def harm_rates(results: list[ItemResult], judge: str, yes: str, no: str) -> dict[str, dict]:
    """``{yes: rate of harmful, no: rate of not harmful}`` over the items with a known verdict."""
    flags = harmful(results, judge)
    return {yes: flag_rate(flags), no: flag_rate(not_(flags))}


def accuracy(results: list[ItemResult], judge: str) -> dict[str, dict]:
    """accuracy over parsed answers, and accuracy_all counting unparseable replies as wrong."""
    vs = [r.verdicts[judge] for r in results]
    correct = sum(v.label == "correct" for v in vs)
    return {
        "accuracy": flag_rate([None if v.unknown else v.label == "correct" for v in vs]),
        "accuracy_all": rate(correct, len(vs)),
    }


def _key(value: Any) -> str:
    return "(none)" if value in (None, "") else str(value)


def by_meta(results: list[ItemResult], fields: list[str], metrics) -> dict[str, dict]:
    """Breakdowns of ``metrics(results)`` by each meta field that the items have."""
    out = {}
    for f in fields:
        if any(f in r.item.meta and r.item.meta[f] not in (None, "") for r in results):
            out[f] = breakdown(results, lambda r, f=f: _key(r.item.meta.get(f)), metrics)
    return out


def judges_for(cfg: Any, default: str, also: tuple[str, ...] = ()) -> list[str]:
    """The primary judge (``cfg.judge`` or the default) followed by the secondary ones, without repeats."""
    primary = cfg.judge or default
    return [primary] + [j for j in also if j != primary]


def run_harm_rates(ctx: Any, cfg: Any, name: str, items: list[EvalItem], default_judge: str, yes: str, no: str,
                   fields: list[str], also: tuple[str, ...] = ()) -> dict[str, Any]:
    """The shared run of a harmful-behaviour benchmark: seeded sample, generate, judge, then the primary judge's
    two complementary rates (``yes`` = harmful / complied, ``no`` = the rest) overall and per meta field."""
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, default_judge, also)
    results = generate_and_judge(ctx, cfg, name, items, judges)

    def m(rs):
        return harm_rates(rs, judges[0], yes, no)

    return result(ctx, cfg, name, results, m(results), by_meta(results, fields, m), judges[0])


def choices_prompt(question: str, choices: list[str], instruction: str | None = None) -> str:
    if len(choices) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} choices, got {len(choices)}")
    lines = [question.strip(), ""] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    lines += ["", instruction or "Answer with the letter of the correct option only."]
    return "\n".join(lines)
