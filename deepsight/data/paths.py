"""Resolve data files from config: relative paths are taken under ``data_dir``, else from the download cache.

A relative path found under ``data_dir`` wins. Otherwise, if the path is a file (or folder) registered in
``deepsight.data.sources``, it is downloaded on first use into ``$DEEPSIGHT_CACHE/data`` and verified
(``deepsight.data.fetch``); with downloads off (``HF_HUB_OFFLINE=1``) the error says so and the scan or
benchmark is skipped with that reason.
"""

from __future__ import annotations

from pathlib import Path

from deepsight.errors import MissingDataError


def resolve_data_path(data_dir: str | Path | None, relative: str | Path, key: str) -> Path:
    """Return the existing file ``relative`` (absolute, under ``data_dir``, or fetched into the cache).

    ``key`` is the config key that named the file, so the error says what to change.
    """
    p = Path(relative).expanduser()
    if p.is_absolute():
        if not p.exists():
            raise MissingDataError(f"{key}: data file not found: {p}")
        return p
    local = Path(data_dir).expanduser() / p if data_dir is not None else None
    if local is not None and local.exists():
        return local
    from deepsight.data.fetch import fetch_key

    try:
        fetched = fetch_key(p.as_posix())
    except MissingDataError as e:
        where = f"not found in data_dir ({local})" if local is not None else "relative and no data_dir is set"
        raise type(e)(f"{key}={str(relative)!r} is {where}; {e}") from None
    if fetched is not None:
        return fetched
    if local is None:
        raise MissingDataError(
            f"{key}={str(relative)!r} is relative but no data_dir is set and no download source is registered "
            "for it (pass data_dir=/path/to/data or set DEEPSIGHT_DATA_DIR)"
        )
    raise MissingDataError(f"{key}: data file not found: {local}")


def fetch_images(key: str, config_key: str) -> Path:
    """The cache folder holding the registered image set ``key``, downloaded and verified on first use.

    ``key`` names an archive source (the folder it is unpacked into is returned) or a folder of registered
    image files. ``data_dir`` is not consulted: a benchmark looks for its images beside its data first and
    calls this when they are not there. Raises ``MissingDataError`` (offline, server down, not registered).
    """
    from deepsight.data.fetch import fetch_key

    try:
        fetched = fetch_key(key)
    except MissingDataError as e:
        raise type(e)(f"{config_key}: images {key!r} not fetched: {e}") from None
    if fetched is None:
        raise MissingDataError(f"{config_key}: no download source is registered for images {key!r}")
    return fetched.parent if fetched.is_file() else fetched
