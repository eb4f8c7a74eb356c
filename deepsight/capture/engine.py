"""The capture engine: forward hooks that reduce activations at chosen modules and hand them,
on the module's own device, to sinks that update statistics; early exit after the deepest
needed block; per-row step capture during generation.

Nothing is copied to the host or kept after the sink returns: a sink typically calls
``stat.update(...)`` on a statistic living on the same device as the layer.

Usage (see docs/engine.md)::

    specs = [CaptureSpec("block_output", layers=[3, 7], reduce="mean")]
    cents = {l: ClassCentroids(3, d, device=...) for l in (3, 7)}
    with Capture(model, specs, sink=lambda ev: cents[ev.layer].update(ev.value, ev.take("labels"))) as cap:
        for b in iter_batches(seqs, max_batch_tokens=16384, pad_id=pad):
            cap.forward(b.input_ids, b.attention_mask, labels=labels[b.index])   # stops after block 7
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from deepsight.capture import reduce as R
from deepsight.capture._sites import (
    first_tensor,
    get_anatomy,
    hook_target,
    layer_device,
    num_layers,
    stop_point,
    stop_target,
)
from deepsight.capture.spec import CaptureSpec
from deepsight.errors import ConfigError
from deepsight.models.io import input_device

Sink = Callable[["CaptureEvent"], None]
log = logging.getLogger("deepsight")

# A cached prefix makes attention take an explicit mask (query and key lengths differ), which on a CPU
# costs ~25% more attention time: rows longer than this many prefix lengths run whole, since the
# prefix saves too small a share of their work (X-Boundary's 940-token chats: 2.5%).
PREFIX_MAX_ROW_RATIO = 8
# sites whose hook tensor is (B, T, D) over the call's positions: a shared prefix's states can be prepended
PREFIX_SITES = frozenset({"hidden_states", "block_output", "attention_output", "mlp_input", "mlp_output"})


class _StopForward(Exception):
    """Raised by the deepest needed block so that no later block (nor the LM head) runs."""


@dataclass
class SharedPrefix:
    """Tokens every row of a scan starts with (e.g. a chat template's system prompt), run once.

    ``cache`` is the model's KV cache after the prefix (filled up to the stop point) and ``states``
    the prefix's (1, P, D) tensor at every capture (spec name, layer). ``Capture.forward(...,
    prefix=...)`` runs only the rest of each row on top of a copy of the cache and prepends the
    prefix states, so sinks and reductions see the same (B, T, D) tensors as a full forward:
    with causal attention the prefix's states do not depend on what follows (equal up to rounding).
    """

    ids: torch.Tensor  # (P,) int64 on the input device
    cache: Any
    states: dict[tuple[str, int], torch.Tensor]

    @property
    def length(self) -> int:
        return int(self.ids.numel())


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by every sequence (0 for none or no sequences)."""
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


@dataclass
class _Call:
    """What the engine knows about the model call in progress."""

    batch: int
    length: int
    mask: torch.Tensor | None  # (B, T) validity of the current positions, on the input device
    meta: dict[str, Any]
    step: int | None = None  # forward-call index within a generation (0 = prefill)
    keep: torch.Tensor | None = None  # (R,) rows still generating at this step; None = all rows
    masks: dict[torch.device, torch.Tensor] = field(default_factory=dict)  # mask per device (moved once)
    prefix: SharedPrefix | None = None  # states to prepend (the call runs the positions after it)

    def mask_on(self, device: torch.device) -> torch.Tensor | None:
        if self.mask is None:
            return None
        if device not in self.masks:
            self.masks[device] = self.mask.to(device, non_blocking=True)
        return self.masks[device]


@dataclass
class _Generation:
    eos: torch.Tensor | None  # (E,) end-of-sequence ids
    finished: torch.Tensor | None = None  # (B,) bool: row emitted EOS (or was marked by the caller)
    calls: int = 0


