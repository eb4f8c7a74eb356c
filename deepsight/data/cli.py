"""``deepsight data list|download|verify``: show, fill and check the benchmark data cache.

    deepsight data list                      # every registered file: origin, licence, readers, status
    deepsight data download                  # the files a scan or benchmark reads (licences shown first)
    deepsight data download xstest tellme/test.csv --force
    deepsight data verify                    # sha256 of every cached (and data_dir) file

``list`` shows licences and gated datasets before anything is downloaded, and for each file its
checksum: the registered sha256, or "checksum: locked on first download" (with the locked sha256 once
it was downloaded; see deepsight/data/lock.py). An archive row says what it unpacks into and whether it
is unpacked; ``verify`` checks the kept archive's sha256 and every unpacked member's size. Exit status: 0 when every
requested file is present and verified, 1 otherwise (each problem is named), 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deepsight.data import lock
from deepsight.data.fetch import (
    cached_path,
    check_archive,
    check_file,
    data_cache_dir,
    describe,
    expected,
    fetch,
    offline,
)
from deepsight.data.sources import SOURCES, Source, noncommercial, sources_under
from deepsight.errors import DeepSightError


def _data_dir(arg: str | None) -> Path | None:
    d = arg or os.environ.get("DEEPSIGHT_DATA_DIR")
    return Path(d).expanduser() if d else None


def _status(src: Source, data_dir: Path | None) -> str:
    if data_dir is not None and (data_dir / src.key).is_file():
        return "data_dir"
    return "cached" if cached_path(src).is_file() else "missing"


def _archive_note(s: Source) -> str:
    if not s.archive:
        return ""
    state = ("unpacked" if cached_path(s).is_file() and check_archive(s, cached_path(s)) is None
             else "not unpacked")
    return f"  {s.archive} archive, unpacked into {s.unpack_dir}/ ({state})"


def _select(keys: list[str], everything: bool) -> list[Source]:
    if everything:
        return list(SOURCES.values())
    if not keys:
        return [s for s in SOURCES.values() if s.used_by]
    out: list[Source] = []
    for k in keys:
        found = sources_under(k)
        if not found:
            raise SystemExit(f"deepsight data: no registered data file or folder {k!r} (see `deepsight data list`)")
        out += [s for s in found if s not in out]
    return out


def cmd_list(args) -> int:
    data_dir = _data_dir(args.data_dir)
    print(f"cache: {data_cache_dir()}   checksum lock: {lock.lock_path()}"
          + (f"   data_dir: {data_dir}" if data_dir else "")
          + ("   (downloads off: HF_HUB_OFFLINE/DEEPSIGHT_OFFLINE)" if offline() else ""))
    for s in _select(args.keys, not args.keys):
        flags = ("GATED " if s.gated else "") + ("NON-COMMERCIAL " if noncommercial(s) else "")
        size = f"{s.size:,} bytes" if s.size is not None else "size unknown"
        print(f"{_status(s, data_dir):8s} {s.key}  ({size})  used by: {', '.join(s.used_by) or '-'}")
        print(f"         from {s.origin()}{'' if s.revision_pinned else '  revision: unpinned'}  {_checksum(s)}"
              f"{_archive_note(s)}")
        print(f"         licence: {flags}{s.license}")
    return 0


def _checksum(s: Source) -> str:
    if s.checksum_known:
        assert s.sha256 is not None
        return f"sha256 {s.sha256[:16]}..."
    entry = lock.locked(s)
    if entry is None:
        return "checksum: locked on first download"
    at = "" if s.revision_pinned or not entry.get("commit") else f", commit {entry['commit'][:12]}"
    return (f"checksum: locked on first download (sha256 {entry['sha256'][:16]}..., {entry['size']:,} bytes{at}, "
            f"{entry['locked_at']})")


def cmd_download(args) -> int:
    data_dir = _data_dir(args.data_dir)
    todo = []
    for s in _select(args.keys, args.all):
        if data_dir is not None and (data_dir / s.key).is_file() and not args.force:
            print(f"in data_dir  {s.key}")
        else:
            todo.append(s)
    for s in todo:  # every licence is shown before anything is downloaded
        print(f"licence      {describe(s)}")
    failures = 0
    for s in todo:
        if args.force and cached_path(s).exists():
            cached_path(s).unlink()
        try:
            print(f"ok           {fetch(s)}")
        except DeepSightError as e:
            failures += 1
            print(f"FAILED       {e}", file=sys.stderr)
    return 1 if failures else 0


def cmd_verify(args) -> int:
    data_dir = _data_dir(args.data_dir)
    bad = checked = unverified = 0
    for s in _select(args.keys, not args.keys):
        for where in ([data_dir / s.key] if data_dir is not None else []) + [cached_path(s)]:
            if not where.is_file():
                continue
            if expected(s) is None and where != cached_path(s):  # a data_dir copy of a never-downloaded file
                unverified += 1
                print(f"unverified   {where} (checksum locked on first download; not downloaded yet)")
                continue
            checked += 1
            problem = check_file(s, where)
            if problem is None and s.archive and where == cached_path(s):
                problem = check_archive(s, where)
            if problem:
                bad += 1
                print(f"MISMATCH     {problem}", file=sys.stderr)
            else:
                print(f"ok           {where}")
    print(f"{checked} file(s) checked, {bad} mismatch(es)"
          + (f", {unverified} without a checksum yet" if unverified else ""))
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deepsight data", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("list", "registered files, licences, status"),
                        ("download", "download and verify (default: files a scan or benchmark reads)"),
                        ("verify", "check cached and data_dir files against their sha256")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("keys", nargs="*", help="files or folders, e.g. xstest/xstest_prompts.csv or donotanswer")
        p.add_argument("--data-dir", help="the offline data folder (default: $DEEPSIGHT_DATA_DIR)")
        if name == "download":
            p.add_argument("--all", action="store_true", help="every registered file, read by DeepSight or not")
            p.add_argument("--force", action="store_true", help="download again even if cached or in data_dir")
    args = ap.parse_args(argv)
    return {"list": cmd_list, "download": cmd_download, "verify": cmd_verify}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
