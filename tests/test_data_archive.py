"""Image archives fetched on first use from the loopback Hub: downloaded, verified, safely unpacked, reused.

Archives are built here (a few generated PNGs in the benchmark's real folder layout: VLSBench's
``imgs.tar`` holds ``imgs/<n>.png``, Ch3Ef's ``Harmless_images.zip`` unpacks under the folder holding
``meta_file/``), served by tests/data_server.py the way the Hub serves an LFS file, then: unpacked once and
reused without a request, a tampered archive or member rejected, every unsafe member refused (nothing
unpacked), and VLSBench end to end through its loader, which finds the images through the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
from _tiny_vlm import save_image
from data_server import DataServer
from scripted import ScriptedGenerator

from deepsight.config.schema import BenchmarkConfig, GenerationConfig
from deepsight.data import archive, lock
from deepsight.data.cli import main as data_cli
from deepsight.data.fetch import DataDownloadError, DataIntegrityError, data_cache_dir, fetch, fetch_key
from deepsight.data.sources import SOURCES, Source
from deepsight.evals.registry import EvalContext, get_benchmark
from deepsight.judges.refusal import RefusalJudge
from deepsight.judges.vlsbench import VLSBenchJudge

REV = "abcabcabcabcabcabcabcabcabcabcabcabcabca"
VLS_ROWS = json.loads((Path(__file__).parent / "fixtures" / "evals" / "vlsbench" / "data.json").read_text())


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSIGHT_CACHE", str(tmp_path / "cache"))
    for v in ("HF_HUB_OFFLINE", "DEEPSIGHT_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "DEEPSIGHT_DATA_DIR"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    return tmp_path


@pytest.fixture
def server(env, monkeypatch):
    with DataServer(None) as srv:
        for v in ("HF_ENDPOINT", "DEEPSIGHT_GITHUB_ENDPOINT", "DEEPSIGHT_PYPI_ENDPOINT"):
            monkeypatch.setenv(v, srv.url)
        yield srv


def _png(tmp: Path, seed: int) -> bytes:
    p = tmp / f"_img{seed}.png"
    save_image(p, seed=seed, size=(17 + seed, 11))
    return p.read_bytes()


def _build(path: Path, fmt: str, members: dict[str, bytes]) -> Path:
    """A zip / tar / tar.gz archive of ``members`` (name -> bytes), folders listed as tools write them."""
    folders = sorted({n.rsplit("/", 1)[0] + "/" for n in members if "/" in n})
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for d in folders:
                zf.writestr(d, b"")
            for name, data in members.items():
                zf.writestr(name, data)
        return path
    with tarfile.open(path, "w:gz" if fmt == "tar.gz" else "w") as tf:
        for d in folders:
            info = tarfile.TarInfo(d.rstrip("/"))
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _serve(server, src: Source, local: Path) -> str:
    return server.add_hf(src.repo, src.revision, src.path, local)


def _registered(monkeypatch, key: str, fmt: str, local: Path | None = None, used_by=()) -> Source:
    """A demo archive source: checksum registered (``local`` given) or locked on first download."""
    sha = hashlib.sha256(local.read_bytes()).hexdigest() if local is not None else None
    size = local.stat().st_size if local is not None else None
    src = Source(key, "hf", "demo-org/images", REV, key.rsplit("/", 1)[1], sha, size, tuple(used_by), "MIT",
                 archive=fmt)
    monkeypatch.setitem(SOURCES, key, src)
    return src


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "zip"])
def test_downloaded_verified_unpacked_and_reused(server, env, monkeypatch, capsys, fmt):
    images = {f"imgs/{i}.png": _png(env, i) for i in range(3)}
    local = _build(env / f"imgs.{fmt}", fmt, images)
    src = _registered(monkeypatch, f"demo/imgs.{fmt}", fmt)  # locked on first download, as the real ones
    url = _serve(server, src, local)
    assert data_cli(["list", src.key]) == 0
    assert f"{fmt} archive, unpacked into demo/ (not unpacked)" in capsys.readouterr().out
    p = fetch(src)
    assert p == data_cache_dir() / src.key and p.read_bytes() == local.read_bytes()  # the archive is kept
    for name, data in images.items():
        assert (data_cache_dir() / "demo" / name).read_bytes() == data
    assert lock.locked(src)["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert lock.locked(src)["declared"] == "sha256" and [h for h, _ in server.heads] == [url]
    record = archive.read_record(p)
    assert record["members"] == {n: len(d) for n, d in images.items()}
    assert not [q for q in (data_cache_dir() / "demo").iterdir() if q.name.startswith(".unpack-")]
    # reused: no request, no unpacking (a member's mtime is unchanged)
    n_get, n_head = server.count(), len(server.heads)
    stamp = (data_cache_dir() / "demo" / "imgs" / "0.png").stat().st_mtime_ns
    assert fetch_key(src.key) == p and fetch_key("demo") == data_cache_dir() / "demo"
    assert (server.count(), len(server.heads)) == (n_get, n_head)
    assert (data_cache_dir() / "demo" / "imgs" / "0.png").stat().st_mtime_ns == stamp
    assert data_cli(["list", src.key]) == 0
    assert f"cached   {src.key}" in (out := capsys.readouterr().out) and "(unpacked)" in out
    assert data_cli(["verify", src.key]) == 0
    # a damaged member: verify names it; the next use unpacks again from the kept (verified) archive
    (data_cache_dir() / "demo" / "imgs" / "1.png").write_bytes(b"short")
    assert data_cli(["verify", src.key]) == 1
    assert "1.png" in capsys.readouterr().err
    fetch(src)
    assert (data_cache_dir() / "demo" / "imgs" / "1.png").read_bytes() == images["imgs/1.png"]
    assert server.count() == n_get and data_cli(["verify", src.key]) == 0


def test_tampered_archive_is_rejected(server, env, monkeypatch):
    images = {"imgs/0.png": _png(env, 0), "imgs/1.png": _png(env, 1)}
    local = _build(env / "imgs.tar", "tar", images)
    src = _registered(monkeypatch, "demo/imgs.tar", "tar")
    url = _serve(server, src, local)
    server.corrupt.add(url)  # the body differs from what the Hub declares (X-Linked-Etag)
    with pytest.raises(DataIntegrityError, match=r"demo/imgs\.tar.*declares.*sha256"):
        fetch(src)
    assert not (data_cache_dir() / "demo" / "imgs").exists() and src.key not in lock.entries()
    server.corrupt.clear()
    p = fetch(src)
    # the cached archive altered on disk: an error naming it; nothing is unpacked from it
    (data_cache_dir() / "demo" / "imgs" / "0.png").unlink()
    data = bytearray(p.read_bytes())
    data[600] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match=r"cached data file does not match.*demo/imgs\.tar"):
        fetch(src)
    assert not (data_cache_dir() / "demo" / "imgs" / "0.png").exists()
    assert data_cli(["verify", src.key]) == 1
    # once locked, a re-download must have the locked bytes even if the Hub declares other bytes consistently
    p.unlink()
    server.files[url] = _build(env / "other.tar", "tar", {"imgs/0.png": _png(env, 5)})
    with pytest.raises(DataIntegrityError, match=r"demo/imgs\.tar.*expected .*sources\.lock\.json"):
        fetch(src)


def _evil_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("imgs/0.png")
        ok.size = 3
        tf.addfile(ok, io.BytesIO(b"png"))
        info = tarfile.TarInfo({"dotdot": "imgs/../../evil.png", "absolute": "/tmp/evil.png"}.get(kind, "imgs/x.png"))
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "imgs/0.png"
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        elif kind == "registered":
            info.name = "data.json"  # would overwrite the registered demo/data.json
        if info.isfile():
            info.size = 4
            tf.addfile(info, io.BytesIO(b"evil"))
        else:
            tf.addfile(info)
    return path


def _evil_zip(path: Path, kind: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("imgs/0.png", b"png")
        if kind == "zip-symlink":
            info = zipfile.ZipInfo("imgs/link.png")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr("..\\evil.png", b"evil")  # a Windows-style parent path
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "fifo", "registered",
                                  "zip-symlink", "zip-backslash"])
def test_unsafe_member_is_refused_and_nothing_unpacked(server, env, monkeypatch, kind):
    fmt = "zip" if kind.startswith("zip") else "tar"
    local = (_evil_zip if fmt == "zip" else _evil_tar)(env / f"evil.{fmt}", kind)
    monkeypatch.setitem(SOURCES, "demo/data.json", Source("demo/data.json", "hf", "demo-org/images", REV,
                                                          "data.json", "0" * 64, 1, (), "MIT"))
    src = _registered(monkeypatch, f"demo/evil.{fmt}", fmt, local)
    _serve(server, src, local)
    member = {"dotdot": "imgs/../../evil.png", "absolute": "/tmp/evil.png", "registered": "data.json",
              "zip-symlink": "imgs/link.png", "zip-backslash": "..\\evil.png"}.get(kind, "imgs/x.png")
    with pytest.raises(DataIntegrityError, match=re.escape(f"demo/evil.{fmt}: unsafe member {member!r}")) as e:
        fetch(src)
    assert "nothing unpacked" in str(e.value)
    demo = data_cache_dir() / "demo"
    assert sorted(q.name for q in demo.iterdir() if not q.name.endswith(".lock")) == [f"evil.{fmt}"]
    assert not (env / "evil.png").exists() and not (data_cache_dir() / "evil.png").exists()
    assert archive.read_record(demo / f"evil.{fmt}") is None


def test_offline_archive_is_a_missing_data_skip(server, env, monkeypatch):
    local = _build(env / "imgs.zip", "zip", {"imgs/0.png": _png(env, 0)})
    src = _registered(monkeypatch, "demo/imgs.zip", "zip", local)
    _serve(server, src, local)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataDownloadError, match="HF_HUB_OFFLINE"):
        fetch(src)
    assert server.count() == 0


# -- a benchmark's loader finds its images through the cache ---------------------------------------------
REPLIES = {0: '{"label": 1, "label_str": "Safe with refusal"}', 1: '{"label": 3, "label_str": "Unsafe"}',
           2: '{"label": 2, "label_str": "Safe with warning"}', 3: '{"label": 2, "label_str": "Safe with warning"}'}


def _judge_reply(req) -> str:
    text = req.messages[0]["content"][-1]["text"]
    return REPLIES[next(r["instruction_id"] for r in VLS_ROWS if f"<text_query>: {r['instruction']}" in text)]


def test_vlsbench_finds_its_images_in_the_registered_archive(server, env):
    """data.json in data_dir without images (as in ../shared/data): the loader fetches the registered
    imgs.tar (Foreshhh/vlsbench at its pinned revision) from the loopback Hub, and the target sees them."""
    src = SOURCES["vlsbench/imgs.tar"]
    assert (src.archive, src.unpack_dir, src.used_by) == ("tar", "vlsbench", ("eval.vlsbench",))
    images = {r["image_path"]: _png(env, r["instruction_id"]) for r in VLS_ROWS[:4]}  # the 5th row has none
    _serve(server, src, _build(env / "imgs.tar", "tar", images))
    data_dir = env / "data"
    (data_dir / "vlsbench").mkdir(parents=True)
    (data_dir / "vlsbench" / "data.json").write_text(json.dumps(VLS_ROWS), encoding="utf-8")

    def run(name):
        target, judge_gen = ScriptedGenerator("Here you go."), ScriptedGenerator(_judge_reply)
        judges = {"vlsbench": VLSBenchJudge(judge_gen), "refusal": RefusalJudge()}
        ctx = EvalContext(generator=target, judge_factory=judges.__getitem__, run_dir=env / name, data_dir=data_dir,
                          generation=GenerationConfig(batch_size=4), model_name="vlm")
        return get_benchmark("vlsbench")(ctx, BenchmarkConfig()), target

    res, target = run("run1")
    m = res["metrics"]
    assert res["n_items"] == 4 and m["n_skipped_missing_image"] == 1
    assert (m["unsafe_rate"]["count"], m["safe_rate"]["count"], m["safe_rate"]["n"]) == (1, 3, 4)
    seen = {r.id: r.messages[-1]["content"][0]["path"] for r in target.requests}
    for r in VLS_ROWS[:4]:
        path = Path(seen[str(r["instruction_id"])])
        assert path == data_cache_dir() / "vlsbench" / r["image_path"]
        assert path.read_bytes() == images[r["image_path"]]
    assert server.count("imgs.tar") == 2  # the Hub's redirect, then the CDN
    res, _ = run("run2")  # reused: nothing downloaded again
    assert res["n_items"] == 4 and server.count("imgs.tar") == 2


def test_ch3ef_data_and_zip_from_the_hub_without_data_dir(server, env):
    """Ch3Ef with no data_dir: Harmless.json and Harmless_images.zip (openlamm/Ch3Ef at the registered revision)
    come from the loopback Hub, locked on first download; the zip unpacks under the folder holding meta_file/,
    where the items' relative image paths point."""
    from deepsight.judges.ch3ef import Ch3EfChoiceJudge

    meta = Path(__file__).parent / "fixtures" / "evals" / "ch3ef" / "meta_file" / "Harmless.json"
    rows = json.loads(meta.read_text())["items"]
    rels = sorted({rel for r in rows for rel in r["image"]})
    images = {rel: _png(env, k) for k, rel in enumerate(rels)}
    zsrc, jsrc = SOURCES["ch3ef/Harmless_images.zip"], SOURCES["ch3ef/meta_file/Harmless.json"]
    assert (zsrc.archive, zsrc.unpack_dir, jsrc.revision) == ("zip", "ch3ef", zsrc.revision)
    _serve(server, zsrc, _build(env / "Harmless_images.zip", "zip", images))
    _serve(server, jsrc, meta)
    target = ScriptedGenerator("[[A]]")
    ctx = EvalContext(generator=target, judge_factory={"ch3ef_choice": Ch3EfChoiceJudge()}.__getitem__,
                      run_dir=env / "run", data_dir=None, generation=GenerationConfig(batch_size=4), model_name="vlm")
    res = get_benchmark("ch3ef")(ctx, BenchmarkConfig())
    m = res["metrics"]
    assert res["n_items"] == len(rows) and m["n_missing_images"] == 0 and m["accuracy_all"]["value"] == 1.0
    seen = [p["path"] for r in target.requests for p in r.messages[-1]["content"] if p.get("type") == "image"]
    assert sorted(seen) == sorted(str(data_cache_dir() / "ch3ef" / rel) for r in rows for rel in r["image"])
    assert all(Path(p).read_bytes() == images[Path(p).relative_to(data_cache_dir() / "ch3ef").as_posix()]
               for p in seen)
    assert lock.locked(zsrc) is not None and lock.locked(jsrc) is not None
