"""Silence chosen experts of an MoE model: their router logits become -inf before the top-k choice.

The causal check of the MoE expert diagnostics (after SteerMoE, arXiv 2509.09660, and "Large
Language Lobotomy", arXiv 2602.08741): with experts {(layer, e)} masked, no token can select them
and the router renormalises over the others exactly as the model's own code does, every other
expert untouched. Inside each affected router's forward, the output of the linear map that
produces its (N, E) logits gets -inf in the masked columns (a torch function mode active only
during that router call); routers with a selection bias added after the score (DeepSeek-V3's
``e_score_correction_bias``) get -inf there too, for the same duration. Blocks without masked
experts run untouched, so with nothing masked the model is bit-identical to the plain one.

Usage::

    with ExpertMask(model, {3: [5, 17], 7: [2]}, anatomy=anatomy):
        generator.generate(requests)       # any forward / generate call of the model
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from deepsight.errors import ConfigError

_LINEARS = {F.linear, torch._C._nn.linear}
_BIAS_NAMES = ("e_score_correction_bias",)


class _MaskLogits(TorchFunctionMode):
    """Sets columns of the (..., E) output of the router's linear map to -inf."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.mask, self.hits = mask, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _LINEARS and isinstance(out, torch.Tensor) and out.shape[-1] == self.mask.numel():
            self.hits += 1
            out = out.masked_fill(self.mask.to(out.device), float("-inf"))
        return out


class ExpertMask:
    """Context manager masking ``experts`` ({block index: expert ids}) of ``model`` (see module docstring)."""

    def __init__(self, model: nn.Module, experts: Mapping[int, Iterable[int]], *, anatomy: Any = None):
        if anatomy is None:
            from deepsight.models.anatomy import inspect_model

            anatomy = inspect_model(model)
        self.anatomy = anatomy
        self.masked: dict[int, list[int]] = {}
        for layer, ids in experts.items():
            ids = sorted({int(e) for e in ids})
            if not ids:
                continue
            block = anatomy.layers[anatomy.layer_index(int(layer))]
            if block.router is None:
                raise ConfigError(f"expert mask: block {layer} is not an MoE block")
            bad = [e for e in ids if not 0 <= e < block.num_experts]
            if bad:
                raise ConfigError(f"expert mask: block {layer} has {block.num_experts} experts; got ids {bad}")
            if block.num_experts - len(ids) < max(block.num_experts_per_tok, 1):
                raise ConfigError(f"expert mask: block {layer} would keep {block.num_experts - len(ids)} experts, "
                                  f"fewer than its top-k {block.num_experts_per_tok}")
            self.masked[block.index] = ids
        self._restore: list[Any] = []

    def __enter__(self) -> ExpertMask:
        try:
            for layer, ids in self.masked.items():
                self._mask_router(self.anatomy.layers[layer].router, layer, ids)
        except BaseException:
            self._undo()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._undo()

    def _mask_router(self, router: nn.Module, layer: int, ids: list[int]) -> None:
        num = self.anatomy.layers[layer].num_experts
        mask = torch.zeros(num, dtype=torch.bool)
        mask[ids] = True
        for name in _BIAS_NAMES:
            bias = getattr(router, name, None)
            if isinstance(bias, torch.Tensor) and bias.shape == (num,):
                saved = bias.detach().clone()
                with torch.no_grad():
                    bias[mask.to(bias.device)] = float("-inf")
                self._restore.append(lambda b=bias, s=saved: b.data.copy_(s))
        original = router.forward  # the class's bound method, or an instance-level wrapper (accelerate's hooks)
        had_own = "forward" in router.__dict__

        def masked_forward(*args: Any, **kwargs: Any) -> Any:
            mode = _MaskLogits(mask)
            with mode:
                out = original(*args, **kwargs)
            if mode.hits != 1:
                raise ConfigError(f"expert mask: block {layer}'s router ({type(router).__name__}) did not compute "
                                  f"its logits with one linear map ({mode.hits} found); it cannot be masked")
            return out

        router.forward = masked_forward

        def restore(r: nn.Module = router, f: Any = original, own: bool = had_own) -> None:
            if own:
                r.forward = f  # put accelerate's (or any) instance-level forward back
            else:
                r.__dict__.pop("forward", None)

        self._restore.append(restore)

    def _undo(self) -> None:
        while self._restore:
            self._restore.pop()()
