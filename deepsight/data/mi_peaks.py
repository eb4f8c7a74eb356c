"""MI-Peaks data: problems with reference solutions from a JSONL file.

Each line is a JSON object. The problem text is ``problem`` (MATH/AIME style)
or else ``question`` (GSM8K); the solution is ``solution`` or else ``answer``.
The reference takes the first ``n`` rows in file order.

Usage::

    items = load_mi_peaks_items(path, n=10)   # [MIPeaksItem(problem, solution, row)]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from deepsight.data.jsonl import read_text
from deepsight.errors import DataFormatError

PROBLEM_KEYS = ("problem", "question")
SOLUTION_KEYS = ("solution", "answer")


@dataclass(frozen=True)
class MIPeaksItem:
    problem: str
    solution: str
    row: int  # 0-based line number among the non-empty lines


def _pick(rec: dict, keys: tuple[str, ...], path: Path, row: int) -> str:
    for k in keys:
        v = rec.get(k)
        if isinstance(v, str) and v.strip():
            return v
    raise DataFormatError(f"{path}: row {row} has none of the fields {list(keys)} as a non-empty string")


def load_mi_peaks_items(path: str | Path, n: int | None = None) -> list[MIPeaksItem]:
    """The first ``n`` (all when None) problems of a JSONL file."""
    path = Path(path)
    items: list[MIPeaksItem] = []
    row = 0
    for lineno, line in enumerate(read_text(path).split("\n"), 1):  # "\n" only: U+2028 is valid inside JSON
        if not line.strip():
            continue
        if n is not None and len(items) >= n:
            break
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}: row {row} (line {lineno}) is not valid JSON ({e})") from None
        if not isinstance(rec, dict):
            raise DataFormatError(f"{path}: row {row} (line {lineno}) is not a JSON object")
        items.append(MIPeaksItem(_pick(rec, PROBLEM_KEYS, path, row), _pick(rec, SOLUTION_KEYS, path, row), row))
        row += 1
    if not items:
        raise DataFormatError(f"{path}: no rows")
    return items
