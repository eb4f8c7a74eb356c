"""Parquet rows (deepsight/data/parquet.py) through the loaders: values, folders of subsets, bad files."""

from __future__ import annotations

import sys

import pytest

from deepsight.errors import ConfigError, DataFormatError
from deepsight.evals.loaders import read_file, read_path


def test_parquet_rows_equal_the_written_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"question": "q1", "choices": ["a", "b", "c", "d"], "answer": 2},
            {"question": "q2 ünï", "choices": ["w", "x", "y", "z"], "answer": 0}]
    (tmp_path / "wmdp").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "wmdp" / "wmdp-bio.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:1]), tmp_path / "wmdp" / "wmdp-chem.parquet")
    assert read_file(tmp_path / "wmdp" / "wmdp-bio.parquet") == rows
    got = read_path(tmp_path / "wmdp")
    assert [(r["_file"], r["question"]) for r in got] == [("wmdp-bio", "q1"), ("wmdp-bio", "q2 ünï"),
                                                          ("wmdp-chem", "q1")]
    assert read_path(tmp_path / "wmdp", ["wmdp-chem"])[0]["choices"] == ["a", "b", "c", "d"]
    pq.write_table(pa.Table.from_pylist([{"x": 1}]).slice(0, 0), tmp_path / "empty.parquet")
    assert read_file(tmp_path / "empty.parquet") == []


def test_bad_parquet_names_the_file(tmp_path):
    pytest.importorskip("pyarrow")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match="bad.parquet"):
        read_file(bad)


def test_without_pyarrow_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"x\.parquet.*pip install pyarrow"):
        read_file(tmp_path / "x.parquet")
