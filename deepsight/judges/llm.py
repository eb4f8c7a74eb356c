"""LLM judges: a generation backend + a prompt template + a verdict parser.

``LLMJudge`` owns the common loop: build requests, call the backend in batches,
and turn every failure into an ``unknown`` verdict with its reason --
``judge_unavailable`` (the backend could not be built), ``judge_call_failed``
(the call raised or returned ``finish_reason="error"``), ``unparseable`` (the
reply does not follow the judge's output format), ``parse_error``. Subclasses give
``request`` (the prompt) and ``parse`` (the reply -> verdict) and can be tested by
feeding reply strings to ``parse``.

The backend is any ``deepsight.generation.base.Generator`` or a zero-argument
callable building one (built on first use, so an unused judge costs nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepsight.generation.base import Generation, GenerationRequest, Generator, SamplingParams
from deepsight.judges.base import JudgeInput, Verdict, unknown


def fill(template: str, **values: str | None) -> str:
    """Replace ``{name}`` placeholders literally (no str.format: replies contain braces)."""
    out = template
    for k, v in values.items():
        out = out.replace("{" + k + "}", v or "")
    return out


def clip_words(text: str, max_tokens: int) -> str:
    """Keep about ``max_tokens`` tokens of ``text`` (whitespace words; used when no tokenizer is given)."""
    words = text.split(" ")
    return text if len(words) <= max_tokens else " ".join(words[:max_tokens])


class LLMJudge:
    name = "llm"
    template_version = "1"  # bump when the prompt changes: it is part of the resume key
    labels: tuple[str, ...] = ()

    def __init__(
        self,
        backend: Generator | Callable[[], Generator],
        model: str = "",
        max_new_tokens: int = 512,
        batch_size: int = 16,
    ):
        self._backend_or_builder = backend
        self._backend: Generator | None = None
        self._error: str | None = None
        self.model = model
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
        self.batch_size = max(1, batch_size)

    # -- to override -------------------------------------------------------------
    def request(self, inp: JudgeInput, rid: str) -> GenerationRequest:
        raise NotImplementedError

    def parse(self, reply: str, inp: JudgeInput) -> Verdict:
        raise NotImplementedError

    def harmful(self, verdict: Verdict) -> bool | None:
        raise NotImplementedError

    # -- common loop -------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "template": self.template_version,
            "max_new_tokens": self.params.max_new_tokens,
        }

    def backend(self) -> Generator:
        if self._backend is None and self._error is None:
            b = self._backend_or_builder
            try:
                self._backend = b if hasattr(b, "generate") else b()
            except Exception as e:  # recorded once; every verdict of this judge says why
                self._error = f"{type(e).__name__}: {e}"
        if self._backend is None:
            raise RuntimeError(self._error)
        return self._backend

    def verdict(self, gen: Generation, inp: JudgeInput) -> Verdict:
        if gen.failed:
            return unknown(f"judge_call_failed: {gen.error}", gen.text or None)
        try:
            return self.parse(gen.text, inp)
        except Exception as e:
            return unknown(f"parse_error: {type(e).__name__}: {e}", gen.text)

    def judge(self, inputs: list[JudgeInput]) -> list[Verdict]:
        try:
            backend = self.backend()
        except RuntimeError as e:
            return [unknown(f"judge_unavailable: {e}") for _ in inputs]
        out: list[Verdict] = []
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start : start + self.batch_size]
            reqs = [self.request(x, f"judge-{start + i}") for i, x in enumerate(chunk)]
            try:
                gens = backend.generate(reqs, self.params)
                assert len(gens) == len(reqs), f"backend returned {len(gens)} generations for {len(reqs)} requests"
            except Exception as e:
                out += [unknown(f"judge_call_failed: {type(e).__name__}: {e}") for _ in chunk]
                continue
            out += [self.verdict(g, x) for g, x in zip(gens, chunk)]
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
