"""Capture option ``causal_right_padding``: run right-padded rows of a causal model without the mask.

A valid token of a right-padded row attends only to earlier positions, all valid, so its states (and
every gradient at a valid position) equal the masked forward's, while attention can take its causal
kernels (flash attention on a GPU) instead of an explicit mask. The sinks still get the mask: the
engine keeps it as the events' mask. Rows that are not right-padded raise (checked on CPU tensors;
on an accelerator the check would cost a host sync). An encoder-decoder keeps its mask.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepsight.errors import ConfigError


def causal_right_padding_applies(model: nn.Module, enabled: bool, mask_positions: bool) -> bool:
    """Whether the option is on for ``model`` (ConfigError when combined with left-padding positions)."""
    if enabled and mask_positions:
        raise ConfigError("causal_right_padding needs right padding; mask_positions is for left padding")
    return enabled and not getattr(model.config, "is_encoder_decoder", False)


def check_right_padded(mask: torch.Tensor) -> None:
    """Rows whose valid tokens come first (checked on CPU tensors only)."""
    if mask.device.type == "cpu" and mask.shape[1] > 1 and bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ValueError("causal_right_padding: a row has a valid token after a padded one (not right padding)")


def drop_mask(kwargs: dict[str, Any]) -> torch.Tensor | None:
    """Take the attention mask out of the model call's ``kwargs``; returns it (the events' mask)."""
    mask = kwargs["attention_mask"]
    if mask is None:
        return None
    check_right_padded(mask)
    kwargs["attention_mask"] = None
    return mask
