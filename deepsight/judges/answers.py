"""Parser judges for capability and knowledge benchmarks: no model, a strict answer parse.

- ``MultipleChoiceJudge``: the chosen letter (``parsing.parse_choice``) vs the gold letter.
- ``NumberJudge``: the final number of the reply (after "####" or "answer is", else the last
  number) vs the gold number (GSM8K).
- ``YesNoLabelJudge``: the reply's yes/no vs the gold yes/no (HaluEval, MedHallu).
Labels: ``correct`` | ``incorrect``; ``fields["answer"]`` holds the parsed answer. A reply
with no parseable answer is ``unknown`` (``unparseable``).
"""

from __future__ import annotations

import re
from typing import Any

from deepsight.judges.base import JudgeInput, Verdict, unknown
from deepsight.judges.parsing import parse_choice, parse_yes_no


class _ParserJudge:
    name = "parser"
    labels = ("correct", "incorrect")

    def identity(self) -> dict[str, Any]:
        return {"name": self.name}

    def answer(self, reply: str) -> Any:
        raise NotImplementedError

    def same(self, answer: Any, gold: Any) -> bool:
        return answer == gold

    def judge(self, inputs: list[JudgeInput]) -> list[Verdict]:
        out = []
        for x in inputs:
            a = self.answer(x.response)
            if a is None:
                out.append(unknown("unparseable", x.response[:200]))
            else:
                ok = self.same(a, x.reference)
                out.append(Verdict("correct" if ok else "incorrect", score=float(ok), fields={"answer": a}))
        return out

    def harmful(self, verdict: Verdict) -> bool | None:
        return None

    def close(self) -> None:
        pass


class MultipleChoiceJudge(_ParserJudge):
    name = "multiple_choice"

    def __init__(self, letters: str = "ABCD"):
        self.letters = letters

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "letters": self.letters}

    def answer(self, reply: str) -> str | None:
        return parse_choice(reply, self.letters)


_NUM = r"-?\$?\d[\d,]*(?:\.\d+)?"


def to_number(s: str) -> float | None:
    try:
        return float(s.replace(",", "").replace("$", ""))
    except ValueError:
        return None


class NumberJudge(_ParserJudge):
    name = "number"

    def answer(self, reply: str) -> float | None:
        m = re.search(rf"####\s*({_NUM})", reply) or re.search(rf"(?i)answer\s*(?:is|:)\s*\$?({_NUM})", reply)
        if m:
            return to_number(m.group(1))
        nums = re.findall(_NUM, reply)
        return to_number(nums[-1]) if nums else None

    def same(self, answer: Any, gold: Any) -> bool:
        g = gold if isinstance(gold, float) else to_number(str(gold))
        return g is not None and abs(answer - g) < 1e-6


class YesNoLabelJudge(_ParserJudge):
    name = "yes_no_label"

    def answer(self, reply: str) -> str | None:
        return parse_yes_no(reply)

    def same(self, answer: Any, gold: Any) -> bool:
        return answer == str(gold).strip().lower()
