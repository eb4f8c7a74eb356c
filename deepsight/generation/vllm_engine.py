"""In-process vLLM engine backend: the scale-out path for large and MoE models.

vLLM is an optional extra (``pip install deepsight[vllm]``) imported only when this backend is
built. ``engine_args`` (``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``,
``enable_expert_parallel`` ...) go to ``vllm.LLM`` unchanged. Prompts are encoded by
``prompts.encode_request`` with vLLM's own tokenizer and passed as token ids, so this backend
sees exactly the tokens the hf backend sees (same chat template and system prompt rules).
Requests with image parts (images.py) go through ``LLM.chat`` with the images as data URLs, so
vLLM's multi-modal processor inserts the image inputs of the served image-text model (checked on the
real vLLM CPU engine with a tiny Idefics3 against the hf backend: tests/test_generation_vllm_images.py).

    gen = VLLMGenerator("/models/Qwen3-30B-A3B", engine_args={"tensor_parallel_size": 4})
"""

from __future__ import annotations

import gc
from typing import Any

from deepsight.errors import DeepSightError
from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.hf import request_seed
from deepsight.generation.images import message_images, openai_messages
from deepsight.generation.prompts import chat_messages, encode_request

INSTALL_HINT = "pip install deepsight[vllm]"


def import_vllm():
    """The vllm module, or a DeepSightError that says how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise DeepSightError(
            f"generation.backend=vllm needs the vLLM engine, which is not importable here ({exc}): {INSTALL_HINT} "
            "(or use backend=openai against a running vLLM server)"
        ) from exc
    return vllm


class VLLMGenerator:
    """The ``vllm`` backend: one ``vllm.LLM`` engine for the lifetime of the generator."""

    name = "vllm"

    def __init__(self, model_path: str, *, tokenizer: str | None = None, dtype: str = "auto",
                 trust_remote_code: bool = False, revision: str | None = None, seed: int = 0,
                 system_prompt: str | None = None, chat_template: str | None = None,
                 engine_args: dict[str, Any] | None = None):
        vllm = import_vllm()
        self._vllm = vllm
        kwargs: dict[str, Any] = {
            "model": model_path,
            "tokenizer": tokenizer or model_path,
            "dtype": dtype,
            "trust_remote_code": trust_remote_code,
            "revision": revision,
            "seed": seed,
        }
        kwargs.update(engine_args or {})  # user engine args win
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        if chat_template:
            self.tokenizer.chat_template = chat_template
        self._chat_template_set = bool(chat_template)
        self.system_prompt = system_prompt

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        if not requests:
            return []
        sampling = [
            self._vllm.SamplingParams(
                n=1,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=request_seed(params.seed, r.id) % (2**31) if params.temperature > 0 else None,
                stop=list(params.stop) if params.stop else None,
            )
            for r in requests
        ]
        with_images = [i for i, r in enumerate(requests) if r.prompt is None and message_images(r.messages)]
        text_idx = [i for i in range(len(requests)) if i not in set(with_images)]
        results: list[Generation | None] = [None] * len(requests)
        if text_idx:
            prompts = [{"prompt_token_ids": encode_request(self.tokenizer, requests[i], self.system_prompt)}
                       for i in text_idx]
            outputs = self.llm.generate(prompts, [sampling[i] for i in text_idx], use_tqdm=False)  # in input order
            for i, p, out in zip(text_idx, prompts, outputs):
                results[i] = _generation(requests[i].id, out, len(p["prompt_token_ids"]))
        if with_images:
            self._generate_with_images(requests, sampling, with_images, results)
        return results  # type: ignore[return-value]

    def _generate_with_images(self, requests, sampling, idx: list[int], results: list) -> None:
        """Image-text requests through ``LLM.chat``: OpenAI-style messages whose image parts are data URLs of
        the files, so vLLM's own multi-modal processor expands the image placeholders."""
        conversations, ok = [], []
        for i in idx:
            try:
                conversations.append(openai_messages(chat_messages(requests[i], self.system_prompt)))
                ok.append(i)
            except DeepSightError as exc:  # a missing or unreadable image file
                results[i] = Generation(id=requests[i].id, text="", finish_reason="error", error=str(exc))
        if not ok:
            return
        kwargs = {"chat_template": self.tokenizer.chat_template} if self._chat_template_set else {}
        outputs = self.llm.chat(conversations, [sampling[i] for i in ok], use_tqdm=False,
                                add_generation_prompt=True, **kwargs)
        for i, out in zip(ok, outputs):
            results[i] = _generation(requests[i].id, out, len(getattr(out, "prompt_token_ids", None) or []))

    def close(self) -> None:
        """Shut the engine down and free its memory (best effort across vLLM versions)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        for obj, method in ((engine, "shutdown"), (getattr(engine, "engine_core", None), "shutdown")):
            fn = getattr(obj, method, None) if obj is not None else None
            if callable(fn):
                try:
                    fn()
                except Exception:  # noqa: BLE001 - shutting down; nothing useful to do with the error
                    pass
        del llm, engine
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def _generation(request_id: str, out, prompt_tokens: int) -> Generation:
    completion = out.outputs[0]
    return Generation(
        id=request_id,
        text=completion.text,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(completion.token_ids),
        finish_reason="length" if completion.finish_reason == "length" else "stop",
    )
