"""Where each capture site lives in a model and how its tensor is read from a hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deepsight.errors import ConfigError

# site -> (anatomy part, hook kind)
SITE_HOOKS = {
    "block_output": ("blocks", "forward"),
    "attention_output": ("attention", "forward"),
    "mlp_input": ("mlp", "pre"),
    "mlp_output": ("mlp", "forward"),
    "router_logits": ("router", "forward"),
    "expert_input": ("experts", "pre"),
}


@dataclass
class _LayerListAnatomy:
    """Minimal stand-in for ``deepsight.models.anatomy.ModelAnatomy`` (decoder at ``model.model.layers``)."""

    blocks: list[nn.Module]
    attention: list[nn.Module | None] = field(default_factory=list)
    mlp: list[nn.Module | None] = field(default_factory=list)
    router: list[nn.Module | None] = field(default_factory=list)
    experts: list[nn.Module | None] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)


def simple_anatomy(model: nn.Module) -> _LayerListAnatomy:
    layers = list(model.model.layers)
    mlps = [getattr(b, "mlp", None) for b in layers]
    return _LayerListAnatomy(
        blocks=layers,
        attention=[getattr(b, "self_attn", None) for b in layers],
        mlp=mlps,
        router=[getattr(m, "gate", None) if hasattr(m, "experts") else None for m in mlps],
        experts=[getattr(m, "experts", None) for m in mlps],
    )


def get_anatomy(model: nn.Module) -> Any:
    try:
        from deepsight.models.anatomy import inspect_model
    except ImportError:  # the anatomy module is written concurrently
        return simple_anatomy(model)
    return inspect_model(model)


def num_layers(anatomy: Any) -> int:
    return int(getattr(anatomy, "num_layers", None) or len(anatomy.blocks))


def site_module(anatomy: Any, site: str, layer: int) -> nn.Module:
    part, _ = SITE_HOOKS[site]
    if part == "blocks":
        return anatomy.blocks[layer]
    per_block = getattr(anatomy, "layers", None)  # ModelAnatomy.layers[l]: BlockAnatomy with .attention, .mlp ...
    module = getattr(per_block[layer], part) if per_block is not None else getattr(anatomy, part)[layer]
    if module is None:
        raise ConfigError(f"capture site {site!r}: block {layer} has no {part} module (not an MoE layer?)")
    return module


def layer_device(anatomy: Any, layer: int) -> torch.device:
    """Execution device of block ``layer`` (accelerate's hook device when the weights are offloaded)."""
    devices = getattr(anatomy, "block_devices", None)
    if devices:
        return torch.device(devices[layer])
    block = anatomy.blocks[layer]
    hook = getattr(block, "_hf_hook", None)
    if hook is not None and getattr(hook, "execution_device", None) is not None:
        return torch.device(hook.execution_device)
    for p in block.parameters():
        return p.device
    return torch.device("cpu")


def first_tensor(value: Any) -> torch.Tensor:
    """A hook's output or first input: the tensor itself or the first element of a tuple/list."""
    while isinstance(value, (tuple, list)):
        value = value[0]
    assert isinstance(value, torch.Tensor), f"expected a tensor, got {type(value).__name__}"
    return value
