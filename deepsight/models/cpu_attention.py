"""Grouped-query attention without copies on the CPU.

transformers' sdpa attention passes grouped-query (GQA) heads natively to torch's
``scaled_dot_product_attention`` (``enable_gqa=True``) only when there is no attention mask;
with a mask (padded batches, a cached shared prefix, every batched decoding step) it first
copies K and V to the full head count with ``repeat_kv``. On a CPU that strided copy of the
whole KV cache in every layer at every step was 44% of MI-Peaks' batched decoding time on
SmolLM2 (3 KV heads for 9 query heads), while torch's CPU kernels take ``enable_gqa`` with a
mask and give the same numbers. ``native_gqa_on_cpu()`` lets transformers choose native GQA for
CPU tensors with a mask too, inside the block only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

log = logging.getLogger("deepsight")


def _torch_takes_masked_gqa_on_cpu() -> bool:
    """torch's CPU sdpa with a boolean mask and enable_gqa equals the repeated-heads product (small check)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 3, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 2, 5, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, 2, 5, 8, generator=g, dtype=torch.float64)
    mask = torch.ones(2, 1, 3, 5, dtype=torch.bool).tril(2)
    mask[0, ..., 0] = False
    try:
        got = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    except (TypeError, RuntimeError):
        return False
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask)
    return bool(torch.allclose(got, ref, rtol=1e-12, atol=1e-12))


@contextmanager
def native_gqa_on_cpu(enabled: bool = True) -> Iterator[bool]:
    """Inside the block, transformers' sdpa attention keeps GQA heads grouped for CPU tensors even with
    an attention mask; yields whether the switch is active."""
    try:
        from transformers.integrations import sdpa_attention
    except ImportError:  # pragma: no cover
        yield False
        return
    original = getattr(sdpa_attention, "use_gqa_in_sdpa", None)
    if not enabled or original is None or not _torch_takes_masked_gqa_on_cpu():
        yield False
        return

    def use_gqa_in_sdpa(attention_mask, key, value, *args, **kwargs) -> bool:
        if key.device.type == "cpu" and key.shape[-1] == value.shape[-1] <= 256:
            return True
        return original(attention_mask, key, value, *args, **kwargs)

    sdpa_attention.use_gqa_in_sdpa = use_gqa_in_sdpa
    try:
        yield True
    finally:
        sdpa_attention.use_gqa_in_sdpa = original
