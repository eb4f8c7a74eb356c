"""Per-sample gradient capture for linear layers (SPIN): forward hooks keep each chosen
``nn.Linear``'s input x, a tensor hook on its output receives delta = dL/dy during backward, and
``GradAbsSum.update(delta, x, token_mask)`` adds sum_s |sum_t delta_{s,t} x_{s,t}^T|; x is freed
right after. The loss must be a sum of per-sample losses (e.g. sum over rows of each row's mean
token cross-entropy) so that delta_s is sample s's own gradient; then any batch size gives the
batch-1 result exactly.

A sample whose input x or delta has a NaN / inf at a counted token is left out of the sum and counted
per module in ``.nonfinite`` (``finite.py``: warned once per module, reported by the audit).

With ``param_grads=False`` (default) no weight gradient is computed at all: parameters are
frozen for the duration and the embedding output is made to require grad, so backward only
propagates deltas (saving the weight-gradient matmuls and their memory).

Usage::

    stats = {name: GradAbsSum(m.weight.shape, device=m.weight.device) for name, m in linears.items()}
    with GradCapture(model, linears, stats) as gc:
        for batch in batches:
            gc.token_mask = batch.attention_mask
            loss = per_sample_losses(model(batch.input_ids, attention_mask=batch.attention_mask)).sum()
            loss.backward()
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepsight.capture import finite
from deepsight.stats import GradAbsSum


class GradCapture:
    def __init__(self, model: nn.Module, modules: dict[str, nn.Linear], stats: dict[str, GradAbsSum], *,
                 param_grads: bool = False):
        missing = [n for n in modules if n not in stats]
        if missing:
            raise ValueError(f"no GradAbsSum for module(s) {missing}")
        self.model, self.modules, self.stats, self.param_grads = model, modules, stats, param_grads
        self.token_mask: torch.Tensor | None = None  # (S, T) 1 = token counts; set before each forward
        self._handles: list[Any] = []
        self._frozen: list[nn.Parameter] = []
        self._shape: tuple[int, int] | None = None  # (S, T) of the model call in progress
        self.nonfinite = finite.NonFiniteCounts("gradients")  # samples left out per module

    def _on_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        ids = ids if ids is not None else kwargs.get("inputs_embeds")
        self._shape = None if ids is None else (int(ids.shape[0]), int(ids.shape[1]))

    def __enter__(self) -> GradCapture:
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._on_call, with_kwargs=True))
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
            if not self.param_grads:
                self._frozen = [p for p in self.model.parameters() if p.requires_grad]
                for p in self._frozen:
                    p.requires_grad_(False)
                emb = self.model.get_input_embeddings()
                self._handles.append(emb.register_forward_hook(_require_grad))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen = []

    def _make_hook(self, name: str):
        stat = self.stats[name]

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not (torch.is_grad_enabled() and output.requires_grad):
                return
            mask = self.token_mask
            x = args[0].detach()
            if x.dim() == 2:  # flattened tokens (e.g. a shared expert): back to samples
                shape = tuple(mask.shape) if mask is not None else self._shape
                assert shape is not None and x.shape[0] == shape[0] * shape[1], (
                    f"{name}: input {tuple(x.shape)} cannot be split into the batch's samples {shape}")
                x = x.view(*shape, -1)  # (S, T, I) from (S*T, I)
            saved = [x, None if mask is None else mask.to(x.device)]

            def on_grad(delta: torch.Tensor) -> None:
                x_, m_ = saved
                with torch.no_grad():
                    d_ = delta.reshape(*x_.shape[:-1], -1)
                    if x_.dim() == 3:
                        bad = finite.bad_rows([d_, x_], x_.shape[0], x_.shape[1], m_)
                        if bad is not None:
                            self.nonfinite.record("gradients", name, int(bad.sum()), x_.shape[0])
                            keep = (~bad).nonzero().squeeze(1)
                            d_, x_, m_ = d_[keep], x_[keep], None if m_ is None else m_[keep]
                    if x_.shape[0]:
                        stat.update(d_, x_, m_)
                saved.clear()  # free x now, not when the graph is released

            output.register_hook(on_grad)

        return hook


def _require_grad(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and not output.requires_grad:
        return output.detach().requires_grad_(True)
    return output
