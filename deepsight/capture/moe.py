"""MoE capture sites: the model's own routing of every token and each chosen expert's output.

Sites (``CaptureSpec(site, layers, reduce="none")`` on MoE blocks with fused transformers-5 experts):

- ``expert_routing``: per token the experts the model chose (its own top-k, after any grouping,
  correction bias or renormalisation, as passed to its experts module), their gate weights and the
  router logits (for the router entropy);
- ``expert_output``: the same plus each chosen expert's *unweighted* output for the token.

How ``expert_output`` gets per-expert outputs at no extra expert compute: a pre-hook on the fused
experts module hands it the N x K (token, expert) pairs as N*K rows routed to one expert each
with weight 1 (ordered so that each expert's rows reach its matrix products in the order the model's
own code would have taken them), so the model's own expert code (any family, any experts
implementation) computes every pair's output once; a forward hook then passes them to the sink and
returns the weighted
sum the model would have formed, in the model's own order: for transformers' ``grouped_mm`` and
``batched_mm`` the K weighted outputs of a token summed in one reduction in top-k order, for the eager
loop accumulated in ascending expert order (bit-identical to both; other implementations equal up to
rounding). Under the eager loop the event's top-k ids (and weights, outputs) of ``expert_output``
therefore come sorted by expert id per token.

The sink receives an :class:`ExpertEvent` with (N, K) ``top_k_index`` / ``top_k_weights``, (N, E)
``router_logits`` (None if the router's output has no such tensor), (N, K, D) ``outputs``
(``expert_output`` only) and ``mask`` (N,) over N = B * T flattened tokens; ``take(key)`` gives per-token
metadata (a (B,) tensor is repeated over positions, a (B, T) one flattened). Nothing is read back
to the host. ``Capture`` registers these hooks through :func:`moe_hooks`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import nn

from deepsight.capture import finite
from deepsight.errors import ConfigError

MOE_SITES = ("expert_routing", "expert_output")
_INDEX_KWARGS = ("top_k_index", "router_indices", "topk_indices", "selected_experts")
_WEIGHT_KWARGS = ("top_k_weights", "routing_weights", "topk_weights", "router_scores")


class ExpertEvent:
    """One MoE layer's routing in one forward call (see module docstring)."""

    def __init__(self, call: Any, spec: Any, layer: int, top_k_index: torch.Tensor, top_k_weights: torch.Tensor,
                 router_logits: torch.Tensor | None, outputs: torch.Tensor | None):
        self._call, self.spec, self.layer = call, spec, layer
        self.top_k_index, self.top_k_weights = top_k_index, top_k_weights
        self.router_logits, self.outputs = router_logits, outputs
        self.batch, self.length = call.batch, call.length

    @property
    def device(self) -> torch.device:
        return self.top_k_index.device

    @property
    def mask(self) -> torch.Tensor | None:
        """(N,) bool validity of the flattened tokens (None = all valid)."""
        m = self._call.mask_on(self.device)
        return None if m is None else m.reshape(-1).bool()

    def take(self, key: str) -> torch.Tensor:
        """Per-token metadata passed to ``Capture.forward``: (B,) repeated over positions or (B, T) flattened."""
        if key not in self._call.meta:
            raise KeyError(f"capture metadata {key!r} was not passed to forward(); have {sorted(self._call.meta)}")
        item = torch.as_tensor(self._call.meta[key]).to(self.device, non_blocking=True)
        if item.dim() == 1 and item.shape[0] == self.batch:
            return item.repeat_interleave(self.length)
        if item.dim() == 2 and tuple(item.shape) == (self.batch, self.length):
            return item.reshape(-1)
        if item.dim() == 2 and item.shape[0] == self.batch and item.shape[1] > self.length:
            return item[:, -self.length :].reshape(-1)  # generation: the current positions
        raise ValueError(f"capture metadata {key!r}: shape {tuple(item.shape)} is neither ({self.batch},) "
                         f"nor ({self.batch}, {self.length})")


def router_logits_of(output: Any, num_experts: int) -> torch.Tensor | None:
    """The (N, E) logits in a router's output: the tensor itself or the first float tensor of a tuple whose
    last dimension is E (Granite returns (index, weights, logits); most others (logits, weights, index))."""
    items = output if isinstance(output, (tuple, list)) else (output,)
    for t in items:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.shape[-1] == num_experts:
            return t.reshape(-1, num_experts)
    return None


