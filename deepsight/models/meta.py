"""Build a model on the meta device from its architecture alone: no weights, no memory, seconds.

``deepsight plan`` sizes a run of a frontier model (DeepSeek-V3's 671B parameters, Llama-3.1-405B) on a
laptop: the module tree, every parameter's shape and the anatomy (blocks, experts, routers) come from
the Hugging Face config, on ``torch.device("meta")``. The config comes from ``model.config`` (an inline
config.json dict, how ``conf/model/*.yaml`` ship the published dimensions) or from ``model.path`` when
that is a local checkpoint folder (its config.json); a hub id with neither is an error naming both keys.

    from deepsight.models.meta import architecture_config, build_meta_model, checkpoint_quantization
    hf_config = architecture_config(cfg.model)          # transformers PretrainedConfig
    model = build_meta_model(hf_config, torch.bfloat16) # every parameter on the meta device
    quant = checkpoint_quantization(hf_config, cfg.model)  # None | QuantSpec("fp8", ...) | ("mxfp4", ...)

Quantized checkpoints are built in the compute dtype (the quantizers need real weights); their storage
is described by ``QuantSpec`` (DeepSeek-V3: FP8 e4m3 with one float32 scale per 128 x 128 block;
GPT-OSS: MXFP4 experts, 4-bit values with one 8-bit scale per 32), and the planner prices each
parameter with it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepsight.config.plain import config_dict
from deepsight.errors import ConfigError


@dataclass(frozen=True)
class QuantSpec:
    """How a checkpoint stores its quantized weights."""

    method: str  # fp8 | mxfp4
    bits: float  # bits per stored value
    block: tuple[int, ...]  # values sharing one scale: (128, 128) for fp8 blocks, (32,) for mxfp4
    scale_bytes: int  # bytes per scale
    modules_to_not_convert: tuple[str, ...] = ()  # name fragments kept in the compute dtype
    experts_only: bool = False  # only fused expert weights are quantized (GPT-OSS MXFP4)

    def bytes_for(self, shape: tuple[int, ...]) -> float:
        """Stored bytes of one quantized tensor: values plus their block scales."""
        numel = 1
        for s in shape:
            numel *= int(s)
        if len(self.block) == 2 and len(shape) >= 2:  # 2-D blocks over the last two dims
            lead = numel // (shape[-1] * shape[-2])
            n_scales = lead * -(-shape[-2] // self.block[0]) * -(-shape[-1] // self.block[1])
        else:
            n_scales = -(-numel // self.block[0])
        return numel * self.bits / 8 + n_scales * self.scale_bytes


FP8_BLOCKWISE = QuantSpec("fp8", 8, (128, 128), 4)


def architecture_config(model_cfg) -> Any:
    """The transformers config of ``model_cfg`` (ModelConfig) from ``config`` or a local ``path``."""
    from transformers import AutoConfig

    inline = model_cfg.config
    if inline is not None:
        d = json.loads(json.dumps(config_dict(inline)))  # a deep plain copy
        model_type = d.pop("model_type", None)
        if not model_type:
            raise ConfigError("model.config must name the architecture with model_type (as config.json does)")
        try:
            return AutoConfig.for_model(model_type, **d)
        except (ValueError, KeyError) as e:
            raise ConfigError(f"model.config: model_type={model_type!r} is not a transformers model ({e})") from e
    path = Path(str(model_cfg.path)).expanduser()
    if str(model_cfg.path) == "default":  # SmolLM2's converted copy, once an audit has made it
        from deepsight.models.default_model import default_model_dir

        path = default_model_dir()
    if (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path), trust_remote_code=bool(model_cfg.trust_remote_code))
    raise ConfigError(
        f"model.path={model_cfg.path!r} is not a local checkpoint folder and model.config is not set: "
        "give the architecture as model.config (a config.json dict) or a local model.path"
    )




def checkpoint_quantization(hf_config: Any, model_cfg=None) -> QuantSpec | None:
    """The storage of the weights: the checkpoint's own quantization_config, or model.quantization=fp8."""
    q = getattr(hf_config, "quantization_config", None)
    if q is not None and not isinstance(q, dict):
        q = q.to_dict() if hasattr(q, "to_dict") else vars(q)
    if q:
        method = str(q.get("quant_method", "")).lower()
        skip = tuple(q.get("modules_to_not_convert") or ())
        if method == "fp8":
            block = tuple(q.get("weight_block_size") or (128, 128))
            return QuantSpec("fp8", 8, block, 4, skip)
        if method == "mxfp4":
            return QuantSpec("mxfp4", 4, (32,), 1, skip, experts_only=True)
        raise ConfigError(f"model.config.quantization_config: quant_method={method!r} is not priced (fp8, mxfp4)")
    wanted = getattr(model_cfg, "quantization", None) if model_cfg is not None else None
    if wanted is None:
        return None
    if wanted != "fp8":
        raise ConfigError(f"model.quantization={wanted!r}; expected null or fp8")
    return FP8_BLOCKWISE


def build_meta_model(hf_config: Any, dtype: torch.dtype = torch.bfloat16):
    """The causal LM of ``hf_config`` with every parameter on the meta device (quantization left out)."""
    from transformers import AutoModelForCausalLM

    cfg = copy.deepcopy(hf_config)
    if getattr(cfg, "quantization_config", None) is not None:
        del cfg.quantization_config  # the quantizers need real weights; storage is priced by QuantSpec
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.eval()
    return model
