"""Load any Hugging Face causal LM (dense or MoE, sharded or not) from a local folder or a hub id.
Image-text models (a config with a vision tower, ``is_image_text_config``) load with
``AutoModelForImageTextToText`` and their processor (``loaded.processor``).

    from deepsight.config import ModelConfig
    from deepsight.models.loading import load_model
    loaded = load_model(ModelConfig())              # the default SmolLM2-135M-Instruct
    loaded.model, loaded.tokenizer, loaded.info

``device_map`` (auto | balanced | sequential, with ``max_memory``) shards the model
with accelerate; otherwise the whole model goes to ``device``. The attention
implementation is flash_attention_2 when flash-attn imports and the model is on
a GPU in half precision, else sdpa. Remote code runs only when
``trust_remote_code`` is set in the config.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepsight.errors import ConfigError, DeepSightError

log = logging.getLogger("deepsight")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)
    processor: Any = None  # image-text models: the processor (chat template with image parts, pixels)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"model.device={device!r} is not a torch device") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"model.device={device!r} but CUDA is not available on this machine")
    return resolved


def resolve_dtype(dtype: str, on_gpu: bool) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if on_gpu else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"model.dtype={dtype!r}; expected one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def resolve_attn_implementation(requested: str, on_gpu: bool, dtype: torch.dtype) -> str:
    if requested != "auto":
        return requested
    half = dtype in (torch.float16, torch.bfloat16)
    if on_gpu and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def resolve_model_path(cfg) -> tuple[str, str | None]:
    """(path or hub id, gguf file) of the weights to load; converts the default model once."""
    if cfg.path == "default":
        from deepsight.models.default_model import ensure_default_model_dir

        return str(ensure_default_model_dir()), None
    path = Path(cfg.path).expanduser()
    looks_local = cfg.path.startswith((".", "/", "~")) or path.exists()
    if looks_local and not path.exists():
        raise ConfigError(f"model.path={cfg.path!r}: no such directory")
    if cfg.gguf_file and looks_local and not (path / cfg.gguf_file).is_file():
        raise ConfigError(f"model.gguf_file={cfg.gguf_file!r}: not found in {path}")
    return (str(path) if looks_local else cfg.path), cfg.gguf_file


def is_moe_config(config) -> bool:
    for key in ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"):
        if (getattr(config, key, None) or 0) > 1:
            return True
    return False


def is_image_text_config(config) -> bool:
    """True for image-text-to-text models (a vision tower beside the language model)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return getattr(config, "vision_config", None) is not None and (
        getattr(config, "model_type", None) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    )


def load_model(cfg) -> LoadedModel:
    """Load model and tokenizer as ``cfg`` (a ModelConfig) says; the model is returned in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, gguf_file = resolve_model_path(cfg)
    sharded = cfg.device_map is not None
    device = None if sharded else resolve_device(cfg.device)
    on_gpu = torch.cuda.is_available() if sharded else device.type == "cuda"
    dtype = resolve_dtype(cfg.dtype, on_gpu)
    attn = resolve_attn_implementation(cfg.attn_implementation, on_gpu, dtype)
    common: dict[str, Any] = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    if gguf_file:
        common["gguf_file"] = gguf_file
    kwargs: dict[str, Any] = dict(common, dtype=dtype, attn_implementation=attn)
    # fp8: fine-grained FP8 (128 x 128 blocks) at load, as deepsight plan prices it
    if getattr(cfg, "quantization", None) is not None:
        if cfg.quantization != "fp8":
            raise ConfigError(f"model.quantization={cfg.quantization!r}; expected null or fp8")
        from transformers import FineGrainedFP8Config

        kwargs["quantization_config"] = FineGrainedFP8Config(weight_block_size=(128, 128))
    if sharded:
        kwargs["device_map"] = cfg.device_map
        if cfg.max_memory:
            kwargs["max_memory"] = {(int(k) if str(k).isdigit() else k): v for k, v in cfg.max_memory.items()}
    processor = None
    try:
        if cfg.random_init_seed is not None:  # a test fixture: config.json only, seeded random weights
            tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or path, **common)
            model = _random_model(path, cfg, dtype, attn)
        elif not gguf_file and _is_image_text(path, common):
            from transformers import AutoModelForImageTextToText, AutoProcessor

            processor = AutoProcessor.from_pretrained(cfg.tokenizer or path, **common)
            tokenizer = processor.tokenizer
            model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        else:
            tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or path, **common)
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise DeepSightError(
            f"model.path={cfg.path!r}: could not load ({e}). Hub ids need network access; "
            "pass a local directory otherwise."
        ) from e
    if not sharded:
        model.to(device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.chat_template:
        tokenizer.chat_template = cfg.chat_template
        if processor is not None:
            processor.chat_template = cfg.chat_template
    info = model_info(cfg, model, path, attn)
    if processor is not None:
        info["image_text"] = True
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, processor=processor)


def target_is_image_text(cfg, loaded: LoadedModel | None = None) -> bool:
    """Whether the target model takes images: ``model.image_text`` when set, else a loaded processor, else
    the model's config (read without weights; False when it cannot be read, e.g. a hosted API model)."""
    explicit = getattr(cfg, "image_text", None)
    if explicit is not None:
        return bool(explicit)
    if loaded is not None:
        return getattr(loaded, "processor", None) is not None
    if cfg.path == "default" or cfg.gguf_file:
        return False
    return _is_image_text(cfg.path, {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code})


def _is_image_text(path: str, common: dict[str, Any]) -> bool:
    from transformers import AutoConfig

    try:
        return is_image_text_config(AutoConfig.from_pretrained(path, **common))
    except (OSError, ValueError):  # no readable config here: the causal-LM path reports the problem
        return False


def _random_model(path: str, cfg, dtype: torch.dtype, attn: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    state = torch.random.get_rng_state()
    torch.manual_seed(int(cfg.random_init_seed))
    try:
        return AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn,
                                                trust_remote_code=cfg.trust_remote_code)
    finally:
        torch.random.set_rng_state(state)


def model_info(cfg, model, resolved_path: str, attn: str) -> dict[str, Any]:
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    info = {
        "name": cfg.name,
        "path": cfg.path,
        "resolved_path": resolved_path,
        "revision": cfg.revision,
        "class": type(model).__name__,
        "architecture": config.model_type,
        "num_layers": getattr(text_config, "num_hidden_layers", None) or getattr(text_config, "n_layer", None),
        "hidden_size": getattr(text_config, "hidden_size", None) or getattr(text_config, "n_embd", None),
        "vocab_size": getattr(text_config, "vocab_size", None),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "attn_implementation": attn,
        "is_moe": is_moe_config(text_config),
    }
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        info["device_map"] = {k: str(v) for k, v in device_map.items()}
        info["devices"] = sorted({str(v) for v in device_map.values()})
    else:
        info["devices"] = [str(next(model.parameters()).device)]
    return info
