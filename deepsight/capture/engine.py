"""The capture engine: forward hooks that reduce activations at chosen modules and hand them,
on the module's own device, to sinks that update statistics; early exit after the deepest
needed block; per-row step capture during generation.

Nothing is copied to the host or kept after the sink returns: a sink typically calls
``stat.update(...)`` on a statistic living on the same device as the layer.

Each option is a small module of its own: ``prefix.py`` (shared prefix run once), ``last_mlp.py``
(last-token MLP at the stop block), ``right_padding.py`` (right-padded rows without the mask),
``steps.py`` (generation steps); ``event.py`` holds what a sink receives.

Usage (see docs/engine.md)::

    specs = [CaptureSpec("block_output", layers=[3, 7], reduce="mean")]
    cents = {l: ClassCentroids(3, d, device=...) for l in (3, 7)}
    with Capture(model, specs, sink=lambda ev: cents[ev.layer].update(ev.value, ev.take("labels"))) as cap:
        for b in iter_batches(seqs, max_batch_tokens=16384, pad_id=pad):
            cap.forward(b.input_ids, b.attention_mask, labels=labels[b.index])   # stops after block 7
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from deepsight.capture import finite
from deepsight.capture import prefix as P
from deepsight.capture._sites import (
    first_tensor,
    get_anatomy,
    hook_target,
    layer_device,
    num_layers,
    stop_point,
    stop_target,
)
from deepsight.capture.event import CaptureEvent, _Call
from deepsight.capture.last_mlp import LastTokenMLP
from deepsight.capture.moe import MOE_SITES, PairWorkspace, moe_hooks
from deepsight.capture.prefix import PREFIX_MAX_ROW_RATIO, PREFIX_SITES, SharedPrefix, common_prefix_length
from deepsight.capture.right_padding import causal_right_padding_applies, drop_mask
from deepsight.capture.spec import CaptureSpec
from deepsight.capture.steps import GenerationSteps
from deepsight.errors import ConfigError
from deepsight.models.io import input_device
from deepsight.util.oom import free_accelerator_memory, is_out_of_memory

Sink = Callable[["CaptureEvent"], None]
log = logging.getLogger("deepsight")

__all__ = ["PREFIX_MAX_ROW_RATIO", "PREFIX_SITES", "Capture", "CaptureEvent", "SharedPrefix", "common_prefix_length",
           "truncated_forward"]


class _StopForward(Exception):
    """Raised by the deepest needed block so that no later block (nor the LM head) runs."""


class Capture:
    """Context manager registering the hooks of ``specs`` on ``model``; removes them on exit, errors included.

    ``sink``: a callable receiving each ``CaptureEvent``, or a dict {spec.name: callable}.
    ``early_exit``: stop ``forward`` after the deepest needed block (``stop_after`` overrides which).
    ``mask_positions``: pass position ids counted over valid tokens (left padding on absolute-position
    models); off by default, like a plain Hugging Face forward.
    ``causal_right_padding``: the caller's rows are right-padded and the model is a causal decoder, so
    ``forward`` runs the model without the padding mask (``right_padding.py``). Sinks still get the mask.
    ``last_token_mlp``: when every capture is the output of the block a forward stops after, reduced to
    the last valid token (TELLME), that block's MLP runs on those positions only (``last_mlp.py``).
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
        self._stop_point = self._resolve_stop(early_exit, stop_after)
        # block after which the forward stops (-1: before block 0; L: after the final norm); None = no early exit
        self.stop_after = None if self._stop_point is None else self._stop_point - 1
        self.mask_positions = mask_positions
        self.causal_right_padding = causal_right_padding_applies(model, causal_right_padding, mask_positions)
        self._last_mlp = (LastTokenMLP.find(self.anatomy, self._captures(), self._stop_point, self.num_layers)
                          if last_token_mlp else None)
        self._handles: list[Any] = []
        # the model call in progress, and the forward (or generation) it belongs to
        self._call: _Call | None = None
        self._in_forward = False
        self._meta: dict[str, Any] = {}  # per-row metadata of the forward in progress
        self._event_mask: torch.Tensor | None = None  # the mask sinks get when the model runs without one
        self._prefix: SharedPrefix | None = None  # prefix of the forward in progress
        self._gen: GenerationSteps | None = None
        self._recording: dict[tuple[str, int], torch.Tensor] | None = None  # states of a prefix being run
        # non-finite rows dropped per capture and layer (finite.py)
        self.nonfinite = finite.NonFiniteCounts("activations")
        # out-of-memory halving: the most rows a scan forward runs at once after one (None: no limit yet);
        # captures already fed for the rows being retried, and captures fed by the call in progress
        self.max_rows: int | None = None
        self._skip: frozenset[tuple[str, int]] = frozenset()
        self._delivered: set[tuple[str, int]] = set()

    def _captures(self) -> list[tuple[CaptureSpec, int]]:
        return [(spec, layer) for spec in self.specs for layer in self.layers[spec.name]]

    def _resolve_stop(self, early_exit: bool, stop_after: int | None) -> int | None:
        n = self.num_layers
        deepest = max((stop_point(spec.site, layer, n) for spec, layer in self._captures()), default=None)
        point = None
        if stop_after is not None:
            stop_after = stop_after + n if stop_after < 0 else stop_after
            if not 0 <= stop_after < n:
                raise ConfigError(f"stop_after={stop_after} outside a model with {n} blocks")
            point = stop_after + 1
            if deepest is not None and point < deepest:
                raise ConfigError(f"stop_after={stop_after} is before the deepest capture (block {deepest - 1})")
        return (point if point is not None else deepest) if early_exit else None

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
            pairs = PairWorkspace()  # held by the MoE hooks only: freed when they are removed
            for spec, layer in self._captures():
                if spec.site in MOE_SITES:  # router + experts hooks, see capture/moe.py
                    self._handles += moe_hooks(self, spec, layer, pairs)
                    continue
                module, kind = hook_target(self.anatomy, spec.site, layer)
                if kind == "forward":
                    h = module.register_forward_hook(partial(self._on_output, spec, layer))
                else:
                    h = module.register_forward_pre_hook(partial(self._on_input, spec, layer), with_kwargs=True)
                self._handles.append(h)
            if self._last_mlp is not None:
                self._handles.append(self._last_mlp.register(self._scan_call))
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

    def _scan_call(self) -> _Call | None:
        """The call of a scan forward in progress (not a generation step, not a prefix being recorded)."""
        if self._gen is not None or self._recording is not None or not self._in_forward:
            return None
        return self._call

    def _on_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape = ids.shape if ids is not None else kwargs["inputs_embeds"].shape[:2]
        b, t = int(shape[0]), int(shape[1])
        am = self._event_mask if self._event_mask is not None else kwargs.get("attention_mask")
        mask = am[:, -t:] if isinstance(am, torch.Tensor) and am.dim() == 2 else None  # (B, T) current positions
        call = _Call(b, t, mask, self._gen.meta if self._gen is not None else self._meta)
        if self._prefix is not None:  # validity over prefix + current positions, as the states sinks get
            call.mask, call.prefix = am, self._prefix
        if self._gen is not None:
            call.step, call.keep = self._gen.on_call(b, ids, shape_device(ids, kwargs))
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
        if (spec.name, layer) in self._skip:  # fed before an out-of-memory split these rows
            return
        flat = hidden.dim() == 2 and hidden.shape[0] == call.batch * call.length  # (B*T, D): expert_input
        if flat or hidden.dim() >= 2 and hidden.shape[0] == call.batch:
            length = call.length if flat else hidden.shape[1] if hidden.dim() > 2 else 1
            screened = finite.screen(self.nonfinite, spec.name, layer, call, [hidden], length,
                                     call.mask_on(hidden.device) if hidden.dim() > 2 or flat else None)
            if screened is None:  # every row non-finite: nothing reaches the statistic
                self._delivered.add((spec.name, layer))
                return
            if screened[1] is not None:
                call, keep = screened[0], screened[1]
                top_k = finite.slice_rows(top_k, keep, self._call.batch, length)
                hidden = finite.slice_rows(hidden, keep, self._call.batch, length)
        with torch.no_grad():
            self._sinks[spec.name](CaptureEvent(call, spec, layer, hidden, top_k))
        self._delivered.add((spec.name, layer))

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

    # -- running -----------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                prefix: SharedPrefix | None = None, **meta: Any) -> Any:
        """One scan forward (no grad, no KV cache) feeding the sinks; ``meta`` holds per-row data
        (e.g. ``labels=...``) that sinks read with ``event.take(name)``. With ``prefix`` (from
        ``shared_prefix``; right-padded rows that all start with it) only the positions after it
        run (batches longer than ``PREFIX_MAX_ROW_RATIO`` prefix lengths run whole). Returns the model
        output only when no early exit happened and no prefix was used.

        Out of memory (with early exit): the rows are run again in two halves, recursively, and no
        forward runs more than ``max_rows`` rows from then on; a capture fed before the error is not fed
        those rows again, so every statistic sees each row once. A single row that does not fit raises."""
        assert self._handles or not self.specs, "use Capture inside a `with` block"
        return self._forward_rows(input_ids, attention_mask, prefix, meta)

    def _forward_rows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      prefix: SharedPrefix | None, meta: dict[str, Any]) -> Any:
        b = int(input_ids.shape[0])
        if self._stop_point is None:  # the output is returned: no splitting
            return self._forward_once(input_ids, attention_mask, prefix, meta)
        if self.max_rows is not None and b > self.max_rows:
            for start in range(0, b, self.max_rows):
                self._forward_part(torch.arange(start, min(start + self.max_rows, b)), input_ids, attention_mask,
                                   prefix, meta)
            return None
        oom = None
        try:
            return self._forward_once(input_ids, attention_mask, prefix, meta)
        except Exception as exc:
            if not is_out_of_memory(exc) or b == 1:
                raise
            oom = f"{type(exc).__name__}: {exc}"  # leave the except block first: its traceback pins tensors
        delivered = self._delivered
        free_accelerator_memory()
        half = (b + 1) // 2
        self.max_rows = half if self.max_rows is None else min(self.max_rows, half)
        log.warning("out of memory on a scan forward of %d rows (%s); running them in halves, at most %d rows per "
                    "forward from now on", b, oom.splitlines()[0][:200] if oom else "", self.max_rows)
        outer = self._skip
        self._skip = outer | frozenset(delivered)
        try:
            for rows in (torch.arange(0, half), torch.arange(half, b)):
                self._forward_part(rows, input_ids, attention_mask, prefix, meta)
        finally:
            self._skip = outer
        return None

    def _forward_part(self, rows: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      prefix: SharedPrefix | None, meta: dict[str, Any]) -> None:
        self._forward_rows(input_ids[rows.to(input_ids.device)],
                           None if attention_mask is None else attention_mask[rows.to(attention_mask.device)],
                           prefix, {k: finite.take_rows(v, rows) for k, v in meta.items()})

    def _forward_once(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      prefix: SharedPrefix | None, meta: dict[str, Any]) -> Any:
        self._delivered = set()
        shortcut = self._last_mlp
        if shortcut is not None:
            shortcut.used = False
        try:
            return self._forward(input_ids, attention_mask, prefix, meta)
        except Exception as err:
            if shortcut is None or not shortcut.used or is_out_of_memory(err):
                raise
            # Every capture is at the stop block, whose output hook had not fired: nothing reached a sink.
            log.info("the last-token MLP shortcut does not fit this model's blocks (%s: %s); running whole blocks",
                     type(err).__name__, err)
            shortcut.handle.remove()
            self._handles.remove(shortcut.handle)
            self._last_mlp = None
            return self._forward(input_ids, attention_mask, prefix, meta)

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, prefix: SharedPrefix | None,
                 meta: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {"attention_mask": attention_mask, "use_cache": False}
        if self.mask_positions and attention_mask is not None:
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, T)
        prefix = P.fits(prefix, input_ids)
        if prefix is not None:
            input_ids, kwargs = P.continue_from(prefix, input_ids, attention_mask)
        if self.causal_right_padding:
            self._event_mask = drop_mask(kwargs)
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
        n = P.prefix_length(seqs, min_length)
        if not n or any(spec.site not in PREFIX_SITES for spec in self.specs) or self._gen is not None:
            return None
        ids = torch.as_tensor(list(seqs[0][:n]), dtype=torch.long, device=input_device(self.model, self.anatomy))
        self._recording, self._in_forward = {}, True
        try:
            cache = P.run_prefix(self.model, ids, _StopForward)
        finally:
            states, self._recording, self._in_forward, self._call = self._recording, None, False, None
        return P.make_prefix(ids, cache, states, {(spec.name, layer) for spec, layer in self._captures()})

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 eos_token_id: int | Sequence[int] | None = None, meta: dict[str, Any] | None = None,
                 **generate_kwargs: Any) -> Any:
        """``model.generate`` with the hooks active: a ``step`` capture gets, per forward call, the last
        position of every row that has not finished (a row finishes once it feeds back an EOS id, or
        when the caller marks it with ``mark_finished``). No early exit. Returns generate's output."""
        self.begin_generation(eos_token_id, **dict(meta or {}))
        if eos_token_id is not None:
            generate_kwargs.setdefault("eos_token_id", eos_token_id)
        try:
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        finally:
            self.end_generation()

    def begin_generation(self, eos_token_id: int | Sequence[int] | None = None, **meta: Any) -> None:
        """Start step tracking for a generation loop the caller drives (call the model step by step, e.g.
        ``generation.decode.decode_batch`` with a ``step_callback``)."""
        self._gen = GenerationSteps(eos_token_id, meta)

    def end_generation(self) -> None:
        self._gen, self._call = None, None

    def mark_finished(self, finished: torch.Tensor) -> None:
        """Caller-side finished mask (B,) bool: those rows are skipped by later ``step`` captures."""
        assert self._gen is not None, "mark_finished outside a generation"
        self._gen.mark_finished(finished)

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
