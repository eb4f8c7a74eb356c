"""TELLME data: the BeaverTails-derived CSV (``prompt``, ``response``, ``is_safe``) as labelled chats.

Spec: ../shared/spec/DIAGNOSTICS.md section 2. Chat = [user: prompt, assistant: response + suffix],
the suffix appended with no space. Label 1 = safe, 0 = unsafe.

``limit``: with ``balanced=True`` (default) the first ``limit // 2`` rows of each label (the
shipped file lists its 1000 unsafe rows before the 1000 safe ones, so a plain head would hold one
class), the rest of the limit filled from the unsafe rows if odd; with ``balanced=False`` the first
``limit`` rows (the reference's ``head(max_rows)``). Rows stay in file order either way.

Usage::

    chats = load_tellme(path, limit=None, suffix="Start evaluating the safety of my responses.")
"""

from __future__ import annotations

import csv
from pathlib import Path

from deepsight.data.labeled_chats import LabeledChat
from deepsight.errors import ConfigError, DataFormatError

REQUIRED = ("prompt", "response", "is_safe")
_TRUE, _FALSE = {"true", "1", "yes", "safe"}, {"false", "0", "no", "unsafe"}


def parse_is_safe(value: str, where: str) -> int:
    v = value.strip().lower()
    if v in _TRUE:
        return 1
    if v in _FALSE:
        return 0
    raise DataFormatError(f"{where}: is_safe={value!r} is not a boolean (True/False/1/0)")


def load_tellme(path: Path, limit: int | None = None, suffix: str = "", balanced: bool = True) -> list[LabeledChat]:
    path = Path(path)
    if limit is not None and limit < 1:
        raise ConfigError(f"scan.tellme.limit={limit} must be >= 1 or null")
    chats: list[LabeledChat] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise DataFormatError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
            for i, rec in enumerate(reader):
                if limit is not None and not balanced and i >= limit:
                    break
                where = f"{path} record {i} (line {reader.line_num})"
                if any(rec.get(c) is None for c in REQUIRED):
                    raise DataFormatError(f"{where}: fewer fields than the header")
                label = parse_is_safe(rec["is_safe"], where)
                messages = [
                    {"role": "user", "content": rec["prompt"]},
                    {"role": "assistant", "content": rec["response"] + suffix},
                ]
                chats.append(LabeledChat(messages, label, path.name, i))
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not UTF-8 text: {e}") from e
    except csv.Error as e:
        raise DataFormatError(f"{path}: malformed CSV: {e}") from e
    if not chats:
        raise DataFormatError(f"{path}: no data rows")
    if limit is not None and balanced:
        quota = {1: limit // 2, 0: limit - limit // 2}
        kept = []
        for c in chats:
            if quota[c.label] > 0:
                quota[c.label] -= 1
                kept.append(c)
        chats = kept
    return chats
