"""Where a model takes its inputs, and the token id that pads its batches.

``input_device``: the device of the embedding, i.e. where input ids must live (accelerate's execution
device when the weights are offloaded; the first shard under a device_map). ``pad_id``: the
tokenizer's pad id, else its (first) EOS id, else 0 (padded positions are masked, so any id works;
these keep the embedding lookup in range).

Usage::

    from deepsight.models.io import input_device, pad_id
    ids = batch.input_ids.to(input_device(model))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def input_device(model: nn.Module, anatomy: Any = None) -> torch.device:
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


def pad_id(tokenizer: Any, eos_ids: Iterable[int] | None = None) -> int:
    """The tokenizer's pad id; else the smallest of ``eos_ids`` (a generator's stop ids) when there are any;
    else the tokenizer's (first) EOS id; else 0."""
    if getattr(tokenizer, "pad_token_id", None) is None and eos_ids:
        return int(min(eos_ids))
    for attr in ("pad_token_id", "eos_token_id"):
        v = getattr(tokenizer, attr, None)
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return int(v)
    return 0
