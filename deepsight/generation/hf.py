"""In-process Hugging Face backend: length-sorted dynamic batching over ``decode_batch``.

Requests are encoded (chat template, system prompt: ``prompts.py``), sorted by prompt length
(longest first, so an out-of-memory shows up on the first batch), and cut into batches of at
most ``batch_size`` rows whose KV footprint ``rows * (longest prompt + max_new_tokens)`` stays
within ``max_batch_tokens``. Each batch is decoded with left padding, mask-aware positions, a KV
cache and per-row stopping at any EOS id of the tokenizer or the model's generation config; the
tokens all rows of a batch start with (the chat template's system prompt) are run once.
On out-of-memory the batch size is halved and the same rows retried; a single row that still
does not fit becomes an error ``Generation``. Results come back in input order.

    gen = HFGenerator(loaded.model, loaded.tokenizer, batch_size=32)
    outs = gen.generate([GenerationRequest("a", messages=[{"role": "user", "content": "Hi"}])],
                        SamplingParams(max_new_tokens=64))
"""

from __future__ import annotations

import gc
import hashlib

import torch

from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.decode import decode_batch
from deepsight.generation.prompts import encode_request
from deepsight.models.io import pad_id
from deepsight.util.oom import is_out_of_memory


def request_seed(seed: int, request_id: str) -> int:
    """A per-request sampling seed: the same request id and seed always draw the same sample."""
    digest = hashlib.sha256(f"{seed}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every id that ends a row: the tokenizer's EOS and the generation config's EOS id(s)."""
    generation_config = getattr(model, "generation_config", None)
    sources = [getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None)]
    ids: set[int] = set()
    for source in sources:
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return ids


def plan_batches(lengths: list[int], order: list[int], start: int, batch_size: int, max_new_tokens: int,
                 max_batch_tokens: int) -> list[int]:
    """The next batch: indices ``order[start:start+k]`` with k <= batch_size and k * (longest + new) <= budget."""
    longest = lengths[order[start]]  # order is longest first
    per_row = longest + max_new_tokens
    k = max(1, min(batch_size, max_batch_tokens // max(per_row, 1), len(order) - start))
    return order[start : start + k]


class HFGenerator:
    """The ``hf`` backend over an already loaded model and tokenizer."""

    name = "hf"

    def __init__(self, model, tokenizer, *, batch_size: int = 32, max_batch_tokens: int = 65536,
                 system_prompt: str | None = None):
        if batch_size < 1:
            raise ValueError(f"generation.batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size  # halved for the rest of the run after an out-of-memory
        self.max_batch_tokens = max_batch_tokens
        self.system_prompt = system_prompt
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = pad_id(tokenizer, self.eos_ids)

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        prompts = [encode_request(self.tokenizer, r, self.system_prompt) for r in requests]
        for r, p in zip(requests, prompts):
            if not p:
                raise ValueError(f"generation request {r.id!r} encodes to zero tokens")
        lengths = [len(p) for p in prompts]
        order = sorted(range(len(requests)), key=lambda i: -lengths[i])
        results: list[Generation | None] = [None] * len(requests)
        start = 0
        was_training = getattr(self.model, "training", False)
        if was_training:
            self.model.eval()
        try:
            while start < len(order):
                batch = plan_batches(lengths, order, start, self.batch_size, params.max_new_tokens,
                                     self.max_batch_tokens)
                oom: str | None = None
                try:
                    outs = self._run_batch([requests[i] for i in batch], [prompts[i] for i in batch], params)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    oom = str(exc)  # leave the except block first: the traceback pins the batch's tensors
                if oom is not None:
                    _free_accelerator_memory()
                    if len(batch) == 1:
                        results[batch[0]] = Generation(
                            id=requests[batch[0]].id, text="", prompt_tokens=lengths[batch[0]],
                            finish_reason="error", error=f"out of memory even at batch size 1: {oom}",
                        )
                        start += 1
                    else:
                        self.batch_size = max(1, len(batch) // 2)
                    continue
                for i, g in zip(batch, outs):
                    results[i] = g
                start += len(batch)
        finally:
            if was_training:
                self.model.train()
        assert all(r is not None for r in results), "every request gets a result"
        return results  # type: ignore[return-value]

    def _run_batch(self, requests: list[GenerationRequest], prompts: list[list[int]],
                   params: SamplingParams) -> list[Generation]:
        stop_check = self._stop_checker(params.stop) if params.stop else None
        out = decode_batch(
            self.model, prompts, max_new_tokens=params.max_new_tokens, eos_ids=self.eos_ids, pad_id=self.pad_id,
            temperature=params.temperature, top_p=params.top_p,
            seeds=[request_seed(params.seed, r.id) for r in requests], stop_check=stop_check, share_prefix=True,
        )
        gens = []
        for r, p, toks, reason in zip(requests, prompts, out.tokens, out.finish_reasons):
            body = toks[:-1] if toks and toks[-1] in self.eos_ids else toks
            text = self.tokenizer.decode(body, skip_special_tokens=True)
            if params.stop:
                text = _cut_at_stop(text, params.stop)
            gens.append(Generation(id=r.id, text=text, prompt_tokens=len(p), completion_tokens=len(toks),
                                   finish_reason=reason))
        return gens

    def _stop_checker(self, stop: list[str]):
        window = max(len(s) for s in stop) + 2  # a stop string of n characters spans at most n tokens

        def check(_row: int, toks: list[int]) -> bool:
            tail = self.tokenizer.decode(toks[-window:], skip_special_tokens=True)
            return any(s and s in tail for s in stop)

        return check

    def close(self) -> None:
        """The model belongs to the caller (it is shared with the white-box scans): only drop references."""
        self.model = None
        self.tokenizer = None
        _free_accelerator_memory()


def _cut_at_stop(text: str, stop: list[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


def _free_accelerator_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
