"""Capture option ``shared_prefix``: the tokens every row starts with run once.

Chat-template scans start every row with the same tokens (SmolLM2's template: a 24-token system
prompt, a fifth of a TELLME row). ``Capture.shared_prefix(seqs)`` runs the longest prefix all rows
share once, recording its KV cache and its (1, P, D) state at every capture (``SharedPrefix``);
``Capture.forward(..., prefix=...)`` then runs only the positions after it on a copy of the cache
(``continue_from``) and prepends the prefix states, so every sink sees the same (B, T, D) tensors
as a full forward (causal attention: the prefix's states do not depend on what follows).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger("deepsight")

# A cached prefix makes attention take an explicit mask (query and key lengths differ), which on a CPU
# costs ~25% more attention time: rows longer than this many prefix lengths run whole, since the
# prefix saves too small a share of their work (X-Boundary's 940-token chats: 2.5%).
PREFIX_MAX_ROW_RATIO = 8
# sites whose hook tensor is (B, T, D) over the call's positions: a shared prefix's states can be prepended
PREFIX_SITES = frozenset({"hidden_states", "block_output", "attention_output", "mlp_input", "mlp_output"})


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


def prefix_length(seqs: Sequence[Sequence[int]], min_length: int) -> int:
    """The shared prefix to run once, keeping at least one token of every row after it; 0 if < min_length."""
    n = min(common_prefix_length(seqs), min((len(s) for s in seqs), default=0) - 1)
    return n if n >= min_length else 0


def run_prefix(model: nn.Module, ids: torch.Tensor, stop: type[BaseException]) -> Any:
    """Run the (P,) prefix ``ids`` into a fresh ``DynamicCache`` (the capture hooks record its states;
    ``stop`` is the early-exit exception); the cache, or None (logged) where the model cannot do that."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=model.config)
    except TypeError:  # pragma: no cover - older transformers
        cache = DynamicCache()
    try:
        with torch.no_grad():
            model(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None], past_key_values=cache,
                  use_cache=True)
    except stop:
        pass
    except Exception as e:  # noqa: BLE001 - any model that cannot do this falls back to full forwards
        log.info("shared prefix not used (%s: %s); running full rows", type(e).__name__, e)
        return None
    return cache


def make_prefix(ids: torch.Tensor, cache: Any, states: dict[tuple[str, int], torch.Tensor],
                wanted: set[tuple[str, int]]) -> SharedPrefix | None:
    """The ``SharedPrefix`` when the prefix pass produced every capture and filled the cache, else None."""
    if cache is None:
        return None
    if set(states) != wanted or cache.get_seq_length() != ids.numel():
        log.info("shared prefix not used (the prefix pass did not produce every capture); running full rows")
        return None
    return SharedPrefix(ids, cache, states)


def fits(prefix: SharedPrefix | None, input_ids: torch.Tensor) -> SharedPrefix | None:
    """``prefix``, or None for a batch whose rows are too long for it to pay (``PREFIX_MAX_ROW_RATIO``)."""
    if prefix is not None and input_ids.shape[1] > PREFIX_MAX_ROW_RATIO * prefix.length:
        return None
    return prefix


def continue_from(prefix: SharedPrefix, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Inputs of a forward that continues every row from ``prefix``'s cache: (ids after it, model kwargs)."""
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
