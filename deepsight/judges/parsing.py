"""Strict verdict parsers shared by judges and multiple-choice benchmarks.

Nothing here guesses: a reply that does not state its answer in an answer position
parses to ``None`` and the caller records ``unknown``.

- ``parse_choice``: a letter only where an answer goes -- the whole reply ("B", "(B)",
  "B."), the reply's opening followed by a delimiter ("B) Paris", "C: ..."), or after
  an explicit cue ("Answer: B", "the correct answer is (B)"). "A" the article ("A good
  question...") and stray capitals inside sentences never count; two different
  explicit answers are ambiguous (``None``).
- ``parse_yes_no``: "yes"/"no" as the reply's first word, or after "Answer:"/"Verdict:".
- ``extract_json``: a JSON object reply (policy-score and self-judge verdicts), or ``None``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MARKUP = re.compile(r"[*_`#>]+")


def _clean(text: str) -> str:
    return _MARKUP.sub("", text).strip()


def parse_choice(text: str, letters: str = "ABCD") -> str | None:
    """The chosen option letter, or None when the reply does not state one unambiguously."""
    if not letters:
        raise ValueError("parse_choice: empty letter set")
    t = _clean(text)
    if not t:
        return None
    cls = "[" + re.escape(letters) + "]"
    # 1. the whole reply is the letter, optionally bracketed / followed by a period.
    m = re.fullmatch(rf"[(\[]?({cls})[)\].:]?", t)
    if m:
        return m.group(1)
    # 2. explicit cues anywhere: "answer: B", "the answer is (C)", "correct option is D."
    cue = r"(?i:\b(?:answer|choice|option)\b(?:\s+(?:is|would\s+be|should\s+be))?\s*[:=]?\s*(?:option\s+)?)"
    found = {m.group(1) for m in re.finditer(rf"{cue}[(\[]?({cls})(?=[)\].,;:!\s]|$)", t)}
    if len(found) == 1:
        return found.pop()
    if len(found) > 1:
        return None
    # 3. the reply opens with the letter and a delimiter: "B) Paris", "(B) Paris", "C: ...", "D.\n..."
    m = re.match(rf"(?:\(({cls})\)|({cls})[).:])(?=\s|$)", t)
    if m:
        return m.group(1) or m.group(2)
    # 4. the first line is the bare letter
    m = re.match(rf"({cls})\s*(?:\n|$)", t)
    if m:
        return m.group(1)
    return None


def parse_yes_no(text: str) -> str | None:
    """'yes' / 'no' when the reply opens with it (or states 'Answer: yes'); else None."""
    t = _clean(text).lower()
    m = re.match(r"(?:(?:answer|verdict|response)\s*:\s*)?(yes|no)\b", t)
    return m.group(1) if m else None


def parse_safe_unsafe(line: str) -> str | None:
    """'safe' / 'unsafe' when ``line`` opens with it; else None."""
    m = re.match(r"(unsafe|safe)\b", _clean(line).lower())
    return m.group(1) if m else None


def extract_json(text: str) -> dict[str, Any] | None:
    """The reply's JSON object: the whole reply without line breaks, else its outermost {...} span."""
    s = "".join((text or "").splitlines()).strip()
    if not s:
        return None
    candidates = [s]
    if "{" in s and "}" in s:
        candidates.append(s[s.index("{") : s.rindex("}") + 1])
    for c in candidates:
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None
