"""Capture option ``last_token_mlp``: the stop block's MLP runs on each row's last valid position only.

When every capture is the output of the block a forward stops after, reduced to the last valid token
(TELLME), nothing reads that block's other positions: its MLP output broadcasts over the residual, so
running the MLP on one position per row gives the same captured states and saves the MLP's work on the
rest (up to ~2% of a TELLME forward of SmolLM2). A block that cannot take that (Falcon adds into the
MLP output in place) fails once; ``Capture.forward`` then removes the shortcut and runs the batch again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from deepsight.capture import reduce as R
from deepsight.capture._sites import stop_point
from deepsight.capture.event import _Call


class LastTokenMLP:
    """A pre-hook on the stop block's MLP keeping each row's last valid position (right or left padding)."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.handle: Any = None
        self.used = False  # the shortcut ran in the forward in progress

    @classmethod
    def find(cls, anatomy: Any, captures: list[tuple[Any, int]], point: int | None, n: int) -> LastTokenMLP | None:
        """The shortcut for these (spec, layer) captures with the forward stopping at ``point``, if it applies."""
        if point is None or not 0 < point <= n:
            return None
        # every capture at the stop block (so a failing shortcut has fed no sink yet), each its last token
        if not captures or not all(stop_point(spec.site, layer, n) == point and spec.reduce == "last"
                                   and spec.site in ("block_output", "hidden_states") for spec, layer in captures):
            return None
        layers = getattr(anatomy, "layers", None)
        module = getattr(layers[point - 1], "mlp", None) if layers is not None else None
        return cls(module) if module is not None else None

    def register(self, current_call: Callable[[], _Call | None]) -> Any:
        """Hook the MLP; ``current_call`` gives the scan forward in progress (None: leave the MLP alone)."""
        self._current_call = current_call
        self.handle = self.module.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        return self.handle

    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        call = self._current_call()
        if call is None:
            return None
        x = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or tuple(x.shape[:2]) != (call.batch, call.length):
            return None
        mask = None if call.mask is None else call.mask[:, -call.length :].to(x.device)
        last = R.last_valid_index(mask, call.batch, call.length, x.device)  # (B,)
        x_last = x[torch.arange(call.batch, device=x.device), last][:, None]  # (B, 1, D)
        self.used = True
        if args:
            return (x_last, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": x_last}
