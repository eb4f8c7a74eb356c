"""Backend for any OpenAI-compatible server (vLLM, SGLang, llama.cpp, hosted APIs) over httpx.

Chat requests go to ``POST {base_url}/chat/completions`` (the server applies its own chat
template; image parts of a message are sent as ``image_url`` parts with base64 data URLs of the
files, see images.py); raw ``prompt`` requests to ``POST {base_url}/completions``. Requests run
concurrently under an ``asyncio.Semaphore(concurrency)``, each with a timeout; 429, 5xx and
connection/timeout errors are retried with exponential backoff and full jitter (honouring a
numeric ``Retry-After``), up to ``max_retries`` retries. A request that still fails becomes a
``Generation`` with ``finish_reason="error"`` and the reason, never an empty answer.

The API key is read from the environment variable *named* by ``api_key_env`` and nothing
else; it is sent only in the Authorization header and redacted from every error message.

    gen = OpenAIServerGenerator("http://127.0.0.1:8000/v1", model="smollm2", api_key_env="MY_KEY")
"""

from __future__ import annotations

import asyncio
import os
import random
import threading

import httpx

from deepsight.errors import ConfigError, DeepSightError
from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.hf import request_seed
from deepsight.generation.images import message_images, openai_messages
from deepsight.generation.prompts import chat_messages

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A failure worth another try (status 429/5xx, a dropped connection, a timeout)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Fatal(Exception):
    """A failure another try will not fix (4xx other than 408/409/429, a malformed response)."""


def read_api_key(api_key_env: str | None) -> str | None:
    """The key from the environment variable named ``api_key_env``; None when no variable is named."""
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env)
    if not key:
        raise ConfigError(f"generation.api_key_env={api_key_env!r}: that environment variable is not set or empty")
    return key


class OpenAIServerGenerator:
    """The ``openai`` backend. ``model=None`` asks the server (``GET /models``) and uses its first model."""

    name = "openai"

    def __init__(self, base_url: str, *, model: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 4,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, system_prompt: str | None = None):
        if not base_url:
            raise ConfigError("generation.base_url is required for the openai backend (e.g. http://127.0.0.1:8000/v1)")
        if concurrency < 1:
            raise ConfigError(f"generation.concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ConfigError(f"generation.max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = read_api_key(api_key_env)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.system_prompt = system_prompt

    # ---- public interface -------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        return _run_sync(self.agenerate(requests, params))

    async def agenerate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        """Async form of ``generate``; results in input order."""
        if not requests:
            return []
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), limits=limits,
                                     headers=self._headers()) as client:
            model = self.model or await self._first_served_model(client)
            semaphore = asyncio.Semaphore(self.concurrency)

            async def one(r: GenerationRequest) -> Generation:
                async with semaphore:
                    return await self._generate_one(client, model, r, params)

            return list(await asyncio.gather(*(one(r) for r in requests)))

    def close(self) -> None:
        """Nothing to release: each ``generate`` call opens and closes its own connection pool."""

    # ---- one request ------------------------------------------------------------------------------

    async def _generate_one(self, client: httpx.AsyncClient, model: str, request: GenerationRequest,
                            params: SamplingParams) -> Generation:
        try:
            path, body = self._request_body(model, request, params)
        except DeepSightError as exc:  # a bad request or an unreadable image file
            return Generation(id=request.id, text="", finish_reason="error", error=str(exc))
        last_error = ""
        for attempt in range(self.max_retries + 1):
            try:
                data = await self._post(client, path, body)
                return _parse_response(request.id, data, chat=path == "/chat/completions")
            except _Fatal as exc:
                return Generation(id=request.id, text="", finish_reason="error", error=self._redact(str(exc)))
            except _Retryable as exc:
                last_error = str(exc)
                if attempt == self.max_retries:
                    break
                await asyncio.sleep(self._backoff(attempt, exc.retry_after))
        error = f"failed after {self.max_retries + 1} attempts: {last_error}"
        return Generation(id=request.id, text="", finish_reason="error", error=self._redact(error))

    def _request_body(self, model: str, request: GenerationRequest, params: SamplingParams) -> tuple[str, dict]:
        body: dict = {
            "model": model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": request_seed(params.seed, request.id) % (2**31),  # per request, like the hf backend
            "n": 1,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if request.prompt is not None:
            return "/completions", dict(body, prompt=request.prompt)
        messages = chat_messages(request, self.system_prompt)
        if message_images(messages):  # image parts go as base64 data URLs, to this server only
            messages = openai_messages(messages)
        return "/chat/completions", dict(body, messages=messages)

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict) -> dict:
        url = self.base_url + path
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout after {self.timeout_s}s ({type(exc).__name__}) from {url}") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection error ({type(exc).__name__}: {exc}) to {url}") from exc
        if response.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {response.status_code} from {url}: {_short(response.text)}",
                             retry_after=_retry_after(response))
        if response.status_code >= 400:
            raise _Fatal(f"HTTP {response.status_code} from {url}: {_short(response.text)}")
        try:
            return response.json()
        except ValueError as exc:
            raise _Fatal(f"response from {url} is not JSON: {_short(response.text)}") from exc

    async def _first_served_model(self, client: httpx.AsyncClient) -> str:
        url = self.base_url + "/models"
        try:
            response = await client.get(url)
            response.raise_for_status()
            models = [m["id"] for m in response.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"generation.served_model is not set and {url} did not list models: {self._redact(str(exc))}"
            ) from exc
        if not models:
            raise ConfigError(f"generation.served_model is not set and {url} lists no model")
        return models[0]

    # ---- helpers ----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))  # full jitter

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[REDACTED]") if self._api_key else text

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIServerGenerator(base_url={self.base_url!r}, model={self.model!r})"


def _parse_response(request_id: str, data: dict, *, chat: bool) -> Generation:
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
    except (KeyError, IndexError, TypeError) as exc:
        raise _Fatal(f"malformed response (no choices[0].{'message.content' if chat else 'text'}): "
                     f"{_short(str(data))}") from exc
    if text is None:
        raise _Fatal(f"the response has no text content: {_short(str(data))}")
    usage = data.get("usage") or {}
    reason = choice.get("finish_reason") or "stop"
    return Generation(
        id=request_id,
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason="length" if reason == "length" else "stop",
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _run_sync(coro):
    """Run ``coro`` to completion from synchronous code, also when an event loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="deepsight-openai")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
