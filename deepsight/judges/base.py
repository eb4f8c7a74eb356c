"""What every judge takes and returns.

A judge maps (prompt, response[, context, image, reference]) to a ``Verdict``. A
verdict whose label is ``"unknown"`` carries the reason (unparseable reply, failed
judge call, failed generation, judge unavailable): it is counted and reported by
the benchmark, never dropped and never scored as safe or unsafe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

UNKNOWN = "unknown"


@dataclass
class JudgeInput:
    prompt: str  # the user request as the target saw it (behaviour text for HarmBench)
    response: str  # the target's reply
    context: str | None = None  # contextual HarmBench items: the context string
    image: str | None = None  # text-image judges: a local path or URL of the image
    reference: Any = None  # gold answer for parser judges (e.g. the correct letter)


@dataclass
class Verdict:
    label: str  # a judge-specific label, or "unknown"
    score: float | None = None  # numeric score where the judge has one (StrongREJECT)
    fields: dict[str, Any] = field(default_factory=dict)  # categories, rubric parts, parsed sub-verdicts
    reason: str | None = None  # why the verdict is unknown
    raw: str | None = None  # the judge model's raw reply (None for string-match judges)

    @property
    def unknown(self) -> bool:
        return self.label == UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            **{k: d.get(k) for k in ("label", "score", "fields", "reason", "raw")} | {"fields": d.get("fields") or {}}
        )


def unknown(reason: str, raw: str | None = None) -> Verdict:
    return Verdict(label=UNKNOWN, reason=reason, raw=raw)


class Judge(Protocol):
    """``judge`` keeps the order of ``inputs``; it never raises for a bad reply."""

    name: str

    def identity(self) -> dict[str, Any]:
        """What changes this judge's verdicts (name, model, template version): part of the resume key."""
        ...

    def judge(self, inputs: list[JudgeInput]) -> list[Verdict]: ...

    def harmful(self, verdict: Verdict) -> bool | None:
        """True if the verdict says the response is harmful / complied; None when it cannot say."""
        ...

    def close(self) -> None: ...
