"""Model helper shared by X-Boundary and TELLME: the block count."""

from __future__ import annotations

from typing import Any

from torch import nn


def num_blocks(anatomy: Any, model: nn.Module) -> int:
    blocks = getattr(anatomy, "blocks", None)
    return len(blocks) if blocks is not None else len(model.model.layers)
