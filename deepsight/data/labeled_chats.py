"""Labelled chats: the common output of the diagnostic data loaders.

A diagnostic that reads activations needs, per example, the message list to render with
the model's chat template, an integer class label, and where the example came from (file
and record number) so a bad row or a surprising result can be traced back to the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsight.data.jsonl import parse_jsonl, read_text
from deepsight.errors import DataFormatError


@dataclass
class LabeledChat:
    messages: list[dict[str, str]]  # [{"role": "user"|"assistant"|"system", "content": str}, ...]
    label: int
    source: str  # file name the example came from
    row: int  # 0-based record number inside that file


def read_json_records(path: Path) -> list[Any]:
    """Records of a ``.json`` list, a ``{"data": [...]}`` object, or a ``.jsonl`` file."""
    try:
        if path.suffix == ".jsonl":
            return parse_jsonl(path, read_text(path))  # check_messages names a bad record
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}: not valid JSON: {e}") from e
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not UTF-8 text: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return data["data"]
    if isinstance(data, list):
        return data
    raise DataFormatError(f"{path}: expected a JSON list of records or an object with a 'data' list")


def check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """Validate a chat message list; ``where`` names the file and record for the error."""
    if not isinstance(messages, list) or not messages:
        raise DataFormatError(f"{where}: 'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataFormatError(f"{where}: messages[{i}] must be an object with string 'role' and 'content'")
        out.append({"role": m["role"], "content": m["content"]})
    return out
