"""Resolve data files from config: relative paths are taken under ``data_dir``."""

from __future__ import annotations

from pathlib import Path

from deepsight.errors import MissingDataError


def resolve_data_path(data_dir: str | Path | None, relative: str | Path, key: str) -> Path:
    """Return the existing file ``relative`` (absolute, or under ``data_dir``).

    ``key`` is the config key that named the file, so the error says what to change.
    """
    p = Path(relative).expanduser()
    if not p.is_absolute():
        if data_dir is None:
            raise MissingDataError(
                f"{key}={str(relative)!r} is relative but no data_dir is set "
                "(pass data_dir=/path/to/data or set DEEPSIGHT_DATA_DIR)"
            )
        p = Path(data_dir).expanduser() / p
    if not p.exists():
        raise MissingDataError(f"{key}: data file not found: {p}")
    return p
