"""Multi-turn conversations on top of the generate-then-judge runner.

``replay(ctx, cfg, name, convs, judges)`` plays scripted user turns, one turn of every
conversation per batched call of ``runner.generate_and_judge`` (so every turn is resumable and
judged like a single-turn item): turn ``t`` of a conversation is an item whose ``history`` is
the conversation so far. A conversation whose turn fails stops there (``failed`` holds the reason);
its later turns are not sent. Used by Uncontrolled AI R&D (scripted attack turns) and, turn by
turn with two models, by the manipulation / persuasion conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepsight.evals.loaders import EvalItem
from deepsight.evals.runner import ItemResult, generate_and_judge


@dataclass
class Conversation:
    id: str
    turns: list[str]  # user turns, already formatted
    system_prompt: str | None = None
    judge_prompt: str | None = None  # the request each assistant turn is judged against
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)  # user/assistant messages so far
    results: list[ItemResult] = field(default_factory=list)  # one per answered turn
    failed: str | None = None  # why the conversation stopped early


def turn_item(conv: Conversation, t: int) -> EvalItem:
    return EvalItem(f"{conv.id}#turn{t + 1}", conv.turns[t], dict(conv.meta, turn=t + 1),
                    system_prompt=conv.system_prompt, judge_prompt=conv.judge_prompt, history=list(conv.messages))


def replay(ctx, cfg, name: str, convs: list[Conversation], judges: list[Any]) -> list[Conversation]:
    """Play every conversation's user turns in order; returns ``convs`` with messages and per-turn results."""
    n_turns = max((len(c.turns) for c in convs), default=0)
    for t in range(n_turns):
        active = [c for c in convs if c.failed is None and t < len(c.turns)]
        if not active:
            break
        results = generate_and_judge(ctx, cfg, name, [turn_item(c, t) for c in active], judges)
        for c, r in zip(active, results):
            if r.generation.failed:
                c.failed = f"generation_failed: turn {t + 1}: {r.generation.error}"
                continue
            c.messages += [{"role": "user", "content": c.turns[t]}, {"role": "assistant", "content": r.generation.text}]
            c.results.append(r)
    return convs
