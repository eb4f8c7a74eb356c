"""A key/value cache that writes each step into preallocated buffers instead of concatenating.

Hugging Face's ``DynamicLayer`` grows its keys and values with ``torch.cat`` at every decoding
step, which copies the whole cache of the layer each time: at batch 60 and a few hundred cached
positions that copy costs as much memory traffic as the step's matrix products on a CPU.
``PreallocatedLayer`` allocates ``(batch, heads, capacity, head_dim)`` once (capacity = prompt
width + new tokens, known before decoding) and writes the step's keys/values into the next slots;
attention reads the filled prefix as a view, so the numbers are the plain path's (same values,
same order). When a write would overflow the capacity the buffer doubles (a copy, like one
``cat``). Finished rows are dropped with ``batch_select_indices`` as with the dynamic layer.

    cache = preallocated_cache(model, capacity=width + max_new_tokens)
    out = model(input_ids=ids, past_key_values=cache, use_cache=True, ...)

Only plain full-attention layers are replaced; sliding-window or other special layers of the
model's config keep their own class (``full_attention_only(cache)`` says whether any remain).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys/values are views of buffers sized for the whole generation."""

    def __init__(self, capacity: int, **kwargs):
        super().__init__(**kwargs)
        self.capacity = max(int(capacity), 1)
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._len = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        b, h, q, d = key_states.shape
        cap = max(self.capacity, q)
        self._k = key_states.new_empty((b, h, cap, d))
        self._v = value_states.new_empty((b, value_states.shape[1], cap, value_states.shape[-1]))
        self._len = 0
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        q = key_states.shape[-2]
        if self._len + q > self._k.shape[-2]:
            self._grow(self._len + q)
        self._k[:, :, self._len : self._len + q].copy_(key_states)
        self._v[:, :, self._len : self._len + q].copy_(value_states)
        self._len += q
        self._refresh_views()
        return self.keys, self.values

    def _refresh_views(self) -> None:
        self.keys = self._k[:, :, : self._len]
        self.values = self._v[:, :, : self._len]

    def _grow(self, needed: int) -> None:
        cap = max(needed, 2 * self._k.shape[-2])
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = old.new_empty((*old.shape[:2], cap, old.shape[-1]))
            new[:, :, : self._len] = old[:, :, : self._len]
            setattr(self, name, new)

    def get_seq_length(self) -> int:
        return self._len if self.is_initialized else 0

    def reset(self) -> None:
        self._k = self._v = None
        self._len = 0
        super().reset()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:  # legacy meaning: the length to keep
            tokens_to_remove = max(self._len - tokens_to_remove, 0)
        self._len = max(self._len - abs(tokens_to_remove), 0)
        if self.is_initialized:
            self._refresh_views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            for name in ("_k", "_v"):  # copy the filled prefix only (a shared prompt prefix to every row)
                old = getattr(self, name)
                new = old.new_empty((old.shape[0] * repeats, *old.shape[1:]))
                new[:, :, : self._len] = old[:, :, : self._len].repeat_interleave(repeats, dim=0)
                setattr(self, name, new)
            self._refresh_views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            indices = indices.to(self._k.device)
            for name in ("_k", "_v"):  # copy the filled prefix only; the rest of the capacity stays unwritten
                old = getattr(self, name)
                new = old.new_empty((len(indices), *old.shape[1:]))
                new[:, :, : self._len] = old[indices, :, : self._len]
                setattr(self, name, new)
            self._refresh_views()


def preallocated_cache(model, capacity: int) -> DynamicCache:
    """A ``DynamicCache`` for ``model`` whose plain full-attention layers are ``PreallocatedLayer``s."""
    try:
        cache = DynamicCache(config=model.config)
    except TypeError:  # older transformers: no config argument
        cache = DynamicCache()
    layers = getattr(cache, "layers", None)
    if layers:
        for i, layer in enumerate(layers):
            if type(layer) is DynamicLayer:
                layers[i] = PreallocatedLayer(capacity)
    elif getattr(cache, "layer_class_to_replicate", None) is DynamicLayer:
        cache.layer_class_to_replicate = _replicating(capacity)
    return cache


def full_attention_only(cache) -> bool:
    """True when every layer of ``cache`` is a plain full-attention layer (no sliding window, recurrent state or
    other special layer): only then may a batch hold pads between tokens (``decode_batch``'s shared prefix),
    since a sliding window or a recurrent state would count them."""
    layers = getattr(cache, "layers", None)
    if layers:
        return all(isinstance(layer, PreallocatedLayer) or type(layer) is DynamicLayer for layer in layers)
    factory = getattr(cache, "layer_class_to_replicate", None)
    return isinstance(factory, type) and issubclass(factory, PreallocatedLayer)


def _replicating(capacity: int):
    """A zero-argument layer factory for caches that create their layers lazily."""

    class _Layer(PreallocatedLayer):
        def __init__(self, **kwargs):
            super().__init__(capacity, **kwargs)

    return _Layer
