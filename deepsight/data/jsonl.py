"""Text and JSON Lines reading shared by the data loaders: every error names the file and line.

- ``read_text(path)``: the file as UTF-8 text (a BOM dropped); a byte that is not UTF-8 is a
  ``DataFormatError`` naming the file, line and byte offset;
- ``parse_jsonl(path, text)``: one JSON value per line, lines split on "\\n" only (U+2028,
  U+0085 and other Unicode line separators are valid inside JSON strings), blank lines
  skipped; a line that is not JSON, or (``objects=True``, as for benchmark rows) not a JSON object,
  is an error naming the file and line.

    rows = parse_jsonl(path, read_text(path), objects=True)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepsight.errors import DataFormatError


def not_utf8(path: Path | str, data: bytes, e: UnicodeDecodeError) -> DataFormatError:
    """The error for undecodable ``data`` (the bytes of ``path``): file, line and byte offset."""
    line = data[: e.start].count(b"\n") + 1
    return DataFormatError(f"{path}: line {line} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); "
                           "save the file as UTF-8")


def read_text(path: Path | str, encoding: str = "utf-8-sig") -> str:
    """The text of ``path`` decoded as UTF-8 (a BOM dropped); a clear error naming file and line if it is not."""
    data = Path(path).read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise not_utf8(path, data, e) from None


def parse_jsonl(path: Path, text: str, objects: bool = False) -> list[Any]:
    """The records of ``text`` (the content of ``path``), one JSON value (an object if ``objects``) per line."""
    records = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}: line {lineno} is not valid JSON: {e}") from None
        if objects and not isinstance(rec, dict):
            raise DataFormatError(f"{path}: line {lineno} is a JSON {type(rec).__name__}, expected an object")
        records.append(rec)
    return records
