"""Length-bucketed batches under a token budget (no padding to a fixed max length).

Sequences are sorted by length (longest first, so an out-of-memory shows up on the first
batch) and packed greedily while ``rows * longest <= max_batch_tokens``. Each batch carries
the original positions of its rows (``index``) so per-row results can be put back in order.

Usage::

    for batch in iter_batches(token_lists, max_batch_tokens=hw.max_batch_tokens, pad_id=tok.pad_token_id):
        cap.forward(batch.input_ids, batch.attention_mask, labels=labels[batch.index])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from deepsight.util.progress import track


@dataclass
class Batch:
    index: torch.Tensor  # (B,) positions of the rows in the caller's list
    input_ids: torch.Tensor  # (B, T) int64, T = longest row of this batch
    attention_mask: torch.Tensor  # (B, T) int64, 1 = real token


def length_buckets(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int | None = None) -> list[list[int]]:
    """Group positions into batches with ``len(batch) * max_len <= max_batch_tokens`` (a single row
    longer than the budget gets a batch of its own), longest rows first; stable among equal lengths."""
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens={max_batch_tokens} must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, lengths[i])
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (full or (len(current) + 1) * new_longest > max_batch_tokens):
            batches.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    return batches


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token lists to the longest: ((B, T) input ids, (B, T) attention mask)."""
    if side not in ("right", "left"):
        raise ValueError(f"padding side {side!r} must be 'right' or 'left'")
    t = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), t), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for r, s in enumerate(seqs):
        n = len(s)
        if n == 0:
            continue
        cols = slice(0, n) if side == "right" else slice(t - n, t)
        ids[r, cols] = torch.as_tensor(list(s), dtype=torch.long)
        mask[r, cols] = 1
    return ids, mask


def iter_batches(seqs: Sequence[Sequence[int]], *, max_batch_tokens: int, pad_id: int, side: str = "right",
                 max_batch_size: int | None = None, device: torch.device | str | None = None,
                 progress: str = "forward batches") -> Iterator[Batch]:
    """Length-bucketed, padded batches of token lists (see module doc); a progress bar on a terminal."""
    buckets = length_buckets([len(s) for s in seqs], max_batch_tokens, max_batch_size)
    for idx in track(buckets, progress):
        ids, mask = pad_batch([seqs[i] for i in idx], pad_id, side)
        if device is not None:
            ids, mask = ids.to(device), mask.to(device)
        yield Batch(torch.as_tensor(idx, dtype=torch.long), ids, mask)
