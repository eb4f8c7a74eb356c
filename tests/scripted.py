"""Test doubles of a generation backend: deterministic, scripted replies (no model)."""

from __future__ import annotations

from collections.abc import Callable

from deepsight.generation.base import Generation, GenerationRequest, SamplingParams


def user_text(req: GenerationRequest) -> str:
    return req.prompt if req.prompt is not None else req.messages[-1]["content"]


class ScriptedGenerator:
    """Replies ``reply(request)``; records every request; can fail on chosen items or stop the run."""

    name = "scripted"

    def __init__(self, reply: Callable[[GenerationRequest], str] | str = "OK.", fail_ids: set[str] | None = None,
                 crash_after: int | None = None):
        self.reply = reply if callable(reply) else (lambda _r, text=reply: text)
        self.fail_ids = fail_ids or set()
        self.crash_after = crash_after  # raise KeyboardInterrupt after this many requests (a killed run)
        self.requests: list[GenerationRequest] = []
        self.params: list[SamplingParams] = []
        self.closed = False

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        out = []
        for r in requests:
            if self.crash_after is not None and len(self.requests) >= self.crash_after:
                raise KeyboardInterrupt("simulated kill")
            self.requests.append(r)
            self.params.append(params)
            if r.id in self.fail_ids:
                out.append(Generation(r.id, "", finish_reason="error", error="HTTP 500: scripted failure"))
            else:
                text = self.reply(r)
                out.append(Generation(r.id, text, 5, len(text.split())))
        return out

    def close(self) -> None:
        self.closed = True
