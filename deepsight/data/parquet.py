"""Rows of a parquet file (the native format of many Hugging Face datasets: WMDP, MedHallu, MASK).

Role: lets the benchmark loaders read a downloaded ``*.parquet`` file like a JSON list of records,
with the optional dependency ``pyarrow`` (no pandas): nested columns stay Python lists and dicts.

Usage::

    from deepsight.data.parquet import read_parquet
    rows = read_parquet(Path("wmdp/wmdp-bio.parquet"))   # [{"question": ..., "choices": [...], ...}]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsight.errors import ConfigError, DataFormatError


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """Every row of ``path`` as a dict; a clear error naming the file when it cannot be read."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ConfigError(f"{path}: reading parquet files needs the optional package pyarrow "
                          "(pip install pyarrow)") from e
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow.ArrowInvalid / OSError: not parquet, truncated
        raise DataFormatError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
    return table.to_pylist()
