"""Data fetched on first use, against a loopback server speaking the Hub's resolve API and GitHub raw files.

Download, cache hit, data_dir precedence, checksum mismatch (download and cache), server down, partial
download resumed (within a call and across calls), offline, gated datasets, wheel members, folders, CLI.
"""

from __future__ import annotations

import hashlib
import re
import socket
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from data_server import DataServer

from deepsight.data import fetch as fetch_mod
from deepsight.data import lock
from deepsight.data.cli import main as data_cli
from deepsight.data.fetch import DataDownloadError, DataIntegrityError, data_cache_dir, fetch, fetch_key
from deepsight.data.paths import resolve_data_path
from deepsight.data.sources import SOURCES, Source, Wheel
from deepsight.errors import MissingDataError

XSTEST = "xstest/xstest_prompts.csv"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSIGHT_CACHE", str(tmp_path / "cache"))
    for v in ("HF_HUB_OFFLINE", "DEEPSIGHT_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "DEEPSIGHT_DATA_DIR"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no token file of the user's
    return tmp_path


@pytest.fixture
def server(env, data_dir, monkeypatch):
    with DataServer(data_dir) as srv:
        monkeypatch.setenv("DEEPSIGHT_GITHUB_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("DEEPSIGHT_PYPI_ENDPOINT", srv.url)
        yield srv


def _url_path(src: Source) -> str:
    return f"/{src.repo}/{src.revision}/{src.path}"


def test_every_source_is_pinned_and_matches_the_shared_copy(data_dir):
    for key, s in SOURCES.items():
        assert s.license and s.host in ("github", "wheel", "hf")
        if s.checksum_known:
            assert len(s.sha256) == 64 and s.size > 0, key
        else:  # checksum locked on first download: never a guessed size
            assert s.sha256 is None and s.size is None and s.host in ("github", "hf"), key
        if s.host in ("github", "hf") and key not in UNPINNED:
            assert re.fullmatch(r"[0-9a-f]{40}", s.revision) and s.revision_pinned, key  # a commit, not a branch
        assert s.revision_pinned == (key not in UNPINNED), key
        p = data_dir / key
        if p.is_file() and s.checksum_known:
            assert p.stat().st_size == s.size and hashlib.sha256(p.read_bytes()).hexdigest() == s.sha256, key


# Benchmarks whose default data has no registered source, on purpose (each with the reason); they run
# from data_dir (or hf_dataset) and are skipped with a reason otherwise. A new benchmark must either
# register the sources of its default data (and images) in deepsight/data/sources.py or be listed here.
NO_PINNED_SOURCE = {
    "reason_under_pressure": "no revision or file name of redwoodresearch/diamonds-seed0 was found cited",
    "uncontrolled_aird_self_judge": "saferlhf_simple.json is DeepSafe's own file, not published",
    "argus": "Argus Inspection's Benchmark/ folder has no published location found (DeepSafe reads a local copy)",
    "mm_safetybench": "the images are published only as a Google Drive archive (MM-SafetyBench(imgs).zip) and no "
                      "commit of isXinLiu/MM-SafetyBench's processed_questions/ was found cited; HF "
                      "PKU-Alignment/MM-SafetyBench is a parquet re-packaging, not this layout",
    "mssbench": "kzhou35/mssbench publishes its ~1,800 images as single files named only inside combined.json (no "
                "archive), and the full commit id of its current data (v1.1, 429d0cb) was not found cited",
    "beavertails": "no default file: eval.beavertails.path or hf_dataset names the user's copy",
    "sandbagging": "no default file: eval.sandbagging.path names a multiple-choice file of the user's choice",
}
# Sources registered without a pinned revision (no commit found cited): the branch is downloaded and the
# commit the Hub resolves it to is locked on first download. Each is listed here on purpose.
UNPINNED = {"salad/mcq_set.json", "medhallu/pqa_labeled.parquet"}


def test_every_default_data_path_has_a_source():
    from deepsight.config.schema import MIPeaksConfig, SPINConfig, TELLMEConfig, XBoundaryConfig
    from deepsight.evals.registry import BENCHMARKS

    keys = [XBoundaryConfig().harmful_path, XBoundaryConfig().safe_path, XBoundaryConfig().boundary_path,
            TELLMEConfig().data_path, SPINConfig().dataset1_path, SPINConfig().dataset2_path,
            MIPeaksConfig().data_path]
    for k in keys:
        assert k in SOURCES, k
    defaults = _effective_defaults()  # imports every benchmark
    assert set(defaults) == set(BENCHMARKS) and set(NO_PINNED_SOURCE) <= set(BENCHMARKS)
    for name, paths in defaults.items():
        covered = bool(paths) and all(fetch_mod.sources_under(k) for k in paths)
        if name in NO_PINNED_SOURCE:
            assert not covered, f"{name}: registered now ({paths}), remove it from NO_PINNED_SOURCE"
            continue
        assert paths, f"eval.{name}: no default data; register a source or list it in NO_PINNED_SOURCE"
        for key in paths:
            srcs = fetch_mod.sources_under(key)
            assert srcs, f"eval.{name}: its default {key} has no registered source"
            assert any(f"eval.{name}" in s.used_by for s in srcs), f"{name}: no source under {key} names eval.{name}"


def _effective_defaults() -> dict[str, list[str]]:
    """Every registered benchmark -> the data keys it reads by default: the yaml's ``path:`` if set, else its
    module's ``DEFAULT_PATH`` (orbench: ``LOCAL_SUBSETS``), plus its images: ``IMAGES`` (a registered image
    set) or ``DEFAULT_IMAGES`` (a data key, or a folder name relative to a folder DEFAULT_PATH)."""
    import sys

    import deepsight.evals.all  # noqa: F401 - every benchmark registers itself
    from deepsight.evals.registry import BENCHMARKS

    out = {}
    for name, fn in sorted(BENCHMARKS.items()):
        module = sys.modules[fn.__module__]
        conf = Path(__file__).parent.parent / "conf" / "eval" / f"{name}.yaml"
        m = re.search(r"^path: ([^\s#]+)", conf.read_text(), re.M) if conf.is_file() else None
        path = m.group(1) if m and m.group(1) != "null" else getattr(module, "DEFAULT_PATH", None)
        paths = [path] if path else list(getattr(module, "LOCAL_SUBSETS", {}).values())
        images = getattr(module, "IMAGES", None) or getattr(module, "DEFAULT_IMAGES", None)
        if images:
            paths.append(images if "/" in images else f"{path}/{images}")
        out[name] = paths
    return out


def _default_paths() -> list[tuple[str, str]]:
    """(benchmark, default data key) of every benchmark whose default data is registered."""
    return [(name, k) for name, keys in _effective_defaults().items() if name not in NO_PINNED_SOURCE for k in keys]


def test_every_default_path_downloads_from_the_loopback_hub(server, env, data_dir, monkeypatch):
    """Each benchmark's default data and images resolve with no data_dir: shared copies for pinned checksums,
    stand-in bytes (a file per source; a one-member archive for an archive) for files locked on first
    download, locked and then reused. Members of PyPI wheels are left out (the pinned wheels are not here;
    test_wheel_member covers them)."""
    monkeypatch.setenv("HF_TOKEN", "tok")  # gated datasets (SORRY-Bench) need a token to be asked for
    stand_in = env / "stand_in"
    for s in SOURCES.values():
        if s.checksum_known:
            continue
        local = stand_in / s.key
        local.parent.mkdir(parents=True, exist_ok=True)
        if s.archive == "zip":
            with zipfile.ZipFile(local, "w") as zf:
                zf.writestr("stand_in/member.txt", f"stand-in for {s.key}\n")
        elif s.archive:
            with tarfile.open(local, "w:gz" if s.archive == "tar.gz" else "w") as tf:
                tf.add(__file__, "stand_in/member.txt")
        else:
            local.write_bytes(f"stand-in for {s.key}\n".encode())
        if s.host == "hf":
            server.add_hf(s.repo, s.revision, s.path, local)
        else:
            server.add(f"/{s.repo}/{s.revision}/{s.path}", local)
    done = []
    for conf, path in _default_paths():
        if any(s.host == "wheel" for s in fetch_mod.sources_under(path)):
            continue
        p = resolve_data_path(None, path, f"eval.{conf}.path")
        done.append((conf, path))
        for s in fetch_mod.sources_under(path):
            assert (data_cache_dir() / s.key).is_file(), s.key
            assert s.checksum_known or lock.locked(s) is not None, s.key
            if s.archive:
                assert (data_cache_dir() / s.unpack_dir / "stand_in" / "member.txt").is_file(), s.key
        assert p.exists()
    assert {"jailbreakbench", "truthfulqa", "wmdp", "behonest", "uncontrolled_aird", "mask", "vlsbench", "siuo",
            "ch3ef", "mossbench"} <= {conf for conf, _ in done}
    assert {"vlsbench/imgs.tar", "ch3ef/Harmless_images.zip", "siuo/images"} <= {path for _, path in done}
    n_get = server.count()
    for conf, path in done:  # reused: verified against the registry or the lock, nothing downloaded again
        resolve_data_path(None, path, f"eval.{conf}.path")
    assert server.count() == n_get


def test_download_then_cache_hit(server, data_dir):
    p = resolve_data_path(None, XSTEST, "eval.xstest.path")
    assert p == data_cache_dir() / XSTEST
    assert p.read_bytes() == (data_dir / XSTEST).read_bytes()
    assert server.count("xstest_prompts.csv") == 1
    again = resolve_data_path(None, XSTEST, "eval.xstest.path")
    assert again == p and server.count("xstest_prompts.csv") == 1  # reused, not downloaded again
    assert not list(p.parent.glob("*.part"))


def test_data_dir_wins(server, data_dir):
    assert resolve_data_path(data_dir, XSTEST, "k") == data_dir / XSTEST
    assert server.count() == 0
    # a data_dir without the file falls back to the download
    assert resolve_data_path(data_dir.parent / "nonexistent", XSTEST, "k") == data_cache_dir() / XSTEST


def test_checksum_mismatch_names_the_file(server):
    server.corrupt.add(_url_path(SOURCES[XSTEST]))
    with pytest.raises(DataIntegrityError, match=re.escape(XSTEST)) as e:
        resolve_data_path(None, XSTEST, "eval.xstest.path")
    assert "sha256" in str(e.value)
    assert not (data_cache_dir() / XSTEST).exists()
    assert not list((data_cache_dir() / "xstest").glob("*.part"))


def test_tampered_cache_is_an_error(server):
    p = fetch(SOURCES[XSTEST])
    data = bytearray(p.read_bytes())
    data[10] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match="xstest_prompts.csv"):
        resolve_data_path(None, XSTEST, "eval.xstest.path")
    assert data_cli(["verify", XSTEST]) == 1
    assert data_cli(["download", "--force", XSTEST]) == 0
    assert data_cli(["verify", XSTEST]) == 0


def test_server_down_is_a_missing_data_skip(env, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DEEPSIGHT_GITHUB_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(MissingDataError, match=r"eval\.xstest\.path.*download from http://127\.0\.0\.1") as e:
        resolve_data_path(None, XSTEST, "eval.xstest.path")
    assert isinstance(e.value, DataDownloadError)
    assert not (data_cache_dir() / XSTEST).exists()


def test_partial_download_resumed_in_the_same_call(server, data_dir):
    key = "tellme/test.csv"
    server.truncate_once.add(_url_path(SOURCES[key]))
    p = fetch(SOURCES[key])
    assert p.read_bytes() == (data_dir / key).read_bytes()
    gets = [h for path, h in server.requests if path.endswith("test.csv")]
    assert len(gets) == 2 and "Range" not in gets[0]
    half = SOURCES[key].size // 2
    assert gets[1]["Range"] == f"bytes={half}-"


def test_partial_download_resumed_across_runs(server, data_dir):
    key = "tellme/test.csv"
    src = SOURCES[key]
    dest = data_cache_dir() / key
    dest.parent.mkdir(parents=True)
    n = 12345
    dest.with_name(dest.name + ".part").write_bytes((data_dir / key).read_bytes()[:n])
    assert fetch(src).read_bytes() == (data_dir / key).read_bytes()
    (path, headers), = server.requests
    assert headers["Range"] == f"bytes={n}-"


def test_offline_skips_with_a_reason(server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="HF_HUB_OFFLINE"):
        resolve_data_path(None, XSTEST, "eval.xstest.path")
    assert server.count() == 0


def test_unregistered_relative_path_keeps_the_old_message(env):
    with pytest.raises(MissingDataError, match="no data_dir is set"):
        resolve_data_path(None, "nowhere/x.csv", "eval.x.path")


def test_hf_resolve_api_and_gated_dataset(server, data_dir, monkeypatch):
    rev = "0123456789abcdef0123456789abcdef01234567"
    src = Source("hfdemo/xstest_prompts.csv", "hf", "demo-org/xstest", rev, "data/xstest_prompts.csv",
                 SOURCES[XSTEST].sha256, SOURCES[XSTEST].size, ("eval.demo",), "CC-BY-4.0", gated=True)
    monkeypatch.setitem(SOURCES, src.key, src)
    url_path = server.add_hf("demo-org/xstest", rev, "data/xstest_prompts.csv", data_dir / XSTEST)
    server.require_token[url_path] = "secret-token"
    with pytest.raises(DataDownloadError, match="gated"):  # no token: stopped before any request
        fetch(src)
    assert server.count() == 0
    monkeypatch.setenv("HF_TOKEN", "wrong")
    with pytest.raises(DataDownloadError, match="401"):
        fetch(src)
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    p = resolve_data_path(None, src.key, "eval.demo.path")
    assert p.read_bytes() == (data_dir / XSTEST).read_bytes()
    assert server.requests[-2][0] == url_path and server.requests[-1][0] == "/cdn" + url_path


def test_token_goes_to_the_hub_only(server, data_dir, monkeypatch):
    rev = "89abcdef0123456789abcdef0123456789abcdef"
    src = Source("hfdemo/cdn.csv", "hf", "demo-org/cdn", rev, "x.csv", SOURCES[XSTEST].sha256,
                 SOURCES[XSTEST].size, (), "CC-BY-4.0", gated=True)
    monkeypatch.setitem(SOURCES, src.key, src)
    url_path = server.add_hf("demo-org/cdn", rev, "x.csv", data_dir / XSTEST)
    server.require_token[url_path] = "tok"
    monkeypatch.setenv("HF_TOKEN", "tok")
    with DataServer(None) as cdn:  # another host (port): the redirect target
        cdn.add(url_path, data_dir / XSTEST)
        server.cdn = cdn.url
        assert fetch(src).read_bytes() == (data_dir / XSTEST).read_bytes()
        (hub_path, hub_headers), = [r for r in server.requests if r[0] == url_path]
        (cdn_path, cdn_headers), = cdn.requests
    assert hub_headers.get("Authorization") == "Bearer tok"
    assert cdn_path == "/cdn" + url_path and "Authorization" not in cdn_headers


def test_wheel_member(server, env, data_dir, monkeypatch):
    whl = env / "demo-1.0-py3-none-any.whl"
    member = "demo/data/xstest_prompts.csv"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.write(data_dir / XSTEST, member)
    wheel = Wheel("demo", whl.name, hashlib.sha256(whl.read_bytes()).hexdigest())
    src = Source("demo/x.csv", "wheel", "demo/demo", "1.0", member, SOURCES[XSTEST].sha256,
                 SOURCES[XSTEST].size, (), "MIT", wheel=wheel)
    server.add(f"/packages/py3/d/demo/{whl.name}", whl)
    assert fetch(src).read_bytes() == (data_dir / XSTEST).read_bytes()
    bad = replace(src, key="demo/y.csv", wheel=replace(wheel, sha256="0" * 64))
    with pytest.raises(DataIntegrityError, match="demo-1.0-py3-none-any.whl"):
        fetch(bad)


def test_folder_fetches_every_registered_file(server, data_dir):
    d = fetch_key("mi_peaks")
    assert d == data_cache_dir() / "mi_peaks"
    for key in ("mi_peaks/gsm8k/test.jsonl", "mi_peaks/aime24/test.jsonl"):
        assert (data_cache_dir() / key).read_bytes() == (data_dir / key).read_bytes()


def test_cli_list_and_download(server, capsys):
    assert data_cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "NON-COMMERCIAL" in out and "licence:" in out and "missing  tellme/test.csv" in out
    assert data_cli(["download", "xstest", "tellme/test.csv"]) == 0
    out = capsys.readouterr().out
    assert out.rindex("licence      ") < out.index("ok           ")  # all licences before any download
    assert "licence      tellme/test.csv" in out and out.count("ok           ") == 8  # xstest: 7 files
    assert data_cli(["list", "tellme/test.csv"]) == 0
    assert "cached   tellme/test.csv" in capsys.readouterr().out



# -- pinned revision, checksum locked on first download ---------------------------------------------------
REV = "1111111111222222222233333333334444444444"


def _locked_source(server, data_dir, monkeypatch, key="locked/x.csv", lfs=True, local=XSTEST):
    src = Source(key, "hf", "demo-org/locked", REV, f"data/{key.split('/')[-1]}", None, None, ("eval.demo",),
                 "CC-BY-4.0")
    monkeypatch.setitem(SOURCES, src.key, src)
    return src, server.add_hf("demo-org/locked", REV, src.path, data_dir / local, lfs=lfs)


@pytest.mark.parametrize("lfs", [True, False])
def test_lock_written_on_first_download_then_checked(server, data_dir, monkeypatch, capsys, lfs):
    src, url_path = _locked_source(server, data_dir, monkeypatch, lfs=lfs)
    assert data_cli(["list", src.key]) == 0
    out = capsys.readouterr().out
    assert "missing  locked/x.csv  (size unknown)" in out and "checksum: locked on first download\n" in out
    assert "unpinned" not in out
    p = resolve_data_path(None, src.key, "eval.demo.path")
    body = (data_dir / XSTEST).read_bytes()
    assert p.read_bytes() == body
    assert [h for h, _ in server.heads] == [url_path]  # the metadata request, redirect not followed
    entry = lock.entries()[src.key]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["size"] == len(body)
    assert entry["commit"] == REV and entry["declared"] == ("sha256" if lfs else "git-sha1")
    assert lock.lock_path() == data_cache_dir() / "sources.lock.json"
    assert data_cli(["list", src.key]) == 0
    out = capsys.readouterr().out
    assert "cached   locked/x.csv" in out and f"locked on first download (sha256 {entry['sha256'][:16]}" in out
    # reused without a request, checked against the lock
    n_get, n_head = server.count(), len(server.heads)
    assert resolve_data_path(None, src.key, "eval.demo.path") == p
    assert (server.count(), len(server.heads)) == (n_get, n_head)
    # a later tamper is detected against the lock, by use and by `verify`
    data = bytearray(body)
    data[5] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match=r"locked/x\.csv.*sources\.lock\.json"):
        resolve_data_path(None, src.key, "eval.demo.path")
    assert data_cli(["verify", src.key]) == 1
    assert data_cli(["download", "--force", src.key]) == 0
    assert data_cli(["verify", src.key]) == 0 and p.read_bytes() == body


@pytest.mark.parametrize("fault", ["etag", "body", "size", "commit", "no-etag"])
def test_server_declared_mismatch_is_an_error_naming_the_file(server, data_dir, monkeypatch, fault):
    src, url_path = _locked_source(server, data_dir, monkeypatch, lfs=fault != "no-etag")
    if fault == "etag":
        server.declare[url_path] = {"X-Linked-Etag": '"' + hashlib.sha256(b"other").hexdigest() + '"'}
    elif fault == "body":
        server.corrupt.add(url_path)
    elif fault == "size":
        server.declare[url_path] = {"X-Linked-Size": "17"}
    elif fault == "commit":
        server.declare[url_path] = {"X-Repo-Commit": "f" * 40}
    else:  # a git-stored file whose ETag is not a hash
        server.declare[url_path] = {"ETag": 'W/"abc"'}
    with pytest.raises(DataIntegrityError, match=r"locked/x\.csv.*declares") as e:
        fetch(src)
    assert {"etag": "sha256", "body": "sha256", "size": "size", "commit": "X-Repo-Commit",
            "no-etag": "no checksum declared"}[fault] in str(e.value)
    assert not (data_cache_dir() / src.key).exists() and not list((data_cache_dir() / "locked").glob("*.part"))
    assert src.key not in lock.entries()


def test_redownload_must_match_the_lock(server, data_dir, monkeypatch):
    """Once locked, a new download (after --force, or a lost cache) must have the locked bytes, even if the
    server declares its new bytes consistently."""
    src, url_path = _locked_source(server, data_dir, monkeypatch)
    fetch(src)
    (data_cache_dir() / src.key).unlink()
    server.files[url_path] = data_dir / "tellme/xstest_v2_prompts.csv"  # other bytes, consistent headers
    with pytest.raises(DataIntegrityError, match=r"locked/x\.csv.*expected .*sources\.lock\.json"):
        fetch(src)
    assert not (data_cache_dir() / src.key).exists()


def test_cached_file_without_lock_entry_is_not_trusted(server, data_dir, monkeypatch):
    src, _ = _locked_source(server, data_dir, monkeypatch)
    p = fetch(src)
    lock.lock_path().unlink()
    with pytest.raises(DataIntegrityError, match=r"no checksum to check it against.*--force locked/x\.csv"):
        fetch(src)
    # a registry that pins another revision makes the old entry stale
    assert data_cli(["download", "--force", src.key]) == 0 and src.key in lock.entries()
    moved = replace(src, revision="5" * 40)
    assert lock.locked(moved) is None and lock.locked(src) is not None
    assert p.exists()


def test_github_file_locked_on_first_download(server, data_dir, monkeypatch, capsys):
    real = SOURCES["tellme/test.csv"]
    src = replace(real, key="ghlocked/test.csv", sha256=None, size=None)
    monkeypatch.setitem(SOURCES, src.key, src)
    assert fetch(src).read_bytes() == (data_dir / "tellme/test.csv").read_bytes()
    entry = lock.entries()[src.key]
    assert entry["sha256"] == real.sha256 and entry["size"] == real.size
    assert entry["declared"] == "pinned commit only" and entry["commit"] is None
    assert not server.heads  # GitHub declares nothing to check: the pinned commit is the pin
    assert data_cli(["verify", "--data-dir", str(data_dir), src.key]) == 0


def test_data_dir_copy_of_a_never_locked_file_is_unverified(server, env, data_dir, monkeypatch, capsys):
    src, _ = _locked_source(server, data_dir, monkeypatch)
    local = env / "dd" / src.key
    local.parent.mkdir(parents=True)
    local.write_bytes(b"anything")
    assert resolve_data_path(env / "dd", src.key, "k") == local  # data_dir wins
    assert data_cli(["verify", "--data-dir", str(env / "dd"), src.key]) == 0
    assert "unverified" in capsys.readouterr().out
    fetch(src)  # locked now: the data_dir copy is checked against the lock
    assert data_cli(["verify", "--data-dir", str(env / "dd"), src.key]) == 1


def test_corrupt_lock_file_is_an_error_naming_it(server, data_dir, monkeypatch):
    src, _ = _locked_source(server, data_dir, monkeypatch)
    lock.lock_path().parent.mkdir(parents=True, exist_ok=True)
    lock.lock_path().write_text("{not json")
    with pytest.raises(lock.LockFileError, match="sources.lock.json"):
        fetch(src)


def test_unpinned_source_locks_the_commit_it_resolved_to(server, data_dir, monkeypatch, capsys):
    """A branch (no pinned revision found): the first download records the Hub's X-Repo-Commit, and a
    later download asks for that commit, not the branch, so a moved branch cannot change the file."""
    commit = "abcdef0123456789abcdef0123456789abcdef01"
    src = Source("unpinned/x.csv", "hf", "demo-org/moving", "main", "x.csv", None, None, (), "CC-BY-4.0")
    monkeypatch.setitem(SOURCES, src.key, src)
    branch = server.add_hf("demo-org/moving", "main", "x.csv", data_dir / XSTEST)
    server.declare[branch] = {"X-Repo-Commit": commit}
    pinned = server.add_hf("demo-org/moving", commit, "x.csv", data_dir / XSTEST)
    assert data_cli(["list", src.key]) == 0
    assert "revision: unpinned" in capsys.readouterr().out
    p = fetch(src)
    assert lock.locked(src)["commit"] == commit and [h for h, _ in server.heads] == [branch]
    assert data_cli(["list", src.key]) == 0
    assert f"commit {commit[:12]}" in capsys.readouterr().out
    p.unlink()
    server.files[branch] = data_dir / "tellme/xstest_v2_prompts.csv"  # the branch moved on
    assert fetch(src).read_bytes() == (data_dir / XSTEST).read_bytes()
    assert server.heads[-1][0] == pinned and server.requests[-2][0] == pinned
