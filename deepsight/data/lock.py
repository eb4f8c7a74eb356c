"""The checksum lock file: sha256 and size of data files whose checksum is locked on first download.

Role: some registered sources have a pinned revision but no sha256 known in advance (no offline copy
existed when they were registered). Their first download is verified against what the host itself
declares for that immutable revision (the Hugging Face Hub's ``X-Linked-Etag`` sha256 for LFS files,
the git blob sha1 ``ETag`` otherwise, ``X-Linked-Size``, ``X-Repo-Commit``), then the file's sha256 and
size are written here, in ``$DEEPSIGHT_CACHE/data/sources.lock.json``; every later use of the file (the
cache, ``data_dir``, ``deepsight data verify``) is checked against that entry, as a registered sha256
would be. An entry records the origin it was locked for (repository, revision, path): if the registry
pins another revision later, the old entry no longer applies.

Usage::

    from deepsight.data.lock import locked, record
    entry = locked(src)          # {"sha256", "size", ...} or None
    record(src, sha256=..., size=..., commit=..., declared="sha256", url=...)
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from deepsight.data.sources import Source
from deepsight.errors import DeepSightError
from deepsight.models.default_model import cache_root

LOCK_NAME = "sources.lock.json"
VERSION = 1


class LockFileError(DeepSightError):
    """The lock file cannot be read (not JSON, or not a lock file)."""


def lock_path() -> Path:
    """``$DEEPSIGHT_CACHE/data/sources.lock.json``."""
    return cache_root() / "data" / LOCK_NAME


def origin_id(src: Source) -> str:
    """What a lock entry is valid for: host, repository, full revision and path."""
    return f"{src.host}:{src.repo}@{src.revision}:{src.path}"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LockFileError(f"{path}: not a valid lock file ({e}); delete it to lock the files again") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise LockFileError(f"{path}: not a lock file (no 'files' object); delete it to lock the files again")
    return files


def entries() -> dict[str, dict[str, Any]]:
    """Every entry of the lock file, by data key."""
    return _read(lock_path())


def locked(src: Source) -> dict[str, Any] | None:
    """The lock entry of ``src`` for its current origin, or ``None`` if it was never locked."""
    entry = _read(lock_path()).get(src.key)
    if not isinstance(entry, dict) or entry.get("origin") != origin_id(src):
        return None
    sha, size = entry.get("sha256"), entry.get("size")
    if not (isinstance(sha, str) and len(sha) == 64 and isinstance(size, int) and size >= 0):
        raise LockFileError(f"{lock_path()}: entry {src.key!r} has no valid sha256/size; delete the entry or the file")
    return entry


def record(src: Source, *, sha256: str, size: int, commit: str | None, declared: str, url: str) -> dict[str, Any]:
    """Write (or replace) the entry of ``src``; concurrent writers are serialised by a file lock."""
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"origin": origin_id(src), "sha256": sha256, "size": size, "commit": commit,
             "declared": declared, "url": url, "locked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(path.with_name(LOCK_NAME + ".lock"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        files = _read(path)
        files[src.key] = entry
        tmp = path.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": VERSION, "files": dict(sorted(files.items()))}, indent=1) + "\n",
                       encoding="utf-8")
        os.replace(tmp, path)
    return entry
