"""In-process vLLM engine backend: the scale-out path for large and MoE models.

vLLM is an optional extra (``pip install deepsight[vllm]``) imported only when this backend is
built. ``engine_args`` (``tensor_parallel_size``, ``gpu_memory_utilization``, ``max_model_len``,
``enable_expert_parallel`` ...) go to ``vllm.LLM`` unchanged. Prompts are encoded by
``prompts.encode_request`` with vLLM's own tokenizer and passed as token ids, so this backend
sees exactly the tokens the hf backend sees (same chat template and system prompt rules).

    gen = VLLMGenerator("/models/Qwen3-30B-A3B", engine_args={"tensor_parallel_size": 4})
"""

from __future__ import annotations

import gc
from typing import Any

from deepsight.errors import DeepSightError
from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.hf import request_seed
from deepsight.generation.prompts import encode_request

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
        self.system_prompt = system_prompt

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        if not requests:
            return []
        prompts = [{"prompt_token_ids": encode_request(self.tokenizer, r, self.system_prompt)} for r in requests]
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
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)  # in input order
        results = []
        for r, p, out in zip(requests, prompts, outputs):
            completion = out.outputs[0]
            results.append(Generation(
                id=r.id,
                text=completion.text,
                prompt_tokens=len(p["prompt_token_ids"]),
                completion_tokens=len(completion.token_ids),
                finish_reason="length" if completion.finish_reason == "length" else "stop",
            ))
        return results

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