def _routing_args(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    def pick(pos: int, names: tuple[str, ...]) -> Any:
        if len(args) > pos:
            return args[pos]
        for n in names:
            if n in kwargs:
                return kwargs[n]
        return None

    hidden = pick(0, ("hidden_states",))
    idx, w = pick(1, _INDEX_KWARGS), pick(2, _WEIGHT_KWARGS)
    if not all(isinstance(t, torch.Tensor) for t in (hidden, idx, w)):
        raise ConfigError("MoE capture: the experts module was not called with (hidden_states, top-k index, "
                          "top-k weights); this model's experts are not supported")
    return hidden, idx, w


def _with_routing(args: tuple, kwargs: dict, hidden: torch.Tensor, idx: torch.Tensor,
                  w: torch.Tensor) -> tuple[tuple, dict]:
    args, kwargs = list(args), dict(kwargs)
    for pos, value, names in ((0, hidden, ("hidden_states",)), (1, idx, _INDEX_KWARGS), (2, w, _WEIGHT_KWARGS)):
        if len(args) > pos:
            args[pos] = value
        else:
            kwargs[next(n for n in names if n in kwargs)] = value
    return tuple(args), kwargs


# transformers experts implementations that weight every (token, expert) pair's output and then sum each
# token's K products at once in the router's top-k order (``weighted.view(N, K, D).sum(1)``)
_SUM_IN_TOP_K_ORDER = ("grouped_mm", "batched_mm")


def experts_implementation(experts: nn.Module) -> str:
    """The transformers experts implementation a fused experts module dispatches to ("eager" = its own loop)."""
    impl = getattr(getattr(experts, "config", None), "_experts_implementation", None)
    return impl if isinstance(impl, str) else "eager"


def combine_like_sum(outputs: torch.Tensor, w: torch.Tensor, dtype: torch.dtype,
                     products: torch.Tensor | None = None) -> torch.Tensor:
    """grouped_mm / batched_mm's combination: the K weighted outputs of each token (top-k order) summed in one
    reduction -- the same products and the same reduction over the same shape as the model's own code.
    outputs (N, K, D), w (N, K) -> (N, D); ``products``: an (N, K, D) buffer for the weighted outputs."""
    if products is None:
        return (outputs * w[..., None]).sum(dim=1).to(dtype)
    return torch.mul(outputs, w[..., None], out=products).sum(dim=1).to(dtype)


def combine_like_eager(outputs: torch.Tensor, w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """sum_j w[n, j] * outputs[n, j] per token, added left to right into zeros of ``dtype``: with each token's
    routes sorted by ascending expert id this is the eager experts loop's order and roundings.
    outputs (N, K, D), w (N, K) -> (N, D)."""
    acc = (outputs[:, 0] * w[:, 0, None]).to(dtype)  # 0 + v = v exactly
    for j in range(1, outputs.shape[1]):
        acc = acc + (outputs[:, j] * w[:, j, None]).to(dtype)
    return acc


class PairWorkspace:
    """Reused (token, expert)-pair buffers shared by the MoE hooks of one ``Capture`` (freed with it).

    A pair tensor is N x K x D -- 64 MB at 4,096 tokens, top-8, D = 512 -- and an allocation that large is a
    fresh mapping each time (glibc maps blocks over 32 MB, CUDA's caching allocator aside), paying a page
    fault per 4 kB on first touch; the pair copy of the hidden states and the weighted products therefore
    write into buffers kept across layers and batches. Used only without autograd (nothing else may hold
    them between two MoE blocks)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}

    def get(self, role: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised contiguous tensor of ``shape`` with ``like``'s dtype and device."""
        numel = math.prod(shape)
        key = (role, like.device, like.dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < numel:
            self._buffers[key] = buf = torch.empty(numel, dtype=like.dtype, device=like.device)
        return buf[:numel].view(shape)


class _LayerHooks:
    def __init__(self, cap: Any, spec: Any, layer: int, num_experts: int, workspace: PairWorkspace | None = None):
        self.cap, self.spec, self.layer, self.num_experts = cap, spec, layer, num_experts
        self.workspace = workspace or PairWorkspace()
        self.logits: torch.Tensor | None = None
        self.pending: tuple | None = None

    def active(self) -> bool:
        return self.cap._call is not None and self.cap._recording is None

    def on_router(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.logits = router_logits_of(output, self.num_experts) if self.active() else None

    def on_experts_pre(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        self.pending = None
        if not self.active():
            return None
        hidden, idx, w = _routing_args(args, kwargs)
        hidden2 = hidden.reshape(-1, hidden.shape[-1])  # (N, D)
        idx2, w2 = idx.reshape(hidden2.shape[0], -1), w.reshape(hidden2.shape[0], -1)  # (N, K)
        self.pending = (hidden, idx2, w2)
        if self.spec.site != "expert_output":
            return None
        # The pairs are laid out so that the model's own code sees each expert's rows in the order it would
        # have: grouped_mm / batched_mm sort the flattened (token, route) ids, so token-major pairs are the
        # same sequence; the eager loop takes an expert's rows by (top-k position, token), so there the pairs
        # are route-major. The combination below then repeats the model's own (see on_experts).
        n, k = idx2.shape
        d = hidden2.shape[1]
        if experts_implementation(module) in _SUM_IN_TOP_K_ORDER:
            wide, ids = hidden2[:, None, :].expand(n, k, d), idx2.reshape(n * k, 1)  # pair n * K + j
        else:
            wide, ids = hidden2[None, :, :].expand(k, n, d), idx2.t().reshape(n * k, 1)  # pair j * N + n
        if torch.is_grad_enabled():
            pairs = wide.reshape(n * k, d)
        else:
            pairs = self.workspace.get("pairs", (n * k, d), hidden2)
            pairs.view(wide.shape).copy_(wide)
        return _with_routing(args, kwargs, pairs, ids.to(idx.dtype),
                             torch.ones(n * k, 1, dtype=w.dtype, device=w.device))

    def on_experts(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if self.pending is None:
            return None
        hidden, idx, w = self.pending
        self.pending, logits, self.logits = None, self.logits, None
        call = self.cap._call
        outputs, result = None, None
        if self.spec.site == "expert_output":
            out = output[0] if isinstance(output, (tuple, list)) else output
            n, k = idx.shape
            if experts_implementation(module) not in _SUM_IN_TOP_K_ORDER:
                # the eager loop adds a token's routes expert by expert: put them in ascending expert id
                # (the statistics do not depend on the order of a token's routes)
                idx, order = idx.sort(dim=1, stable=True)
                w = w.gather(1, order)
                by_route = out.reshape(k, n, -1).transpose(0, 1)  # (N, K, D) in top-k order
                outputs = by_route.gather(1, order[..., None].expand(n, k, by_route.shape[-1]))
                combined = combine_like_eager(outputs, w, out.dtype)
            else:
                outputs = out.reshape(n, k, -1)  # (N, K, D) unweighted output of each chosen expert
                products = None
                if not torch.is_grad_enabled() and torch.result_type(outputs, w) == outputs.dtype:
                    products = self.workspace.get("products", tuple(outputs.shape), outputs)
                combined = combine_like_sum(outputs, w, out.dtype, products)
            combined = combined.reshape(hidden.shape)
            result = (combined, *output[1:]) if isinstance(output, tuple) else combined
        if logits is not None and logits.shape[0] != idx.shape[0]:
            logits = None
        if call is not None and not (call.keep is not None and call.keep.numel() == 0):
            self._feed(call, idx.detach(), w.detach(), None if logits is None else logits.detach(),
                       None if outputs is None else outputs.detach())
        return result

    def _feed(self, call: Any, idx: torch.Tensor, w: torch.Tensor, logits: torch.Tensor | None,
              outputs: torch.Tensor | None) -> None:
        """Hand the sink the finite rows of this call (finite.py), once per row (engine's OOM retry)."""
        key = (self.spec.name, self.layer)
        if key in self.cap._skip:
            return
        parts = [idx, w, logits, outputs]
        if idx.shape[0] == call.batch * call.length:
            # -inf router logits are masked experts (ExpertMask, some routers), not a fault
            shown = None if logits is None else logits.masked_fill(logits == -float("inf"), 0)
            screened = finite.screen(self.cap.nonfinite, self.spec.name, self.layer, call, [w, shown, outputs],
                                     call.length, call.mask_on(w.device))
            if screened is None:
                self.cap._delivered.add(key)
                return
            if screened[1] is not None:
                parts = [finite.slice_rows(t, screened[1], call.batch, call.length) for t in parts]
                call = screened[0]
        with torch.no_grad():
            self.cap._sinks[self.spec.name](ExpertEvent(call, self.spec, self.layer, *parts))
        self.cap._delivered.add(key)


def moe_hooks(cap: Any, spec: Any, layer: int, workspace: PairWorkspace | None = None) -> list[Any]:
    """Register the router and experts hooks of an ``expert_routing`` / ``expert_output`` capture at block
    ``layer`` of ``cap``'s model (``workspace``: pair buffers shared by the capture's MoE blocks); returns
    the handles."""
    block = cap.anatomy.layers[layer]
    if block.experts is None or block.router is None:
        raise ConfigError(f"capture site {spec.site!r}: block {layer} is not an MoE block")
    if not block.fused_experts:
        raise ConfigError(f"capture site {spec.site!r}: block {layer} keeps its experts as separate modules; "
                          "only fused expert modules (transformers 5 MoE) are supported")
    hooks = _LayerHooks(cap, spec, layer, block.num_experts, workspace)
    return [
        block.router.register_forward_hook(hooks.on_router),
        block.experts.register_forward_pre_hook(hooks.on_experts_pre, with_kwargs=True),
        block.experts.register_forward_hook(partial(_call_forward_hook, hooks)),
    ]


def _call_forward_hook(hooks: _LayerHooks, module: nn.Module, args: tuple, output: Any) -> Any:
    return hooks.on_experts(module, args, output)
