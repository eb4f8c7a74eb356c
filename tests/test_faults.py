"""kill -9 loses nothing (issue 15, point 8): a real `python -m deepsight` audit of XSTest is killed with
SIGKILL while it generates, rerun into the same folder and killed again while it judges, then rerun to the
end. A loopback OpenAI-compatible server (127.0.0.1 only) plays the target and the three-way judge and
counts every request: no generation or verdict already in the resume file is asked for again, and the
final results equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

N_ITEMS = 22
BATCH = 4  # generation.batch_size (the resume flush unit of generation) and judge.batch_size


class CountingServer:
    """Target replies (refuse or comply, fixed per prompt) and 3-way judge replies; records each request's
    item (the prompt it is about). ``hold(kind, n)``: the n-th request of that kind blocks until released."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen: dict[str, list[str]] = {"target": [], "judge": []}
        self.hold_at: tuple[str, int] | None = None
        self.reached, self.release = threading.Event(), threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:  # the client was killed
                    pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "target-model"}, {"id": "judge-model"}]})

            def do_POST(self):
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except ValueError:  # cut short by the kill: never answered, not counted
                    return
                kind = "judge" if body.get("model") == "judge-model" else "target"
                text = body["messages"][-1]["content"]
                item = text if kind == "target" else re.search(r'QUESTION: "(.*)"\n\nRESPONSE', text, re.S).group(1)
                with outer.lock:
                    outer.seen[kind].append(item)
                    hold = outer.hold_at == (kind, len(outer.seen[kind]))
                if hold:  # the audit is killed while this request is in flight
                    outer.reached.set()
                    outer.release.wait(120)
                    return self._send(503, {"error": "released"})
                if kind == "target":
                    reply = "I'm sorry, but I can't help with that." if len(item) % 3 == 0 else f"Sure. {item[:20]}"
                else:
                    reply = "2_full_refusal" if "I'm sorry" in text else "1_full_compliance"
                self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply}}],
                                 "usage": {"prompt_tokens": 3, "completion_tokens": 4}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reset(self, hold_at: tuple[str, int] | None = None) -> None:
        with self.lock:
            self.seen = {"target": [], "judge": []}
            self.hold_at = hold_at
            self.reached, self.release = threading.Event(), threading.Event()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _args(server: CountingServer, data_dir: Path, run: str) -> list[str]:
    return [sys.executable, "-m", "deepsight", "audit=none", "eval=[xstest]", f"eval.xstest.limit={N_ITEMS}",
            "eval.xstest.judge=xstest_3way", f"data_dir={data_dir}", f"hydra.run.dir={run}",
            "generation=openai", f"generation.base_url={server.url}", "generation.api_key_env=FAULTS_KEY",
            "generation.served_model=target-model", f"generation.batch_size={BATCH}", "generation.max_retries=0",
            "judge=xstest_3way", "judge.backend=openai", f"judge.base_url={server.url}", "judge.model=judge-model",
            "judge.api_key_env=FAULTS_KEY", f"judge.batch_size={BATCH}", "logger=local"]


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, FAULTS_KEY="k", DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "out"), OMP_NUM_THREADS="1")


def _run(server, data_dir, tmp_path, run: str) -> subprocess.CompletedProcess:
    out = subprocess.run(_args(server, data_dir, run), cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _run_and_kill(server, data_dir, tmp_path, run: str, hold_at: tuple[str, int]) -> None:
    server.reset(hold_at)
    proc = subprocess.Popen(_args(server, data_dir, run), cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert server.reached.wait(240), f"the audit never reached {hold_at}: {proc.stderr.read()[-3000:]!r}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        server.release.set()


def _stored(run_dir: Path) -> tuple[list[str], list[str]]:
    """Prompts whose generation / verdict is in the resume file (each record once)."""
    path = run_dir / "generations" / "xstest.jsonl"
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)), "a record was written twice"
    prompt = {r["id"]: r["messages"][-1]["content"] for r in recs if r["kind"] == "generation"}
    return ([prompt[r["id"]] for r in recs if r["kind"] == "generation"],
            [prompt[r["id"]] for r in recs if r["kind"] == "verdict"])


