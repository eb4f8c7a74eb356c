"""X-Boundary data: harmful / safe / boundary-safe chats with labels 0 / 1 / 2.

Spec: ../shared/spec/DIAGNOSTICS.md section 1. Every chat includes the assistant reply.

* harmful (0): a harmful request answered compliantly. HarmBench-style records
  (``behavior`` + ``default_target``, e.g. ``xboundary/harmbench_test.json``) or
  circuit-breaker style records (``prompt`` + ``output``).
* safe (1): general chat. ``prompt`` + ``output`` records (``SafeMT_train_600.json``) or
  UltraChat-style records with a ``messages`` list that contains an assistant turn.
* boundary (2): OR-Bench ``prompt`` + ``completion`` records, keeping only
  ``status == "1_full_compliance"`` when the record has a status.

Selection per class: ``sampling="random"`` draws ``n_per_class`` records with
``random.Random(seed)`` and keeps them in file order; ``"first"`` takes the first
``n_per_class`` (what the DeepScan reference does). A class with fewer records is used whole,
with a warning.

Usage::

    chats, warnings = load_xboundary(harmful_path, safe_path, boundary_path, n_per_class=200, seed=42)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from deepsight.data.labeled_chats import LabeledChat, check_messages, read_json_records
from deepsight.errors import ConfigError, DataFormatError

HARMFUL, SAFE, BOUNDARY = 0, 1, 2
CLASS_NAMES = {HARMFUL: "harmful", SAFE: "safe", BOUNDARY: "boundary"}
BOUNDARY_STATUS = "1_full_compliance"

# (user field, assistant field) pairs tried in order on each record.
_PAIRS = (("behavior", "default_target"), ("prompt", "completion"), ("prompt", "output"), ("prompt", "response"))


def record_to_messages(rec: Any, where: str, with_context: bool = False) -> list[dict[str, str]]:
    """One record -> [user, assistant] (or its own ``messages`` when they include an assistant turn).

    ``with_context``: for HarmBench contextual behaviours, put the ``context`` string before the
    behaviour (``context\\n\\n---\\n\\nbehavior``, HarmBench's layout); off by default, as in the
    file's own ``messages``.
    """
    if not isinstance(rec, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    for user_key, reply_key in _PAIRS:
        if user_key in rec and reply_key in rec:
            user, reply = rec[user_key], rec[reply_key]
            if not isinstance(user, str) or not isinstance(reply, str):
                raise DataFormatError(f"{where}: fields {user_key!r} and {reply_key!r} must be strings")
            if with_context and isinstance(rec.get("context"), str) and rec["context"]:
                user = f"{rec['context']}\n\n---\n\n{user}"
            return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    if "messages" in rec:
        messages = check_messages(rec["messages"], where)
        if not any(m["role"] == "assistant" for m in messages):
            raise DataFormatError(f"{where}: 'messages' has no assistant reply (X-Boundary needs answered chats)")
        return messages
    raise DataFormatError(
        f"{where}: no chat found; expected one of {[f'{a}+{b}' for a, b in _PAIRS]} or 'messages' "
        f"(record keys: {sorted(rec)})"
    )


def _answered(rec: dict) -> bool:
    return rec.get("status", BOUNDARY_STATUS) == BOUNDARY_STATUS


def _select(indices: list[int], n: int, sampling: str, rng: random.Random) -> list[int]:
    if len(indices) <= n:
        return indices
    if sampling == "first":
        return indices[:n]
    return sorted(rng.sample(indices, n))


def load_class(
    path: Path, label: int, n: int, sampling: str, seed: int, with_context: bool = False
) -> tuple[list[LabeledChat], list[str]]:
    """Load one class file; returns the selected chats and warnings."""
    records = read_json_records(path)
    keep = list(range(len(records)))
    if label == BOUNDARY:
        keep = [i for i in keep if not isinstance(records[i], dict) or _answered(records[i])]
    warnings = []
    if len(keep) < n:
        warnings.append(f"{CLASS_NAMES[label]}: {path.name} has {len(keep)} usable records, fewer than n_per_class={n}")
    rng = random.Random(f"{seed}:{label}")  # one stream per class: classes do not shift each other
    chosen = _select(keep, n, sampling, rng)
    chats = [
        LabeledChat(record_to_messages(records[i], f"{path} record {i}", with_context), label, path.name, i)
        for i in chosen
    ]
    return chats, warnings


def load_xboundary(
    harmful_path: Path,
    safe_path: Path,
    boundary_path: Path,
    n_per_class: int = 200,
    seed: int = 42,
    sampling: str = "random",
    harmful_with_context: bool = False,
) -> tuple[list[LabeledChat], list[str]]:
    """All three classes, harmful first; returns (chats, warnings)."""
    if sampling not in ("random", "first"):
        raise ConfigError(f"scan.xboundary.sampling={sampling!r} must be 'random' or 'first'")
    if n_per_class < 1:
        raise ConfigError(f"scan.xboundary.n_per_class={n_per_class} must be >= 1")
    warnings = []
    if not 50 <= n_per_class <= 400:
        warnings.append(f"n_per_class={n_per_class} is outside the reference's allowed range 50..400")
    chats: list[LabeledChat] = []
    for path, label in ((harmful_path, HARMFUL), (safe_path, SAFE), (boundary_path, BOUNDARY)):
        got, w = load_class(Path(path), label, n_per_class, sampling, seed, harmful_with_context and label == HARMFUL)
        chats += got
        warnings += w
    return chats, warnings
