"""Where each capture site lives in a model and how its tensor is read from a hook."""

from __future__ import annotations

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


def get_anatomy(model: nn.Module) -> Any:
    from deepsight.models.anatomy import inspect_model

    return inspect_model(model)


def num_layers(anatomy: Any) -> int:
    return int(getattr(anatomy, "num_layers", None) or len(anatomy.blocks))


def final_norm(anatomy: Any) -> nn.Module:
    norm = getattr(anatomy, "final_norm", None)
    if norm is None:
        raise ConfigError("hidden_states index L (the final norm's output) needs the model's final norm, not found")
    return norm


def hook_target(anatomy: Any, site: str, layer: int) -> tuple[nn.Module, str]:
    """(module, "forward" | "pre") whose hook yields ``site`` at ``layer`` (a hidden_states index for that site)."""
    if site == "hidden_states":
        n = num_layers(anatomy)
        if layer == 0:
            return anatomy.blocks[0], "pre"  # the embedding output is block 0's input
        return (anatomy.blocks[layer - 1], "forward") if layer < n else (final_norm(anatomy), "forward")
    return site_module(anatomy, site, layer), SITE_HOOKS[site][1]


def stop_point(site: str, layer: int, n: int) -> int:
    """Position in forward order after which ``site`` at ``layer`` is available: p = 0 before block 0,
    p = l + 1 after block l, p = n + 1 after the final norm."""
    if site == "hidden_states":
        return layer if layer < n else n + 1
    return layer + 1


def stop_target(anatomy: Any, point: int) -> tuple[nn.Module, str]:
    n = num_layers(anatomy)
    if point == 0:
        return anatomy.blocks[0], "pre"
    return (anatomy.blocks[point - 1], "forward") if point <= n else (final_norm(anatomy), "forward")


def site_module(anatomy: Any, site: str, layer: int) -> nn.Module:
    part, _ = SITE_HOOKS[site]
    if part == "blocks":
        return anatomy.blocks[layer]
    block = anatomy.layers[layer]  # ModelAnatomy.layers[l]: BlockAnatomy with .attention, .mlp, .router, .experts
    module = getattr(block, part)
    if site == "expert_input" and not block.fused_experts:
        raise ConfigError(f"capture site 'expert_input': block {layer} keeps its experts as separate modules; "
                          "only fused expert modules (transformers 5 MoE) are supported")
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
