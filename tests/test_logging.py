"""Loggers: secret scrubbing, W&B mode resolution, and a W&B offline run whose files are read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_helpers import make_run

from deepsight.config.schema import LoggerConfig
from deepsight.errors import ConfigError
from deepsight.logging import LocalLogger, build_logger
from deepsight.util.scrub import REDACTED, is_secret_key, scrub_secrets

# ---------------------------------------------------------------- scrubbing


@pytest.mark.parametrize("key", ["api_key", "hf_token", "HF_TOKEN", "wandbApiKey", "secret", "client-secret",
                                 "password", "db.passwd", "auth", "access_token", "key", "private_key"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["max_new_tokens", "tokenizer", "n_thinking_tokens", "max_batch_tokens", "keys_per_row",
                                 "monkey", "author", "tokens", "path", "name"])
def test_not_secret_keys(key):
    assert not is_secret_key(key)


def test_scrub_nested_values_and_urls():
    cfg = {"generation": {"api_key_env": "OPENAI_API_KEY", "max_new_tokens": 64, "base_url":
                          "https://user:hunter2@host:8000/v1", "tokenizer": "x"},
           "judge": {"api_key": "sk-abcdef123456789", "hf_token": None, "list": [{"password": "p"}, "hf_ABCDEFGH1234"]},
           "note": "Bearer abc.def", "revision": "0123456789abcdef0123456789abcdef01234567",
           "api_key_env_bad": "not an env name!"}
    out = scrub_secrets(cfg)
    assert out["generation"]["api_key_env"] == "OPENAI_API_KEY"  # the variable's name, not its value
    assert out["generation"]["max_new_tokens"] == 64 and out["generation"]["tokenizer"] == "x"
    assert out["generation"]["base_url"] == f"https://user:{REDACTED}@host:8000/v1"
    assert out["judge"]["api_key"] == REDACTED and out["judge"]["hf_token"] is None
    assert out["judge"]["list"] == [{"password": REDACTED}, REDACTED]
    assert out["note"] == f"Bearer {REDACTED}"
    assert out["revision"] == cfg["revision"]  # a commit hash is not a secret
    assert out["api_key_env_bad"] == REDACTED
    assert cfg["judge"]["api_key"] == "sk-abcdef123456789"  # input untouched


# ---------------------------------------------------------------- mode and construction


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    return monkeypatch


def test_generation_rows_join_generations_and_verdicts():
    from deepsight.logging.wandb_logger import generation_rows

    recs = [{"kind": "generation", "id": 1, "messages": [{"role": "system", "content": "s"},
                                                         {"role": "user", "content": "q1"}], "text": "old"},
            {"kind": "verdict", "id": 1, "judge": "harmbench", "verdict": {"label": "unsafe"}},
            {"kind": "generation", "id": 1, "messages": [{"role": "user", "content": "q1"}], "text": "new"},
            {"kind": "verdict", "id": 1, "judge": "refusal", "verdict": {"label": "refusal"}},
            {"kind": "generation", "id": 2, "messages": "raw prompt", "text": "a2"}]
    rows = generation_rows(recs)
    assert [(r["id"], r["prompt"], r["response"]) for r in rows] == [("1", "q1", "new"), ("2", "raw prompt", "a2")]
    assert rows[0]["verdict/harmbench"] == "unsafe" and rows[0]["verdict/refusal"] == "refusal"
    assert "verdict/refusal" not in rows[1]
    assert generation_rows([{"a": 1}, {"a": 2}], limit=1) == [{"a": 1}]  # other files as they are


def test_mode_auto(clean_env, tmp_path):
    from deepsight.logging.wandb_logger import resolve_mode

    assert resolve_mode("auto") == "offline"
    assert resolve_mode("online") == "online" and resolve_mode("offline") == "offline"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    assert resolve_mode("auto") == "online"
    clean_env.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert resolve_mode("auto") == "offline"  # the login is for another host
    clean_env.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    clean_env.setenv("WANDB_MODE", "offline")
    assert resolve_mode("auto") == "offline"


def test_build_logger_choices(tmp_path):
    assert isinstance(build_logger(LoggerConfig(), {}, tmp_path), LocalLogger)
    assert isinstance(build_logger(LoggerConfig(name="wandb", mode="disabled"), {}, tmp_path), LocalLogger)
    with pytest.raises(ConfigError, match="logger.name"):
        build_logger(LoggerConfig(name="tensorboard"), {}, tmp_path)
    with pytest.raises(ConfigError, match="logger.mode"):
        build_logger(LoggerConfig(name="wandb", mode="sometimes"), {}, tmp_path)
    lg = build_logger(LoggerConfig(), {}, tmp_path)
    lg.log_results({"scans": {}, "evals": {}}, tmp_path)
    lg.finish()
    assert list(tmp_path.iterdir()) == []  # the local logger writes nothing


# ---------------------------------------------------------------- W&B offline


def _wandb_records(path: Path) -> list[bytes]:
    """Records of a .wandb transaction log (LevelDB-style log: 7-byte file header, 32 KiB blocks,
    chunks with a 7-byte header: crc32 (4), length (2, little-endian), type (1: full, 2: first, 3: middle, 4: last))."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, block, records, buf = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4: pos + 6], "little"), data[pos + 6]
        if length == 0 and kind == 0:
            pos += left
            continue
        buf += data[pos + 7: pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(buf)
            buf = b""
    return records


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_run_files(clean_env, tmp_path):
    pytest.importorskip("wandb")
    from wandb.proto import wandb_internal_pb2 as pb

    wandb_dir = tmp_path / "wandb_dir"
    wandb_dir.mkdir()
    clean_env.setenv("WANDB_MODE", "offline")
    clean_env.setenv("WANDB_DIR", str(wandb_dir))
    env_secret = "envsecret0123456789abcdef"
    clean_env.setenv("WANDB_API_KEY", env_secret)  # must never reach any file
    clean_env.setenv("DEEPSIGHT_TEST_TOKEN", env_secret)
    run = tmp_path / "run"
    results = make_run(run, model="tiny-llama")
    (run / "generations").mkdir()
    gens = [{"kind": "generation", "key": f"k{i}", "benchmark": "xstest", "id": f"g{i}",
             "messages": [{"role": "user", "content": f"p{i}"}], "system_prompt": None, "text": "r" * i,
             "prompt_tokens": 3, "completion_tokens": i, "finish_reason": "stop"} for i in range(7)]
    verdicts = [{"kind": "verdict", "key": f"v{i}", "benchmark": "xstest", "id": f"g{i}", "judge": "refusal",
                 "verdict": {"label": "refusal" if i % 2 else "unknown", "score": None, "fields": {},
                             "reason": None if i % 2 else "unparseable", "raw": None}} for i in range(7)]
    lines = [json.dumps(r) + "\n" for pair in zip(gens, verdicts) for r in pair]
    (run / "generations" / "xstest.jsonl").write_text("".join(lines) + '{"half')

    cfg = LoggerConfig(name="wandb", project="ds-test", group="grp", tags=["ci"])
    logger = build_logger(cfg, results["config"], run)
    assert logger.mode == "offline"
    logger.log_results(results, run)
    logger.finish()

    runs = list((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    rdir = runs[0]
    assert not (run / "wandb").exists()  # WANDB_DIR decides where
    # figures as images, examples / generations / stages as tables
    media = rdir / "files" / "media"
    for scan, res in results["scans"].items():
        for rel in res.get("figures", []):
            hits = list((media / "images" / "figures" / scan).glob(Path(rel).stem + "_*.png"))
            assert len(hits) == 1 and hits[0].read_bytes() == (run / rel).read_bytes(), rel
    tables = {p.relative_to(media / "table").as_posix().split("_0_")[0]: json.loads(p.read_text())
              for p in (media / "table").rglob("*.table.json")}
    assert set(tables) == {"examples/xstest", "generations/xstest", "stages"}
    assert tables["generations/xstest"]["columns"] == ["id", "prompt", "response", "finish_reason",
                                                        "completion_tokens", "verdict/refusal"]
    assert tables["generations/xstest"]["data"] == [
        [f"g{i}", f"p{i}", "r" * i, "stop", i, "refusal" if i % 2 else "unknown: unparseable"] for i in range(7)]
    ex = tables["examples/xstest"]
    assert len(ex["data"]) == 12 and "verdicts" in ex["columns"]
    assert {row[0] for row in tables["stages"]["data"]} == {"scan/broken_scan", "eval/harmbench"}

    # the transaction log: run (config, group, name), summary and history with the metrics
    recs = [pb.Record.FromString(b) for b in _wandb_records(next(rdir.glob("run-*.wandb")))]
    kinds = [r.WhichOneof("record_type") for r in recs]
    assert "run" in kinds, kinds
    run_rec = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
    assert run_rec.project == "ds-test" and run_rec.run_group == "grp" and run_rec.display_name == "tiny-llama"
    assert run_rec.job_type == "quick" and list(run_rec.tags) == ["ci"]
    config = {item.key: json.loads(item.value_json) for item in run_rec.config.update}
    assert config["generation"]["api_key_env"] == "OPENAI_API_KEY"
    assert config["judge"]["hf_token"] == REDACTED
    history = {_key(item): item.value_json for r in recs if r.WhichOneof("record_type") == "history"
               for item in r.history.item}
    xs = results["evals"]["xstest"]["metrics"]["refusal_rate"]
    assert float(history["eval/xstest/refusal_rate"]) == pytest.approx(xs["value"])
    assert float(history["eval/xstest/refusal_rate/ci_high"]) == pytest.approx(xs["ci_high"])
    assert float(history["scan/xboundary/separation_score"]) == pytest.approx(
        results["scans"]["xboundary"]["metrics"]["separation_score"])
    assert float(history["time/scan/xboundary"]) == pytest.approx(3.5)
    summary_keys = {_key(item) for r in recs if r.WhichOneof("record_type") == "summary" for item in r.summary.update}
    assert {"eval/xstest/refusal_rate", "scan/tellme/R_gap", "status"} <= summary_keys
    assert "exit" in kinds
    # no secret anywhere on disk
    for f in wandb_dir.rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            assert env_secret.encode() not in blob, f
            assert b"hf_abcdefghijklmnop" not in blob, f


def test_wandb_two_runs_in_one_process_group(clean_env, tmp_path):
    """A multirun logs one W&B run per model in the same process, in one group."""
    pytest.importorskip("wandb")
    clean_env.setenv("WANDB_MODE", "offline")
    clean_env.setenv("WANDB_DIR", str(tmp_path))
    for i, model in enumerate(("model-a", "model-b")):
        run = tmp_path / f"{i}_{model}"
        results = make_run(run, model=model, seed=i, figures=False)
        logger = build_logger(LoggerConfig(name="wandb", group="sweep1"), results["config"], run)
        logger.log_results(results, run)
        logger.finish()
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2


def test_multirun_cli_groups_wandb_runs_and_compare_reads_the_sweep(tmp_path):
    """`deepsight -m ... logger=wandb` offline: one W&B run per model, one group; deepsight-compare on the sweep."""
    pytest.importorskip("wandb")
    import os
    import subprocess
    import sys

    from wandb.proto import wandb_internal_pb2 as pb

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "out"))
    proc = subprocess.run([sys.executable, "-m", "deepsight", "-m", "audit=none", "logger=wandb", "model.name=a,b",
                           "hydra.sweep.dir=sweep/2026-11-28/10-00-00"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wandb sync" in proc.stderr + proc.stdout
    groups, names = set(), []
    for job in ("0_a", "1_b"):
        logs = list((tmp_path / "sweep" / "2026-11-28" / "10-00-00" / job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(logs) == 1, job
        run_rec = next(r.run for r in map(pb.Record.FromString, _wandb_records(logs[0]))
                       if r.WhichOneof("record_type") == "run")
        groups.add(run_rec.run_group)
        names.append(run_rec.display_name)
    assert groups == {"2026-11-28_10-00-00"} and names == ["0_a", "1_b"]
    from deepsight.report.compare import main

    assert main([str(tmp_path / "sweep"), "-o", str(tmp_path / "lb")]) == 0
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "| a | none | completed | 0 |" in md and "| b | none | completed | 0 |" in md


def test_wandb_failures_never_fail_the_run(clean_env, tmp_path, monkeypatch, caplog):
    wandb = pytest.importorskip("wandb")

    def broken_init(**kwargs):
        raise RuntimeError("no disk")

    monkeypatch.setattr(wandb, "init", broken_init)
    logger = build_logger(LoggerConfig(name="wandb", mode="offline"), {}, tmp_path)
    assert isinstance(logger, LocalLogger)
    assert "W&B logger unavailable (RuntimeError: no disk)" in caplog.text
    monkeypatch.undo()

    clean_env.setenv("WANDB_MODE", "offline")
    clean_env.setenv("WANDB_DIR", str(tmp_path))
    logger = build_logger(LoggerConfig(name="wandb"), {}, tmp_path)

    def broken_log(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(logger.run, "log", broken_log)
    logger.log_results(make_run(tmp_path / "run", figures=False), tmp_path / "run")
    logger.finish()
    assert "W&B logging failed" in caplog.text