class CaptureEvent:
    """One capture: ``spec``, ``layer``, the raw ``hidden`` tensor, its ``mask`` and the lazily reduced
    ``value`` with ``rows`` (the batch row of each value row; None = row i is batch row i)."""

    def __init__(self, call: _Call, spec: CaptureSpec, layer: int, hidden: torch.Tensor,
                 top_k_index: torch.Tensor | None = None):
        self.spec, self.layer, self.hidden, self._call = spec, layer, hidden, call
        self.step = call.step
        self._top_k_index = top_k_index
        self._value: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None
        self.experts: torch.Tensor | None = None  # expert_input: (P,) expert of each value row
        self._taken: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return self.hidden.device

    @property
    def mask(self) -> torch.Tensor | None:
        """(B, T) validity of the tokens of ``hidden`` on its device (None = all valid)."""
        return self._call.mask_on(self.hidden.device)

    @property
    def value(self) -> torch.Tensor:
        """mean: (B, D) float32; last: (B, D); all: (N_valid, D); step: (R, D) rows still generating;
        expert_input/all: (P, D) one row per valid (token, expert) pair; none: ``hidden``."""
        if self._value is None:
            self._value, self._rows = self._reduce()
        return self._value

    @property
    def rows(self) -> torch.Tensor | None:
        self.value  # noqa: B018 - computes rows with the value
        return self._rows

    def take(self, key: str) -> Any:
        """Per-row metadata passed to ``Capture.forward`` (e.g. labels), aligned with ``value``'s rows
        and moved to this device (tensors) or listed (sequences)."""
        if key not in self._taken:
            if key not in self._call.meta:
                raise KeyError(f"capture metadata {key!r} was not passed to forward(); have {sorted(self._call.meta)}")
            item, rows = self._call.meta[key], self.rows
            if isinstance(item, torch.Tensor):
                item = item.to(self.device, non_blocking=True)
                self._taken[key] = item if rows is None else item[rows]
            else:
                self._taken[key] = list(item) if rows is None else [item[i] for i in rows.tolist()]
        return self._taken[key]

    def _reduce(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        how, h, mask = self.spec.reduce, self.hidden, self.mask
        if self.spec.site == "expert_input":
            return self._expert_pairs() if how == "all" else (h, None)
        if how == "none":
            return h, None
        if how == "mean":
            return R.masked_mean(h, mask), None
        if how == "last":
            return R.last_token(h, mask), None
        if how == "all":
            return R.valid_tokens(h, mask)
        # step: last position of this call per row (prefill: last valid token), rows still generating
        last = R.last_token(h, mask)  # (B, D)
        keep = self._call.keep
        if keep is None:
            return last, torch.arange(h.shape[0], device=h.device)
        keep = keep.to(h.device)
        return last[keep], keep

    def _expert_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        h, idx = self.hidden, self._top_k_index  # (N, D), (N, k) with N = B * T
        n, k = idx.shape
        token = torch.arange(n, device=h.device)[:, None].expand(n, k)  # (N, k)
        mask = self.mask
        sel = torch.ones_like(idx, dtype=torch.bool) if mask is None else mask.reshape(n, 1).bool().expand(n, k)
        tok = token[sel]
        self.experts = idx[sel]
        return h[tok], tok // self._call.length


def _check_right_padded(mask: torch.Tensor) -> None:
    """Rows whose valid tokens come first (checked on CPU tensors; on an accelerator it would cost a sync)."""
    if mask.device.type == "cpu" and mask.shape[1] > 1 and bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ValueError("causal_right_padding: a row has a valid token after a padded one (not right padding)")


class Capture:
    """Context manager registering the hooks of ``specs`` on ``model``; removes them on exit, errors included.

    ``sink``: a callable receiving each ``CaptureEvent``, or a dict {spec.name: callable}.
    ``early_exit``: stop ``forward`` after the deepest needed block (``stop_after`` overrides which).
    ``mask_positions``: pass position ids counted over valid tokens (left padding on absolute-position
    models); off by default, like a plain Hugging Face forward.
    ``causal_right_padding``: the caller's rows are right-padded and the model is a causal decoder, so
    ``forward`` runs the model without the padding mask: a valid token attends only to earlier positions,
    all valid, so its states are those of the masked forward (up to rounding), and attention can take its
    causal path (half the score blocks) instead of an explicit mask. Sinks still get the mask.
    ``last_token_mlp``: when every capture is the output of the block a forward stops after, reduced to
    the last valid token (TELLME), that block's MLP runs on those positions only (its output broadcasts
    over the residual; the block's other positions are then not meaningful and nothing reads them). A model
    whose block cannot take that (an error) runs the batch again without it, and later batches too.
    """

    def __init__(self, model: nn.Module, specs: Sequence[CaptureSpec], sink: Sink | dict[str, Sink] | None = None,
                 *, anatomy: Any = None, early_exit: bool = True, stop_after: int | None = None,
                 mask_positions: bool = False, causal_right_padding: bool = False, last_token_mlp: bool = True):
        self.model = model
        self.anatomy = anatomy if anatomy is not None else get_anatomy(model)
        self.specs = list(specs)
        self.num_layers = num_layers(self.anatomy)
        self._sinks = self._resolve_sinks(sink)
        self.layers = {spec.name: spec.resolved_layers(self.num_layers) for spec in self.specs}
        n = self.num_layers
        deepest = max((stop_point(spec.site, layer, n) for spec in self.specs for layer in self.layers[spec.name]),
                      default=None)
        point = None
        if stop_after is not None:
            stop_after = stop_after + n if stop_after < 0 else stop_after
            if not 0 <= stop_after < n:
                raise ConfigError(f"stop_after={stop_after} outside a model with {n} blocks")
            point = stop_after + 1
            if deepest is not None and point < deepest:
                raise ConfigError(f"stop_after={stop_after} is before the deepest capture (block {deepest - 1})")
        self._stop_point = (point if point is not None else deepest) if early_exit else None
        # block after which the forward stops (-1: before block 0; L: after the final norm); None = no early exit
        self.stop_after = None if self._stop_point is None else self._stop_point - 1
        self.mask_positions = mask_positions
        if causal_right_padding and mask_positions:
            raise ConfigError("causal_right_padding needs right padding; mask_positions is for left padding")
        # (an encoder-decoder's encoder attends both ways: it keeps its mask)
        self.causal_right_padding = causal_right_padding and not getattr(model.config, "is_encoder_decoder", False)
        self._event_mask: torch.Tensor | None = None  # the mask sinks get when the model runs without one
        self._last_mlp = self._last_token_mlp_module() if last_token_mlp else None
        self._last_mlp_used = False  # the shortcut ran in the forward in progress
        self._last_mlp_handle: Any = None
        self._handles: list[Any] = []
        self._call: _Call | None = None
        self._meta: dict[str, Any] = {}
        self._in_forward = False
        self._gen: _Generation | None = None
        self._prefix: SharedPrefix | None = None  # prefix of the forward in progress
        self._recording: dict[tuple[str, int], torch.Tensor] | None = None  # states of a prefix being run

    def _resolve_sinks(self, sink: Sink | dict[str, Sink] | None) -> dict[str, Sink]:
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"capture spec names must be unique; got {names}")
        if isinstance(sink, dict):
            missing = [n for n in names if n not in sink]
            if missing:
                raise ConfigError(f"no sink for capture spec(s) {missing}")
            return dict(sink)
        if sink is None and self.specs:
            raise ConfigError("Capture needs a sink for its specs")
        return {n: sink for n in names}

    # -- hooks -------------------------------------------------------------------------------
    def __enter__(self) -> Capture:
        assert not self._handles, "Capture entered twice"
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._on_call, with_kwargs=True))
            for spec in self.specs:
                for layer in self.layers[spec.name]:
                    module, kind = hook_target(self.anatomy, spec.site, layer)
                    if kind == "forward":
                        h = module.register_forward_hook(partial(self._on_output, spec, layer))
                    else:
                        h = module.register_forward_pre_hook(partial(self._on_input, spec, layer), with_kwargs=True)
                    self._handles.append(h)
            if self._last_mlp is not None:
                self._last_mlp_handle = self._last_mlp.register_forward_pre_hook(self._on_last_mlp, with_kwargs=True)
                self._handles.append(self._last_mlp_handle)
            if self._stop_point is not None:  # registered last: runs after the captures at that point
                module, kind = stop_target(self.anatomy, self._stop_point)
                if kind == "forward":
                    self._handles.append(module.register_forward_hook(self._on_stop))
                else:
                    self._handles.append(module.register_forward_pre_hook(self._on_stop_pre))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._call, self._gen, self._in_forward, self._meta = None, None, False, {}

    def _on_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape = ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2]
        b, t = int(shape[0]), int(shape[1])
        am = self._event_mask if self._event_mask is not None else kwargs.get("attention_mask")
        mask = am[:, -t:] if isinstance(am, torch.Tensor) and am.dim() == 2 else None  # (B, T) current positions
        call = _Call(b, t, mask, self._meta)
        if self._prefix is not None:  # validity over prefix + current positions, as the states sinks get
            call.mask, call.prefix = am, self._prefix
        gen = self._gen
        if gen is not None:
            call.step = gen.calls
            if gen.finished is None:
                gen.finished = torch.zeros(b, dtype=torch.bool, device=shape_device(ids, kwargs))
            if gen.calls > 0 and gen.eos is not None and ids is not None:  # token fed back = last generated
                gen.finished |= torch.isin(ids[:, -1], gen.eos.to(ids.device))
            gen.calls += 1
            call.keep = (~gen.finished).nonzero().squeeze(1) if bool(gen.finished.any()) else None
        self._call = call

    def _emit(self, spec: CaptureSpec, layer: int, hidden: torch.Tensor, top_k: torch.Tensor | None = None) -> None:
        call = self._call
        if call is None:  # the module ran outside a call of the hooked model (e.g. called directly)
            return
        hidden = hidden.detach()
        if hidden.dim() == 2 and spec.site != "expert_input" and hidden.shape[0] == call.batch * call.length:
            hidden = hidden.view(call.batch, call.length, -1)  # (B, T, D) from (B*T, D)
        if self._recording is not None:
            self._recording[(spec.name, layer)] = hidden.clone()
            return
        if call.prefix is not None:
            pre = call.prefix.states[(spec.name, layer)].to(hidden.device, hidden.dtype)
            hidden = torch.cat([pre.expand(hidden.shape[0], -1, -1), hidden], dim=1)
        if call.keep is not None and call.keep.numel() == 0:
            return
        with torch.no_grad():
            self._sinks[spec.name](CaptureEvent(call, spec, layer, hidden, top_k))

    def _on_output(self, spec: CaptureSpec, layer: int, module: nn.Module, args: tuple, output: Any) -> None:
        self._emit(spec, layer, first_tensor(output))

    def _on_input(self, spec: CaptureSpec, layer: int, module: nn.Module, args: tuple, kwargs: dict) -> None:
        values = list(args) + list(kwargs.values())
        hidden = first_tensor(values[0] if args else kwargs.get("hidden_states", values[0]))
        top_k = None
        if spec.site == "expert_input":
            top_k = args[1] if len(args) > 1 else kwargs.get("top_k_index", kwargs.get("router_indices"))
            assert isinstance(top_k, torch.Tensor), "expert_input: could not find the routed expert indices"
        self._emit(spec, layer, hidden, top_k)

    def _on_stop(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self._in_forward:
            raise _StopForward

    def _on_stop_pre(self, module: nn.Module, args: tuple) -> None:
        if self._in_forward:
            raise _StopForward

    def _last_token_mlp_module(self) -> nn.Module | None:
        """The MLP of the block the forward stops after, if every capture is that block's output reduced to
        the last valid token (nothing reads that block's other positions)."""
        point, n = self._stop_point, self.num_layers
        if point is None or not 0 < point <= n:
            return None
        captures = [(spec, layer) for spec in self.specs for layer in self.layers[spec.name]]
        # every capture at the stop block (so a failing shortcut has fed no sink yet), each its last token
        if not captures or not all(stop_point(spec.site, layer, n) == point and spec.reduce == "last"
                                   and spec.site in ("block_output", "hidden_states") for spec, layer in captures):
            return None
        layers = getattr(self.anatomy, "layers", None)
        return getattr(layers[point - 1], "mlp", None) if layers is not None else None

    def _on_last_mlp(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """Pre-hook of that MLP: keep each row's last valid position (right or left padding, prefix or not)."""
        call = self._call
        if call is None or self._gen is not None or self._recording is not None or not self._in_forward:
            return None
        x = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or tuple(x.shape[:2]) != (call.batch, call.length):
            return None
        mask = None if call.mask is None else call.mask[:, -call.length :].to(x.device)
        last = R.last_valid_index(mask, call.batch, call.length, x.device)  # (B,)
        x_last = x[torch.arange(call.batch, device=x.device), last][:, None]  # (B, 1, D)
        self._last_mlp_used = True
        if args:
            return (x_last, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": x_last}

    # -- running -----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                prefix: SharedPrefix | None = None, **meta: Any) -> Any:
        """One scan forward (no grad, no KV cache) feeding the sinks; ``meta`` holds per-row data
        (e.g. ``labels=...``) that sinks read with ``event.take(name)``. With ``prefix`` (from
        ``shared_prefix``; right-padded rows that all start with it) only the positions after it
        run (batches longer than ``PREFIX_MAX_ROW_RATIO`` prefix lengths run whole). Returns the model
        output only when no early exit happened and no prefix was used."""
        assert self._handles or not self.specs, "use Capture inside a `with` block"
        self._last_mlp_used = False
        try:
            return self._forward(input_ids, attention_mask, prefix, meta)
        except Exception as err:
            if not self._last_mlp_used:
                raise
            # Every capture is at the stop block, whose output hook had not fired: nothing reached a sink.
            log.info("the last-token MLP shortcut does not fit this model's blocks (%s: %s); running whole blocks",
                     type(err).__name__, err)
            self._last_mlp_handle.remove()
            self._handles.remove(self._last_mlp_handle)
            self._last_mlp = self._last_mlp_handle = None
            return self._forward(input_ids, attention_mask, prefix, meta)

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, prefix: SharedPrefix | None,
                 meta: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {"attention_mask": attention_mask, "use_cache": False}
        if self.mask_positions and attention_mask is not None:
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, T)
        if prefix is not None and input_ids.shape[1] > PREFIX_MAX_ROW_RATIO * prefix.length:
            prefix = None
        if prefix is not None:
            input_ids, kwargs = self._after_prefix(prefix, input_ids, attention_mask)
        if self.causal_right_padding and kwargs["attention_mask"] is not None:
            self._event_mask = kwargs["attention_mask"]
            _check_right_padded(self._event_mask)
            kwargs["attention_mask"] = None
        self._meta, self._in_forward, self._prefix = meta, True, prefix
        try:
            with torch.no_grad():
                out = self.model(input_ids=input_ids, **kwargs)
            return None if prefix is not None else out
        except _StopForward:
            return None
        finally:
            self._meta, self._in_forward, self._call, self._prefix, self._event_mask = {}, False, None, None, None

    def shared_prefix(self, seqs: Sequence[Sequence[int]], min_length: int = 8) -> SharedPrefix | None:
        """Run the token prefix every one of ``seqs`` starts with once, for ``forward(..., prefix=...)``.

        Keeps at least one token of every row out of the prefix. None (use plain forwards) when the
        prefix is shorter than ``min_length``, a capture site is not per position (routers, experts),
        or the model cannot continue from a KV cache (logged)."""
        n = min(common_prefix_length(seqs), min((len(s) for s in seqs), default=0) - 1)
        if n < min_length or any(spec.site not in PREFIX_SITES for spec in self.specs) or self._gen is not None:
            return None
        from transformers import DynamicCache

        device = input_device(self.model, self.anatomy)
        ids = torch.as_tensor(list(seqs[0][:n]), dtype=torch.long, device=device)
        try:
            cache = DynamicCache(config=self.model.config)
        except TypeError:  # pragma: no cover - older transformers
            cache = DynamicCache()
        self._recording, self._in_forward = {}, True
        try:
            with torch.no_grad():
                self.model(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None], past_key_values=cache,
                           use_cache=True)
        except _StopForward:
            pass
        except Exception as e:  # noqa: BLE001 - any model that cannot do this falls back to full forwards
            log.info("shared prefix not used (%s: %s); running full rows", type(e).__name__, e)
            return None
        finally:
            states, self._recording, self._in_forward, self._call = self._recording, None, False, None
        wanted = {(spec.name, layer) for spec in self.specs for layer in self.layers[spec.name]}
        if set(states) != wanted or cache.get_seq_length() != n:
            log.info("shared prefix not used (the prefix pass did not produce every capture); running full rows")
            return None
        return SharedPrefix(ids, cache, states)

    def _after_prefix(self, prefix: SharedPrefix, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Inputs of a forward that continues every row from ``prefix``'s cache."""
        p, (b, t) = prefix.length, input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # both checks in one host sync per batch, not two
        ok = t > p and bool((input_ids[:, :p] == prefix.ids.to(input_ids.device)).all()
                             & attention_mask[:, : p + 1].bool().all())
        if not ok:
            raise ValueError(f"forward(prefix=...): every row must start with the {p} prefix tokens and have a "
                             "real token after them (right padding)")
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(b)
        positions = torch.arange(p, t, device=input_ids.device).expand(b, t - p)
        return input_ids[:, p:], {"attention_mask": attention_mask, "past_key_values": cache, "use_cache": True,
                                  "position_ids": positions}

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 eos_token_id: int | Sequence[int] | None = None, meta: dict[str, Any] | None = None,
                 **generate_kwargs: Any) -> Any:
        """``model.generate`` with the hooks active: a ``step`` capture gets, per forward call, the last
        position of every row that has not finished (a row finishes once it feeds back an EOS id, or
        when the caller marks it with ``mark_finished``). No early exit. Returns generate's output."""
        eos = None if eos_token_id is None else torch.as_tensor(eos_token_id, dtype=torch.long).reshape(-1)
        self._gen, self._meta = _Generation(eos), dict(meta or {})
        if eos_token_id is not None:
            generate_kwargs.setdefault("eos_token_id", eos_token_id)
        try:
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        finally:
            self._gen, self._meta, self._call = None, {}, None

    def begin_generation(self, eos_token_id: int | Sequence[int] | None = None, **meta: Any) -> None:
        """Start step tracking for a generation loop the caller drives (call the model step by step)."""
        eos = None if eos_token_id is None else torch.as_tensor(eos_token_id, dtype=torch.long).reshape(-1)
        self._gen, self._meta = _Generation(eos), meta

    def end_generation(self) -> None:
        self._gen, self._meta, self._call = None, {}, None

    def mark_finished(self, finished: torch.Tensor) -> None:
        """Caller-side finished mask (B,) bool: those rows are skipped by later ``step`` captures."""
        assert self._gen is not None, "mark_finished outside a generation"
        f = finished.bool()
        self._gen.finished = f.clone() if self._gen.finished is None else self._gen.finished | f.to(
            self._gen.finished.device)

    def layer_device(self, layer: int, site: str = "block_output") -> torch.device:
        """Device where block ``layer`` runs (for ``site="hidden_states"``, where index ``layer`` is
        produced): create that layer's statistics there."""
        if site == "hidden_states":
            layer = layer + self.num_layers + 1 if layer < 0 else layer
            layer = min(max(layer - 1, 0), self.num_layers - 1)
        return layer_device(self.anatomy, layer + self.num_layers if layer < 0 else layer)

    @property
    def active(self) -> bool:
        return bool(self._handles)


def shape_device(ids: torch.Tensor | None, kwargs: dict) -> torch.device:
    return ids.device if ids is not None else kwargs["inputs_embeds"].device


def truncated_forward(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      stop_after: int, *, anatomy: Any = None) -> None:
    """A bare forward that stops after block ``stop_after`` (the baseline of the overhead benchmark)."""
    with Capture(model, [], anatomy=anatomy, stop_after=stop_after) as cap:
        cap.forward(input_ids, attention_mask)
