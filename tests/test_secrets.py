"""The one scrubber (deepsight/util/scrub.py): every probe of issue 15, on strings and on a real run's files."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepsight.util.scrub import REDACTED, scrub_results, scrub_secrets, scrub_text

REPO = Path(__file__).resolve().parent.parent

# (text, the secret part that must vanish, a part that must stay)
PROBES = [
    ("https://user:hunter2pass@host:8000/v1", "hunter2pass", "https://user:"),
    ("see http://alice:s3cr3t@10.0.0.1/x?y=1 now", "s3cr3t", "10.0.0.1/x?y=1"),
    ("https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git", "ghp_abcdefghij", "@github.com/o/r.git"),
    ("http://h/v1/models?api_key=abc123xyz&limit=5", "abc123xyz", "limit=5"),
    ("https://h/p?key=AAAbbbCCC&token=TTTuuu#frag", "AAAbbbCCC", "#frag"),
    ("https://h/p?key=AAAbbbCCC&token=TTTuuu#frag", "TTTuuu", "https://h/p?"),
    ("OPENAI sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t here", "sk-proj-Ab3dEf6h", "OPENAI"),
    ("key sk-abcdef123456789 end", "sk-abcdef123456789", "end"),
    ("anthropic=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv-wxyz", "AbCdEfGhIjKl", "anthropic"),
    ("tag:hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "hf_AbCdEfGhIj", "tag"),
    ("aws AKIAIOSFODNN7EXAMPLE in a tag", "AKIAIOSFODNN7EXAMPLE", "in a tag"),
    ("google AIzaSyA-1234567890abcdefghijklmnopqrstu!", "AIzaSyA-1234567890", "google"),
    ("gh gho_16C7e42F292c6912E7710c838347Ae178B4a", "gho_16C7e42F", "gh"),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11ABC", "pat"),
    ("Authorization: Bearer eyJhbGciOi.abc-def_ghi", "eyJhbGciOi", "Authorization: Bearer"),
    ("+generation.engine_args={api_key:v3rys3cret,dtype:bf16}", "v3rys3cret", "dtype:bf16"),
    ("generation.engine_args.api_key=v3rys3cret", "v3rys3cret", "generation.engine_args.api_key="),
    ("{'api_key': 'abc', 'password': \"pw1234\"}", "pw1234", "'api_key'"),
]


@pytest.mark.parametrize("text,secret,kept", PROBES)
def test_probe_strings(text, secret, kept):
    out = scrub_text(text)
    assert secret not in out and REDACTED in out, out
    assert kept in out, out


@pytest.mark.parametrize("text", ["max_new_tokens=256 tokenizer=gpt2", "task-manager sk-learn", "hf_transfer_enabled",
                                  "api_key_env=OPENAI_API_KEY", "model.name=../../x", "https://host:8000/v1",
                                  "commit 0123456789abcdef0123456789abcdef01234567", "key points: none",
                                  "Key: the answer is 4", "max_tokens: 256", ""])
def test_harmless_text_is_kept(text):
    assert scrub_text(text) == text


def test_nested_secret_keys_and_results():
    cfg = {"generation": {"engine_args": {"api_key": "plain-looking", "nested": {"hf_token": "x"}, "dtype": "bf16"}},
           "logger": {"tags": ["ok", "AKIAIOSFODNN7EXAMPLE"]}}
    out = scrub_secrets(cfg)
    assert out["generation"]["engine_args"] == {"api_key": REDACTED, "nested": {"hf_token": REDACTED}, "dtype": "bf16"}
    assert out["logger"]["tags"] == ["ok", REDACTED]
    results = {"config": cfg, "model": {"path": "https://u:pw99@h/m"},
               "scans": {"mi_peaks": {"metrics": {"thinking_tokens": [{"token": "so", "count": 5}]},
                                      "config": {"password": "p"}}},
               "evals": {"x": {"reason": "HTTP 403 from https://h/v1?api_key=zzz999", "examples": [{"token": "t"}]}}}
    safe = scrub_results(results)
    assert safe["scans"]["mi_peaks"]["metrics"]["thinking_tokens"][0]["token"] == "so"  # data keys stay readable
    assert safe["scans"]["mi_peaks"]["config"]["password"] == REDACTED
    dumped = json.dumps(safe)
    assert "zzz999" not in dumped and "pw99" not in dumped and "plain-looking" not in dumped
    assert results["evals"]["x"]["reason"].endswith("zzz999")  # input untouched


def test_log_records_are_scrubbed(caplog):
    from deepsight.util.scrub import install_log_scrubber

    install_log_scrubber()
    log = logging.getLogger("deepsight.test_secrets")
    with caplog.at_level(logging.INFO, logger="deepsight.test_secrets"):
        log.info("calling %s with key %s", "https://u:pw77@h/v1", "sk-abcdef123456789")
        try:
            raise RuntimeError("token=tok55tok failed")
        except RuntimeError:
            log.exception("boom")
    text = caplog.text
    assert "pw77" not in text and "sk-abcdef123456789" not in text and "tok55tok" not in text
    assert "https://u:***@h/v1" in text and "RuntimeError" in text


SECRETS = {
    "url_password": "hunter2pass",
    "engine_api_key": "plainEngineSecret",
    "tag_key": "AKIAIOSFODNN7EXAMPLE",
    "query_key": "qkey12345",
}


def test_a_real_run_writes_no_secret(tmp_path):
    """The CLI with secrets in overrides, W&B offline: no file under the run folder contains any of them."""
    pytest.importorskip("wandb")
    env = dict(os.environ, DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "out"), WANDB_MODE="offline",
               WANDB_SILENT="true", NETRC=str(tmp_path / "no_netrc"))
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_DIR", None)
    args = ["audit=none", "hydra.run.dir=run",
            f"generation.base_url='https://user:{SECRETS['url_password']}@host:8000/v1?api_key={SECRETS['query_key']}'",
            f"+generation.engine_args.api_key={SECRETS['engine_api_key']}",
            "logger=wandb", "logger.mode=offline", f"logger.tags=[ok,{SECRETS['tag_key']}]"]
    out = subprocess.run([sys.executable, "-m", "deepsight", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "run"
    written = [f for f in run.rglob("*") if f.is_file()]
    names = {f.relative_to(run).as_posix() for f in written}
    assert {"results.json", "config.yaml", "report.md", "report.html", ".hydra/config.yaml",
            ".hydra/hydra.yaml", ".hydra/overrides.yaml"} <= names, names
    assert any(n.endswith(".wandb") for n in names), names  # the offline transaction log
    for f in written:
        data = f.read_bytes()
        for what, secret in SECRETS.items():
            assert secret.encode() not in data, f"{what} leaked into {f.relative_to(run)}"
    overrides = (run / ".hydra" / "overrides.yaml").read_text()
    assert "https://user:***@host:8000/v1" in overrides  # scrubbed, not dropped
    config = json.loads((run / "results.json").read_text())["config"]
    assert config["generation"]["engine_args"]["api_key"] == REDACTED
    for stream in (out.stdout, out.stderr):
        assert not any(s in stream for s in SECRETS.values())
