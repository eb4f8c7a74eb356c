"""Model helpers shared by X-Boundary and TELLME: block count and the device that takes the input ids."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def num_blocks(anatomy: Any, model: nn.Module) -> int:
    blocks = getattr(anatomy, "blocks", None)
    return len(blocks) if blocks is not None else len(model.model.layers)


def input_device(anatomy: Any, model: nn.Module) -> torch.device:
    """Where the embedding runs (accelerate's execution device when weights are offloaded)."""
    emb = getattr(anatomy, "embeddings", None)
    if emb is None and hasattr(model, "get_input_embeddings"):
        emb = model.get_input_embeddings()
    hook = getattr(emb, "_hf_hook", None)
    if hook is not None and getattr(hook, "execution_device", None) is not None:
        return torch.device(hook.execution_device)
    for p in (emb if emb is not None else model).parameters():
        return p.device
    return torch.device("cpu")
