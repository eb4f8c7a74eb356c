"""Batched autoregressive decoding with a KV cache and per-row stopping.

``decode_batch`` runs one forward call per step over the rows still generating:

- prompts are left-padded; the attention mask marks real tokens and the position ids are
  computed from the mask (``cumsum(mask) - 1``), so a padded row sees exactly the positions
  it would see alone;
- step 0 is the prefill (only the last position's logits are computed); each later step feeds
  the previous token of every live row with its own next position, reusing the KV cache;
- ``share_prefix=True``: the tokens every prompt starts with (a chat template's system prompt:
  24 of SmolLM2's ~40 XSTest prompt tokens) are run once at batch 1, their cache copied to every
  row, and the prefill runs only the rest of each row, left-padded after the prefix (the pads sit
  between prefix and suffix, masked; positions still count real tokens only). Same numbers up to
  float rounding (causal attention: the prefix's keys and values do not depend on what follows);
  not used with a ``step_callback`` (its one-forward-per-step contract) nor for models with
  sliding-window or recurrent cache layers (pads between tokens would change what they see);
- a row stops at any of ``eos_ids`` (the EOS token is counted as generated) or when
  ``stop_check`` says so; finished rows are dropped from the batch and from the cache once they
  are a quarter of the batch (at once when a ``step_callback`` is given), their extra tokens ignored;
- the KV cache writes into buffers preallocated for prompt + new tokens (``kv_cache.py``), not
  a ``torch.cat`` of the whole cache per step;
- greedy when ``temperature == 0``, else temperature + top-p sampling where row i draws from
  its own ``torch.Generator`` seeded with ``seeds[i]``, so a row's sample does not depend on
  which rows share its batch.

``step_callback(step, rows)`` is called after each forward with the indices (into ``prompts``)
of the rows in that forward (every row of the batch is live then), which lets activation hooks
attribute each call's batch rows (e.g. the MI-Peaks capture of one reasoning state per step).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepsight.generation.kv_cache import full_attention_only, preallocated_cache
from deepsight.models.io import input_device  # where input ids must live

MIN_SHARED_PREFIX = 4  # shorter common prefixes are not worth the extra forward call


@dataclass
class DecodeOutput:
    tokens: list[list[int]]  # generated ids per prompt, including the EOS that stopped the row
    finish_reasons: list[str]  # "stop" (EOS or stop_check) | "length"


def left_pad(prompts: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, T) with T the longest prompt, padded on the left."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, T) counting real tokens only; pads get 0 (they are masked anyway)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def sample_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generators: list[torch.Generator] | None
) -> torch.Tensor:
    """Next token per row from last-position logits (b, V): argmax when temperature == 0, else top-p sampling."""
    if temperature <= 0:
        return logits.argmax(-1)
    assert generators is not None and len(generators) == logits.shape[0], "one generator per row"
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (b, V)
    sorted_probs, order = probs.sort(dim=-1, descending=True)  # (b, V)
    if top_p < 1.0:
        mass_before = sorted_probs.cumsum(-1) - sorted_probs  # probability mass of the better tokens
        sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)  # the first token always stays
    cdf = sorted_probs.cumsum(-1)  # (b, V), unnormalised after the top-p cut
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])  # (b,)
    u = (u.to(cdf.device) * cdf[:, -1].double()).to(cdf.dtype)[:, None]  # (b, 1)
    pick = torch.searchsorted(cdf, u).clamp(max=cdf.shape[-1] - 1)  # (b, 1)
    return order.gather(-1, pick).squeeze(-1)


@torch.inference_mode()
def decode_batch(
    model,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    eos_ids: set[int],
    pad_id: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seeds: list[int] | None = None,
    stop_check: Callable[[int, list[int]], bool] | None = None,
    step_callback: Callable[[int, list[int]], None] | None = None,
    share_prefix: bool = False,
) -> DecodeOutput:
    """Generate up to ``max_new_tokens`` for every prompt in one batch (see the module docstring)."""
    n = len(prompts)
    tokens: list[list[int]] = [[] for _ in range(n)]
    finish = ["length"] * n
    if n == 0 or max_new_tokens <= 0:
        return DecodeOutput(tokens, finish)
    if any(len(p) == 0 for p in prompts):
        raise ValueError("decode_batch: every prompt needs at least one token")
    generators = None
    if temperature > 0:
        seeds = seeds if seeds is not None else list(range(n))
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    device = input_device(model)
    last_only = _last_logits_kwarg(model)  # compute the LM head on the last position only
    cache = preallocated_cache(model, capacity=max(map(len, prompts)) + max_new_tokens)
    p = shared_prefix_length(prompts) if share_prefix and step_callback is None and full_attention_only(cache) else 0
    ids, mask = left_pad([q[p:] for q in prompts], pad_id, device)  # (B, T - p) each: the rows after the prefix
    if p:
        prefix = torch.tensor([prompts[0][:p]], dtype=torch.long, device=device)  # (1, p)
        model(input_ids=prefix, attention_mask=torch.ones_like(prefix),
              position_ids=torch.arange(p, device=device)[None], past_key_values=cache, use_cache=True, **last_only)
        cache.batch_repeat_interleave(n)  # (1, ..., p, ...) -> (B, ..., p, ...)
        mask = torch.cat([mask.new_ones((n, p)), mask], dim=-1)  # (B, T): prefix, pads, rest of the row
    positions = positions_from_mask(mask)[:, p:]  # (B, T - p)
    next_position = positions[:, -1] + 1  # (B,)
    rows = list(range(n))  # prompt index of each batch row
    live = [True] * n  # per batch row: still generating (finished rows may ride along until compaction)
    for step in range(max_new_tokens):
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            **last_only,
        )
        cache = out.past_key_values
        if step_callback is not None:
            step_callback(step, rows)
        next_tokens = sample_tokens(out.logits[:, -1, :], temperature, top_p, generators)  # (b,)
        for j, (row, tok) in enumerate(zip(rows, next_tokens.tolist())):
            if not live[j]:
                continue
            tokens[row].append(tok)
            if tok in eos_ids or (stop_check is not None and stop_check(row, tokens[row])):
                finish[row] = "stop"
                live[j] = False
        n_live = sum(live)
        if n_live == 0 or step == max_new_tokens - 1:
            break
        dead = len(rows) - n_live
        # Drop finished rows from every per-row tensor and the cache: at once when a callback watches the
        # rows, else once they are a quarter of the batch (each drop copies the cache; a dead row costs
        # only its share of the step's products until then).
        if dead and (step_callback is not None or 4 * dead >= len(rows)):
            keep = [j for j in range(len(rows)) if live[j]]
            cache.batch_select_indices(torch.tensor(keep))  # a CPU index works for shards on any device
            index = torch.tensor(keep, device=device)
            mask, next_tokens, next_position = mask[index], next_tokens[index], next_position[index]
            rows = [rows[j] for j in keep]
            live = [True] * len(rows)
            if generators is not None:
                generators = [generators[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)  # (b, past + 1)
        ids = next_tokens[:, None]  # (b, 1)
        positions = next_position[:, None]  # (b, 1)
        next_position = next_position + 1
    return DecodeOutput(tokens, finish)


def shared_prefix_length(prompts: list[list[int]], min_length: int = MIN_SHARED_PREFIX) -> int:
    """Tokens every prompt starts with, keeping at least one token of each row after them; 0 when that is
    shorter than ``min_length`` or there is only one prompt (nothing to share)."""
    if len(prompts) < 2:
        return 0
    first, n = prompts[0], min(len(q) for q in prompts) - 1
    for q in prompts[1:]:
        k = 0
        while k < n and q[k] == first[k]:
            k += 1
        n = k
    return n if n >= min_length else 0


def _last_logits_kwarg(model) -> dict[str, int]:
    """``logits_to_keep=1`` (or the older ``num_logits_to_keep``) when the model's forward names it."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return {name: 1}
    return {}

