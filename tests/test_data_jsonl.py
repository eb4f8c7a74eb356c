"""The shared JSON Lines parser: records in order, blank lines skipped, a bad line named by number."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsight.data.jsonl import parse_jsonl
from deepsight.errors import DataFormatError


def test_records_in_order_blank_lines_skipped():
    assert parse_jsonl(Path("x.jsonl"), '{"a": 1}\n\n  \n[2, 3]\n"s"\n') == [{"a": 1}, [2, 3], "s"]
    assert parse_jsonl(Path("x.jsonl"), "") == []


def test_bad_line_is_named_with_the_file():
    with pytest.raises(DataFormatError, match=r"bad\.jsonl: line 3 is not valid JSON"):
        parse_jsonl(Path("bad.jsonl"), '{"a": 1}\n\n{"a": \n')
