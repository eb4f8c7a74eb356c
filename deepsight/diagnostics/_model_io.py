"""One forward pass that hands chosen ``hidden_states`` indices to callbacks, then stops early.

Used by X-Boundary and TELLME. Index convention (Hugging Face ``output_hidden_states``):
index 0 = embedding output (the input of block 0), index i in 1..L-1 = output of block i-1,
index L = the final norm applied to block L-1's output (what transformers returns as the last
hidden state); with ``last_is_norm=False`` index L is block L-1's raw output ("block output L-1",
which TELLME's hooks read). Nothing is kept by the hooks themselves: each state is reduced by the callback
(pooled, gathered) on the layer's device, and after the deepest requested index the forward is
aborted, so blocks past it never run and the LM head is never applied.

Usage::

    with HiddenStateTap(anatomy, [4, 8], on_state):   # on_state(index, hidden (B, T, D))
        run_decoder(anatomy, model, input_ids, attention_mask)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by the deepest hook: everything needed from this batch has been captured."""


def _blocks(anatomy: Any, model: nn.Module) -> list[nn.Module]:
    blocks = getattr(anatomy, "blocks", None)
    return list(blocks) if blocks is not None else list(model.model.layers)


def _final_norm(anatomy: Any, model: nn.Module) -> nn.Module | None:
    if anatomy is not None and hasattr(anatomy, "final_norm"):
        return anatomy.final_norm
    return getattr(getattr(model, "model", model), "norm", None)


def num_blocks(anatomy: Any, model: nn.Module) -> int:
    return len(_blocks(anatomy, model))


def _first_tensor(value: Any) -> torch.Tensor:
    while isinstance(value, (tuple, list)):
        value = value[0]
    assert isinstance(value, torch.Tensor), f"expected a tensor, got {type(value).__name__}"
    return value


class HiddenStateTap:
    """Context manager: hooks for ``indices`` calling ``on_state(index, hidden)``; early exit after the deepest."""

    def __init__(self, anatomy: Any, model: nn.Module, indices: list[int],
                 on_state: Callable[[int, torch.Tensor], None], early_exit: bool = True, last_is_norm: bool = True):
        self.blocks = _blocks(anatomy, model)
        n = len(self.blocks)
        bad = [i for i in indices if not 0 <= i <= n]
        if bad:
            raise ValueError(f"hidden_states indices {bad} outside 0..{n} for a model with {n} blocks")
        self.indices = sorted(set(indices))
        self.norm = _final_norm(anatomy, model) if last_is_norm else None
        if n in self.indices and last_is_norm and self.norm is None:
            raise ValueError(f"hidden_states index {n} needs the final norm, which was not found")
        self.on_state, self.early_exit = on_state, early_exit
        self.handles: list[Any] = []

    def _emit(self, index: int, hidden: torch.Tensor) -> None:
        self.on_state(index, hidden.detach())
        if self.early_exit and index == self.indices[-1]:
            raise _StopForward

    def __enter__(self) -> HiddenStateTap:
        n = len(self.blocks)
        for idx in self.indices:
            if idx == 0:
                def pre(_m, args, kwargs, idx=idx):
                    h = args[0] if args else kwargs.get("hidden_states")
                    self._emit(idx, _first_tensor(h))
                self.handles.append(self.blocks[0].register_forward_pre_hook(pre, with_kwargs=True))
            else:
                module = self.norm if idx == n and self.norm is not None else self.blocks[idx - 1]
                def post(_m, _inp, out, idx=idx):
                    self._emit(idx, _first_tensor(out))
                self.handles.append(module.register_forward_hook(post))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def decoder_of(anatomy: Any, model: nn.Module) -> nn.Module:
    """The base model (no LM head) when it can be found, else the model itself."""
    dec = getattr(anatomy, "decoder", None)
    if dec is None:
        dec = getattr(model, "model", None)
    return dec if isinstance(dec, nn.Module) else model


@torch.no_grad()
def run_decoder(anatomy: Any, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """Forward the decoder on one batch; the tap's early exit ends it quietly."""
    try:
        decoder_of(anatomy, model)(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass


def input_device(anatomy: Any, model: nn.Module) -> torch.device:
    emb = getattr(anatomy, "embeddings", None)
    if emb is None and hasattr(model, "get_input_embeddings"):
        emb = model.get_input_embeddings()
    hook = getattr(emb, "_hf_hook", None)
    if hook is not None and getattr(hook, "execution_device", None) is not None:
        return torch.device(hook.execution_device)
    for p in (emb if emb is not None else model).parameters():
        return p.device
    return torch.device("cpu")
