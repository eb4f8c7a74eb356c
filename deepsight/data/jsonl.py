"""JSON Lines parsing shared by the data loaders: blank lines skipped, a bad line named by number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepsight.errors import DataFormatError


def parse_jsonl(path: Path, text: str) -> list[Any]:
    """The records of ``text`` (the content of ``path``), one JSON value per non-blank line."""
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{path}: line {lineno} is not valid JSON: {e}") from e
    return records
