"""The openai backend against a small OpenAI-compatible HTTP server started here on 127.0.0.1.

The server's behaviour is scripted per test (answers, status codes, delays); it records every
request so the tests can check bodies, headers, retries and the concurrency limit.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deepsight.config.schema import GenerationConfig, ModelConfig
from deepsight.errors import ConfigError, DeepSightError
from deepsight.generation.base import GenerationRequest, SamplingParams
from deepsight.generation.factory import build_generator, sampling_params
from deepsight.generation.openai_server import OpenAIServerGenerator

KEY = "sk-test-SECRET-12345"


def chat_reply(body: dict) -> dict:
    """Echo the last user message upper-cased; usage counts words."""
    last = body["messages"][-1]["content"]
    return {
        "choices": [{"message": {"role": "assistant", "content": last.upper()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": sum(len(m["content"].split()) for m in body["messages"]),
                  "completion_tokens": len(last.split())},
    }


class FakeServer:
    """``handler(path, body, headers, attempt) -> (status, payload, extra_headers)``; attempt counts per item."""

    def __init__(self, handler: Callable, delay_s: float = 0.0):
        self.handler, self.delay_s = handler, delay_s
        self.requests: list[tuple[str, dict, dict]] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, payload, headers: dict | None = None):
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._reply(200, {"object": "list", "data": [{"id": "served-one"}, {"id": "other"}]})
                else:
                    self._reply(404, {"error": "no such path"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                item = json.dumps(body.get("messages") or body.get("prompt"))
                with outer.lock:
                    outer.requests.append((self.path, body, dict(self.headers)))
                    outer.attempts[item] = outer.attempts.get(item, 0) + 1
                    attempt = outer.attempts[item]
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    if outer.delay_s:
                        time.sleep(outer.delay_s)
                    status, payload, headers = outer.handler(self.path, body, dict(self.headers), attempt)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1
                self._reply(status, payload, headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def ok(path, body, headers, attempt):
    if path.endswith("/chat/completions"):
        return 200, chat_reply(body), {}
    return 200, {"choices": [{"text": body["prompt"][::-1], "finish_reason": "length"}],
                 "usage": {"prompt_tokens": 3, "completion_tokens": 4}}, {}


def chat(i: int, text: str | None = None, **kw) -> GenerationRequest:
    return GenerationRequest(id=f"q{i}", messages=[{"role": "user", "content": text or f"hello number {i}"}], **kw)


def make(url: str, **kw) -> OpenAIServerGenerator:
    kw.setdefault("model", "m")
    kw.setdefault("backoff_base_s", 0.01)
    return OpenAIServerGenerator(url, **kw)


def test_chat_and_completion_requests(monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", KEY)
    with FakeServer(ok) as srv:
        gen = make(srv.url, api_key_env="TEST_API_KEY", system_prompt="be safe")
        reqs = [chat(0), chat(1, system_prompt="own"), GenerationRequest("raw", prompt="abc")]
        outs = gen.generate(reqs, SamplingParams(max_new_tokens=7, temperature=0.5, top_p=0.8, stop=["\n"]))
    assert [o.id for o in outs] == ["q0", "q1", "raw"]
    assert outs[0].text == "HELLO NUMBER 0" and outs[0].completion_tokens == 3 and outs[0].prompt_tokens == 5
    assert outs[2].text == "cba" and outs[2].finish_reason == "length" and outs[2].completion_tokens == 4
    by_path = {}
    for path, body, headers in srv.requests:
        by_path.setdefault(path, []).append(body)
        assert headers["Authorization"] == f"Bearer {KEY}"
    chats = sorted(by_path["/v1/chat/completions"], key=lambda b: b["messages"][-1]["content"])
    assert chats[0]["messages"][0] == {"role": "system", "content": "be safe"}
    assert chats[1]["messages"][0] == {"role": "system", "content": "own"}
    assert chats[0]["model"] == "m" and chats[0]["max_tokens"] == 7 and chats[0]["stop"] == ["\n"]
    assert chats[0]["temperature"] == 0.5 and chats[0]["top_p"] == 0.8
    assert by_path["/v1/completions"][0]["prompt"] == "abc"


def test_results_keep_input_order_under_concurrency_limit():
    import random

    rng = random.Random(0)

    def slow(path, body, headers, attempt):
        time.sleep(rng.uniform(0.0, 0.05))
        return ok(path, body, headers, attempt)

    with FakeServer(slow, delay_s=0.02) as srv:
        outs = make(srv.url, concurrency=3).generate([chat(i) for i in range(15)], SamplingParams())
    assert [o.text for o in outs] == [f"HELLO NUMBER {i}" for i in range(15)]
    assert 2 <= srv.max_in_flight <= 3


def test_retries_on_5xx_and_429_then_succeeds():
    def flaky(path, body, headers, attempt):
        if attempt == 1:
            return 503, {"error": "overloaded"}, {}
        if attempt == 2:
            return 429, {"error": "rate limited"}, {"Retry-After": "0"}
        return ok(path, body, headers, attempt)

    with FakeServer(flaky) as srv:
        outs = make(srv.url, max_retries=3).generate([chat(0), chat(1)], SamplingParams())
    assert [o.text for o in outs] == ["HELLO NUMBER 0", "HELLO NUMBER 1"]
    assert not any(o.failed for o in outs)
    assert sorted(srv.attempts.values()) == [3, 3]


def test_exhausted_retries_give_error_with_key_redacted(monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", KEY)

    def always_500(path, body, headers, attempt):  # a server that echoes the auth header in its error
        return 500, {"error": f"internal, got auth {headers.get('Authorization')}"}, {}

    with FakeServer(always_500) as srv:
        (out,) = make(srv.url, api_key_env="TEST_API_KEY", max_retries=2).generate([chat(0)], SamplingParams())
    assert out.failed and out.text == "" and out.finish_reason == "error"
    assert "HTTP 500" in out.error and "3 attempts" in out.error
    assert KEY not in out.error and "[REDACTED]" in out.error
    assert list(srv.attempts.values()) == [3]


def test_client_errors_are_not_retried():
    with FakeServer(lambda *a: (400, {"error": "bad request: max_tokens too large"}, {})) as srv:
        (out,) = make(srv.url, max_retries=4).generate([chat(0)], SamplingParams())
    assert out.failed and "HTTP 400" in out.error and "max_tokens too large" in out.error
    assert list(srv.attempts.values()) == [1]


def test_timeout_is_retried_then_reported():
    with FakeServer(ok, delay_s=1.0) as srv:
        t0 = time.monotonic()
        (out,) = make(srv.url, timeout_s=0.2, max_retries=1).generate([chat(0)], SamplingParams())
        elapsed = time.monotonic() - t0
    assert out.failed and "timeout" in out.error
    assert list(srv.attempts.values()) == [2]
    assert elapsed < 1.5


def test_connection_refused_is_an_error_result():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    (out,) = make(f"http://127.0.0.1:{port}/v1", max_retries=1).generate([chat(0)], SamplingParams())
    assert out.failed and "connection error" in out.error


@pytest.mark.parametrize(
    "payload",
    [b"not json", {"choices": []}, {"choices": [{"message": {"role": "assistant", "content": None}}]}],
)
def test_malformed_responses_are_errors_not_empty_answers(payload):
    with FakeServer(lambda *a: (200, payload, {})) as srv:
        (out,) = make(srv.url).generate([chat(0)], SamplingParams())
    assert out.failed and out.error


def test_empty_content_is_a_real_empty_answer():
    reply = {"choices": [{"message": {"content": ""}, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}
    with FakeServer(lambda *a: (200, reply, {})) as srv:
        (out,) = make(srv.url).generate([chat(0)], SamplingParams())
    assert not out.failed and out.text == "" and out.completion_tokens == 1


def test_served_model_discovered_from_server():
    with FakeServer(ok) as srv:
        make(srv.url, model=None).generate([chat(0)], SamplingParams())
    assert srv.requests[0][1]["model"] == "served-one"


def test_api_key_only_from_named_env_var(monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY_VAR", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_KEY_VAR"):
        OpenAIServerGenerator("http://127.0.0.1:1/v1", api_key_env="NOT_SET_KEY_VAR")
    monkeypatch.setenv("TEST_API_KEY", KEY)
    gen = OpenAIServerGenerator("http://127.0.0.1:1/v1", api_key_env="TEST_API_KEY")
    assert KEY not in repr(gen) and KEY not in str(vars(gen).get("api_key_env", ""))
    with FakeServer(ok) as srv:
        make(srv.url).generate([chat(0)], SamplingParams())  # no key named: no Authorization header
    assert "Authorization" not in srv.requests[0][2]


def test_generate_works_inside_a_running_event_loop():
    import asyncio

    with FakeServer(ok) as srv:
        gen = make(srv.url)

        async def main():
            return gen.generate([chat(0)], SamplingParams())

        (out,) = asyncio.run(main())
    assert out.text == "HELLO NUMBER 0"


def test_factory_builds_openai_backend(monkeypatch):
    with FakeServer(ok) as srv:
        cfg = GenerationConfig(backend="openai", base_url=srv.url, served_model="x", concurrency=2,
                               system_prompt="sys", max_new_tokens=9)
        gen = build_generator(cfg, ModelConfig())
        (out,) = gen.generate([chat(0)], sampling_params(cfg))
        gen.close()
    body = srv.requests[0][1]
    assert out.text == "HELLO NUMBER 0" and body["model"] == "x" and body["max_tokens"] == 9
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert sampling_params(cfg, max_new_tokens=3).max_new_tokens == 3


def test_factory_rejects_unknown_backend_and_missing_url():
    with pytest.raises(ConfigError, match="generation.backend"):
        build_generator(GenerationConfig(backend="nope"), ModelConfig())
    with pytest.raises(ConfigError, match="base_url"):
        build_generator(GenerationConfig(backend="openai"), ModelConfig())


def test_vllm_backend_names_the_extra_when_vllm_is_missing():
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is importable here")
    except ImportError:
        pass
    with pytest.raises(DeepSightError, match=r"pip install deepsight\[vllm\]"):
        build_generator(GenerationConfig(backend="vllm"), ModelConfig(path="/nonexistent"))
