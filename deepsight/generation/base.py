"""The generation interface every backend implements.

Messages in, text and token counts out. A failed request is a ``Generation``
with ``finish_reason="error"`` and the error text, never an empty answer that
a judge would then score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class GenerationRequest:
    id: str  # stable item id
    messages: list[dict[str, str]] = field(default_factory=list)  # chat messages (role, content)
    prompt: str | None = None  # raw text prompt: used as is, no chat template
    system_prompt: str | None = None  # prepended as a system message when messages are used


@dataclass
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    stop: list[str] | None = None

    def key(self) -> dict:
        """The fields that change a generation (part of the resume hash)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
        }


@dataclass
class Generation:
    id: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # stop | length | error
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.finish_reason == "error"


class Generator(Protocol):
    """A backend: ``generate`` keeps the order of ``requests``."""

    name: str

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]: ...

    def close(self) -> None: ...
