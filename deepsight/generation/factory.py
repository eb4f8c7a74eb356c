"""Build the generation backend a ``GenerationConfig`` names.

    generator = build_generator(cfg.generation, cfg.model, loaded)   # loaded: LoadedModel | None
    outs = generator.generate(requests, sampling_params(cfg.generation))
    generator.close()

- ``hf``: reuses ``loaded`` (shared with the white-box scans) or loads ``model_cfg``; an
  image-text model (``loaded.processor`` set) gets ``HFImageTextGenerator``;
- ``vllm``: an in-process vLLM engine on ``model_cfg.path`` (the default model's safetensors
  copy for ``path: default``) with ``engine_args`` passed through;
- ``openai``: an OpenAI-compatible server at ``base_url``; the served model name is
  ``served_model``, else ``model_cfg.path`` unless that is ``default``, else the server's first model.
"""

from __future__ import annotations

from deepsight.config.plain import config_dict
from deepsight.errors import ConfigError
from deepsight.generation.base import Generator, SamplingParams

BACKENDS = ("hf", "vllm", "openai")


def sampling_params(gen_cfg, max_new_tokens: int | None = None) -> SamplingParams:
    """The ``SamplingParams`` of a generation config (a benchmark may override ``max_new_tokens``)."""
    return SamplingParams(
        max_new_tokens=max_new_tokens if max_new_tokens is not None else gen_cfg.max_new_tokens,
        temperature=gen_cfg.temperature,
        top_p=gen_cfg.top_p,
        seed=gen_cfg.seed,
    )


def build_generator(gen_cfg, model_cfg, loaded=None) -> Generator:
    backend = gen_cfg.backend
    if backend not in BACKENDS:
        raise ConfigError(f"generation.backend={backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "hf":
        from deepsight.generation.hf import HFGenerator

        if loaded is None:
            from deepsight.models.loading import load_model

            loaded = load_model(model_cfg)
        if getattr(loaded, "processor", None) is not None:  # image-text model
            from deepsight.generation.hf_vlm import HFImageTextGenerator

            return HFImageTextGenerator(loaded.model, loaded.processor, system_prompt=gen_cfg.system_prompt)
        return HFGenerator(
            loaded.model,
            loaded.tokenizer,
            batch_size=gen_cfg.batch_size,
            max_batch_tokens=gen_cfg.max_batch_tokens,
            system_prompt=gen_cfg.system_prompt,
        )
    if backend == "vllm":
        from deepsight.generation.vllm_engine import VLLMGenerator

        path = model_cfg.path
        if path == "default":
            from deepsight.models.default_model import ensure_default_model_dir

            path = str(ensure_default_model_dir())
        if getattr(model_cfg, "gguf_file", None):
            raise ConfigError("model.gguf_file is not supported by generation.backend=vllm: pass a model directory")
        engine_args = config_dict(gen_cfg.engine_args) if gen_cfg.engine_args is not None else {}
        if model_cfg.device_map and "tensor_parallel_size" not in engine_args:
            import torch

            # A sharded model (hardware=multi_gpu) generates tensor-parallel over every visible GPU.
            engine_args["tensor_parallel_size"] = max(1, torch.cuda.device_count())
        return VLLMGenerator(
            path,
            tokenizer=model_cfg.tokenizer,
            dtype=model_cfg.dtype,
            trust_remote_code=model_cfg.trust_remote_code,
            revision=model_cfg.revision,
            seed=gen_cfg.seed,
            system_prompt=gen_cfg.system_prompt,
            chat_template=model_cfg.chat_template,
            engine_args=engine_args,
        )
    from deepsight.generation.openai_server import OpenAIServerGenerator

    served = gen_cfg.served_model or (model_cfg.path if model_cfg.path != "default" else None)
    return OpenAIServerGenerator(
        gen_cfg.base_url,
        model=served,
        api_key_env=gen_cfg.api_key_env,
        concurrency=gen_cfg.concurrency,
        timeout_s=gen_cfg.timeout_s,
        max_retries=gen_cfg.max_retries,
        system_prompt=gen_cfg.system_prompt,
    )


