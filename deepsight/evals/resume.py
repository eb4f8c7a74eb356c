"""Resume store: generations and verdicts appended to a JSONL file keyed by a stable hash.

Each record is one line written with a single ``os.write`` on an ``O_APPEND`` descriptor,
so a killed run leaves at most one partial last line; opening the store drops that
partial line (it never becomes a record) and a restarted run redoes only what is missing.
Lines are split on "\n" only; a line that is not UTF-8, holds a NUL byte, is not JSON or is
not a keyed record is skipped with a warning naming the file and line (its item is redone).
Keys come from ``stable_hash`` over everything that changes the result (model, backend,
item id, prompt, generation parameters; for verdicts the generation key and the judge's
identity), so a changed setting never reuses a stale record.

    store = ResumeStore(run_dir / "generations" / "xstest.jsonl")
    if key not in store: store.append({"key": key, "kind": "generation", ...})
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("deepsight")


def stable_hash(obj: Any) -> str:
    """Hex SHA-256 (first 32 chars) of ``obj`` as canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


class ResumeStore:
    def __init__(self, path: str | Path, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync  # fsync after every line (durable against power loss; slower)
        self.records: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a partial last line from a killed write: drop it
            log.warning(
                "%s: dropping a partial last line (%d bytes) from an interrupted run", self.path, len(data) - end
            )
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
            data = data[:end]
        for i, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                if b"\x00" in line:
                    raise ValueError("a NUL byte")
                rec = json.loads(line.decode("utf-8"))
                self.records[rec["key"]] = rec
            except (ValueError, KeyError, TypeError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                self.skipped_lines += 1
                reason = "not UTF-8" if isinstance(e, UnicodeDecodeError) else type(e).__name__
                log.warning("%s:%d: not a resume record (%s), ignored; its item is redone", self.path, i, reason)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, record: dict[str, Any]) -> None:
        assert "key" in record, "a resume record needs a 'key'"
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        written = os.write(self._fd, line)
        while written < len(line):  # rare short write: finish the same line
            written += os.write(self._fd, line[written:])
        if self.fsync:
            os.fsync(self._fd)
        self.records[record["key"]] = record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResumeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
