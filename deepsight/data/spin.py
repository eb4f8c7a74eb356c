"""SPIN data: (prompt, response) CSV rows and the reference sample selection.

The SPIN reference (ChnQ/SPIN, DeepScan) samples ``n`` rows with Hugging Face
``datasets``: ``load_dataset("csv").shuffle(seed=seed).select(range(n))``.
``Dataset.shuffle(seed)`` draws ``np.random.default_rng(seed).permutation(len)``
and ``select(range(n))`` keeps its first ``n`` entries, so the same rows are
picked here with numpy alone (no ``datasets`` dependency at run time).

Usage::

    rows = load_spin_rows(path, n=128, seed=0)   # [SpinRow(prompt, response, row)]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsight.data.jsonl import read_text
from deepsight.errors import DataFormatError


@dataclass(frozen=True)
class SpinRow:
    prompt: str
    response: str
    row: int  # 0-based data row in the CSV (header excluded)


def hf_shuffle_indices(n_rows: int, seed: int, n: int) -> list[int]:
    """Row indices that ``Dataset.shuffle(seed=seed).select(range(n))`` keeps, in order."""
    if n > n_rows:
        raise ValueError(f"asked for {n} rows but the data has only {n_rows}")
    return [int(i) for i in np.random.default_rng(seed).permutation(n_rows)[:n]]


def read_prompt_response_csv(path: str | Path) -> list[SpinRow]:
    """All rows of a CSV with ``prompt`` and ``response`` columns (empty values are errors)."""
    path = Path(path)
    read_text(path)  # a file that is not UTF-8 is an error naming the line, before any row is read
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in ("prompt", "response") if c not in cols]
        if missing:
            raise DataFormatError(f"{path}: missing column(s) {missing}; found {cols}")
        rows = []
        try:
            for i, rec in enumerate(reader):
                prompt, response = rec.get("prompt"), rec.get("response")
                if not prompt or not response:
                    raise DataFormatError(f"{path}: data row {i} (line {reader.line_num}) has an empty prompt or "
                                          "response")
                rows.append(SpinRow(prompt=prompt, response=response, row=i))
        except csv.Error as e:
            raise DataFormatError(f"{path}: line {reader.line_num}: malformed CSV: {e}") from None
    if not rows:
        raise DataFormatError(f"{path}: no data rows")
    return rows


def load_spin_rows(path: str | Path, n: int, seed: int = 0) -> list[SpinRow]:
    """The ``n`` rows the SPIN reference samples from ``path`` with ``seed``."""
    rows = read_prompt_response_csv(path)
    try:
        idx = hf_shuffle_indices(len(rows), seed, n)
    except ValueError as e:
        raise DataFormatError(f"{path}: {e} (lower n_samples)") from None
    return [rows[i] for i in idx]
