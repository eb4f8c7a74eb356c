"""Reading benchmark data in its native format: local CSV / JSON / JSONL / parquet files or folders, or HF datasets.

``EvalItem`` is one benchmark item with a stable id (from the data, else a content
hash). ``records(ctx, cfg, name, default)`` returns the raw rows of a benchmark from
``cfg.hf_dataset`` (needs the optional ``datasets`` package) or ``cfg.path`` / the
benchmark's default path under ``data_dir``; a folder yields the rows of every data
file in it, each row tagged with ``_file`` (the file stem, used as the subset name).
Malformed rows raise ``DataFormatError`` naming the file, row and key.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsight.data.jsonl import parse_jsonl, read_text
from deepsight.data.parquet import read_parquet
from deepsight.errors import ConfigError, DataFormatError
from deepsight.evals.resume import stable_hash

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")


@dataclass
class EvalItem:
    id: str
    prompt: str  # the user turn sent to the target
    meta: dict[str, Any] = field(default_factory=dict)  # fields for breakdowns (category, label, subset...)
    context: str | None = None  # shown before the prompt (HarmBench contextual) and given to the judge
    system_prompt: str | None = None  # per-item system prompt (evaluation-faking cues, sandbagging targets)
    reference: Any = None  # gold answer for parser judges
    judge_prompt: str | None = None  # the request as the judge sees it, when it differs from ``prompt``
    history: list[dict[str, str]] | None = None  # earlier turns (role, content) before the user ``prompt``
    images: tuple[str, ...] = ()  # image-text benchmarks: local image files shown before the prompt


def content_id(*parts: Any) -> str:
    """An id from the item's content, for data without ids."""
    return "h" + stable_hash(list(parts))[:16]


def read_file(path: Path) -> list[dict[str, Any]]:
    """Rows of one CSV/TSV (lines starting with '#' before the header are comments), JSON, JSONL or
    parquet (optional pyarrow) file."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path)
    text = read_text(path)
    if suffix in (".csv", ".tsv"):
        lines = text.split("\n")
        skipped = 0
        while lines and lines[0].startswith("#"):
            lines.pop(0)
            skipped += 1
        reader = csv.DictReader(io.StringIO("\n".join(lines), newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        try:
            return list(reader)
        except csv.Error as e:
            raise DataFormatError(f"{path}: line {reader.line_num + skipped}: malformed CSV: {e}") from None
    if suffix == ".jsonl":
        return parse_jsonl(path, text, objects=True)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            if text.lstrip().startswith("{") and "\n{" in text:  # JSON lines under a .json name (HaluEval)
                return parse_jsonl(path, text, objects=True)
            raise DataFormatError(f"{path}: invalid JSON: {e}") from e
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if isinstance(data, dict):  # {id: record}
            data = [{"_key": k, **v} if isinstance(v, dict) else {"_key": k, "value": v} for k, v in data.items()]
        if not isinstance(data, list):
            raise DataFormatError(f"{path}: expected a list of records (or {{'data': [...]}})")
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise DataFormatError(f"{path}: row {i} is a JSON {type(row).__name__}, expected an object")
        return data
    raise DataFormatError(f"{path}: unsupported data file type {suffix!r} (use {', '.join(DATA_SUFFIXES)})")


def read_path(path: Path, subsets: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a file, or of every data file in a folder (``subsets`` selects file stems)."""
    if path.is_file():
        return [{**r, "_file": path.stem} for r in read_file(path)]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in DATA_SUFFIXES)
    if subsets:
        missing = set(subsets) - {p.stem for p in files}
        if missing:
            raise DataFormatError(
                f"{path}: no data file for subsets {sorted(missing)}; found {[p.stem for p in files]}"
            )
        files = [p for p in files if p.stem in subsets]
    if not files:
        raise DataFormatError(f"{path}: folder has no {'/'.join(DATA_SUFFIXES)} files")
    return [{**r, "_file": p.stem} for p in files for r in read_file(p)]


def read_hf(dataset_id: str, subset: str | None, split: str | None, key: str) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset (optional dependency ``datasets``)."""
    try:
        import datasets
    except ImportError as e:
        raise ConfigError(f"{key}={dataset_id!r} needs the optional package `datasets` (pip install datasets)") from e
    ds = datasets.load_dataset(dataset_id, subset, split=split or "test")
    return [{**dict(r), "_file": subset or dataset_id} for r in ds]


def records(ctx, cfg, name: str, default_path: str | None, hf_subsets: list[str | None] | None = None) -> list[dict]:
    """The benchmark's raw rows from ``cfg.hf_dataset`` or ``cfg.path`` (default: ``default_path``)."""
    if cfg.hf_dataset:
        subsets = list(cfg.subsets) if cfg.subsets else (hf_subsets or [None])
        return [r for s in subsets for r in read_hf(cfg.hf_dataset, s, cfg.split, f"eval.{name}.hf_dataset")]
    rel = cfg.path or default_path
    if rel is None:
        raise ConfigError(f"eval.{name}: set eval.{name}.path (a local file/folder) or eval.{name}.hf_dataset")
    path = ctx.data_path(rel, f"eval.{name}.path")
    return read_path(path, list(cfg.subsets) if cfg.subsets and path.is_dir() else None)


def field_of(row: dict[str, Any], keys: str | tuple[str, ...], where: str, i: int) -> Any:
    """The first present key of ``keys`` in ``row``; a clear error naming the file, row and keys otherwise."""
    for k in (keys,) if isinstance(keys, str) else keys:
        if k in row and row[k] is not None:
            return row[k]
    raise DataFormatError(f"{where}: row {i}: missing field {keys!r} (has {sorted(k for k in row if k != '_file')})")


def text_field(row: dict[str, Any], keys: str | tuple[str, ...], where: str, i: int) -> str:
    """``field_of`` for a prompt-like field: a string with non-blank text, else an error naming file and row."""
    value = field_of(row, keys, where, i)
    if not isinstance(value, str) or not value.strip():
        what = "empty" if isinstance(value, str) else f"a {type(value).__name__}"
        raise DataFormatError(f"{where}: row {i}: field {keys!r} is {what}, expected non-empty text")
    return value


def choice_field(row: dict[str, Any], key: str, allowed: tuple[str, ...], where: str, i: int) -> str:
    """A label field, lower-cased, from the known set ``allowed``; an error naming file, row and value otherwise."""
    value = str(field_of(row, key, where, i)).strip().lower()
    if value not in allowed:
        raise DataFormatError(f"{where}: row {i}: {key}={value!r} is not one of {list(allowed)}")
    return value


def unique_ids(items: list[EvalItem]) -> list[EvalItem]:
    """Make repeated ids unique by suffixing '#2', '#3', ... (repeated prompts in the data)."""
    seen: dict[str, int] = {}
    for it in items:
        k = seen.get(it.id, 0) + 1
        seen[it.id] = k
        if k > 1:
            it.id = f"{it.id}#{k}"
    return items


def select(items: list[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """The first ``limit`` items after a shuffle seeded by ``seed`` (all items, unshuffled, when no limit)."""
    items = unique_ids(items)
    if limit is None or limit >= len(items):
        return items
    if limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:limit])]
