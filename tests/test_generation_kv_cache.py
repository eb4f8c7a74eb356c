"""The preallocated KV cache against transformers' DynamicLayer, and decode_batch's lazy dropping of finished
rows (they ride along until they are a quarter of the batch) against an uncached unbatched reference."""

from __future__ import annotations

import random

import torch
from test_generation_hf import reference_greedy, tiny  # noqa: F401  (tiny is a fixture)
from transformers.cache_utils import DynamicLayer

from deepsight.generation.decode import decode_batch
from deepsight.generation.kv_cache import PreallocatedLayer, preallocated_cache


def test_preallocated_layer_matches_dynamic_layer():
    g = torch.Generator().manual_seed(0)
    pre, dyn = PreallocatedLayer(capacity=7), DynamicLayer()
    b, h, d = 5, 3, 4
    for step, q in enumerate([4, 1, 1, 3, 1]):  # the 4th update overflows the capacity: the buffers grow
        k = torch.randn(b, h, q, d, generator=g, dtype=torch.float64)
        v = torch.randn(b, h, q, d, generator=g, dtype=torch.float64)
        kp, vp = pre.update(k, v)
        kd, vd = dyn.update(k, v)
        assert torch.equal(kp, kd) and torch.equal(vp, vd)
        assert pre.get_seq_length() == dyn.get_seq_length()
        if step == 2:  # drop rows as decode_batch does when rows finish
            keep = torch.tensor([0, 2, 4])
            pre.batch_select_indices(keep)
            dyn.batch_select_indices(keep)
            b = 3
            assert torch.equal(pre.keys, dyn.keys) and torch.equal(pre.values, dyn.values)
    pre.crop(-2)
    dyn.crop(-2)
    assert torch.equal(pre.keys, dyn.keys) and pre.get_seq_length() == dyn.get_seq_length()


def test_cache_replaces_plain_layers(tiny):  # noqa: F811
    model, _ = tiny
    cache = preallocated_cache(model, capacity=16)
    assert len(cache.layers) == model.config.num_hidden_layers
    assert all(type(layer) is PreallocatedLayer for layer in cache.layers)


def test_finished_rows_ride_along_then_are_dropped(tiny):  # noqa: F811
    """Nine rows: EOS ids chosen so that rows finish one or two at a time (below, then past a quarter of the
    batch); every row must still equal its own uncached greedy decoding cut at the first EOS."""
    model, _ = tiny
    rng = random.Random(3)
    prompts = [[rng.randrange(5, 100) for _ in range(rng.randint(1, 15))] for _ in range(9)]
    free = decode_batch(model, prompts, max_new_tokens=14, eos_ids=set(), pad_id=0)
    eos = {free.tokens[0][1], free.tokens[3][6]}
    calls: list[list[int]] = []
    out = decode_batch(model, prompts, max_new_tokens=14, eos_ids=eos, pad_id=0)
    eager = decode_batch(model, prompts, max_new_tokens=14, eos_ids=eos, pad_id=0,
                         step_callback=lambda step, rows: calls.append(list(rows)))
    stopped = 0
    for i, p in enumerate(prompts):
        ref = reference_greedy(model, p, 14, eos)
        assert out.tokens[i] == ref == eager.tokens[i], i
        assert out.finish_reasons[i] == ("stop" if ref[-1] in eos else "length")
        stopped += ref[-1] in eos
    assert 1 <= stopped < len(prompts)
    # with a callback the rows of each forward are exactly the live ones
    for step, rows in enumerate(calls):
        assert rows == [i for i in range(len(prompts)) if len(eager.tokens[i]) > step]