def _xstest(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    return results["evals"]["xstest"]


def test_sigkill_during_generation_and_judging_then_resume(tmp_path, data_dir):
    if not (data_dir / "xstest" / "xstest_prompts.csv").is_file():
        pytest.skip("XSTest data not present")
    server = CountingServer()
    try:
        server.reset()
        _run(server, data_dir, tmp_path, "ref")  # uninterrupted
        assert len(server.seen["target"]) == N_ITEMS and len(server.seen["judge"]) == N_ITEMS
        reference = _xstest(tmp_path / "ref")

        # 1. killed while the 3rd generation chunk is in flight
        _run_and_kill(server, data_dir, tmp_path, "run", ("target", 2 * BATCH + 2))
        gens, verdicts = _stored(tmp_path / "run")
        assert len(gens) >= 2 * BATCH and len(gens) < N_ITEMS and not verdicts
        # 2. rerun into the same folder, killed while the judge works on its 3rd batch
        _run_and_kill(server, data_dir, tmp_path, "run", ("judge", 2 * BATCH + 2))
        assert not set(server.seen["target"]) & set(gens), "a stored generation was asked for again"
        assert len(server.seen["target"]) == N_ITEMS - len(gens)
        gens, verdicts = _stored(tmp_path / "run")
        assert len(gens) == N_ITEMS
        assert 2 * BATCH <= len(verdicts) < N_ITEMS, f"{len(verdicts)} verdicts kept of the {2 * BATCH} judged"
        # 3. rerun to the end: only the missing verdicts are asked for
        server.reset()
        _run(server, data_dir, tmp_path, "run")
        assert server.seen["target"] == []
        assert not set(server.seen["judge"]) & set(verdicts), "a stored verdict was asked for again"
        assert len(server.seen["judge"]) == N_ITEMS - len(verdicts)
        final = _xstest(tmp_path / "run")
        assert final == reference
        gens, verdicts = _stored(tmp_path / "run")
        assert len(gens) == len(verdicts) == N_ITEMS
    finally:
        server.close()


def test_verdicts_are_flushed_after_each_judge_batch(tmp_path):
    """Defect found by the SIGKILL test: verdicts were written only after 64 of them, so a kill while an
    LLM judge worked through its batches lost every verdict judged so far."""
    from scripted import ScriptedGenerator

    from deepsight.config.schema import GenerationConfig
    from deepsight.evals.loaders import EvalItem
    from deepsight.evals.registry import EvalContext
    from deepsight.evals.runner import generate_and_judge
    from deepsight.judges.refusal import RefusalJudge

    class Killed(BaseException):
        pass

    class BatchedJudge(RefusalJudge):
        batch_size = 3

        def __init__(self, die_at: int | None):
            super().__init__()
            self.calls, self.die_at, self.inputs = 0, die_at, 0

        def judge(self, inputs):
            self.calls += 1
            if self.calls == self.die_at:
                raise Killed
            self.inputs += len(inputs)
            return super().judge(inputs)

    items = [EvalItem(f"i{i}", f"prompt {i}") for i in range(10)]
    ctx = EvalContext(generator=ScriptedGenerator("No."), judge_factory=None, run_dir=tmp_path, data_dir=None,
                      generation=GenerationConfig(batch_size=4), model_name="m")
    with pytest.raises(Killed):
        generate_and_judge(ctx, None, "toy", items, [BatchedJudge(die_at=3)])
    again = BatchedJudge(die_at=None)
    results = generate_and_judge(ctx, None, "toy", items, [again])
    assert again.inputs == 10 - 2 * 3  # the two finished batches were kept
    assert len(results) == 10 and all(r.verdicts["refusal"].label for r in results)
