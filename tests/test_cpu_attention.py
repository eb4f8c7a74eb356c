"""Native grouped-query attention on the CPU with a mask: same outputs and gradients as transformers'
repeat_kv path, restored on exit."""

from __future__ import annotations

import torch
from _engine_models import random_seqs, tiny_llama
from transformers.integrations import sdpa_attention

from deepsight.capture import pad_batch
from deepsight.models.cpu_attention import native_gqa_on_cpu


def _padded_batch(model):
    seqs = random_seqs([7, 3, 11], model.config.vocab_size)
    return pad_batch(seqs, pad_id=0, side="left")


def test_masked_gqa_matches_repeated_heads_and_is_restored():
    model = tiny_llama(layers=2).double()
    assert model.config.num_attention_heads != model.config.num_key_value_heads
    ids, mask = _padded_batch(model)
    original = sdpa_attention.use_gqa_in_sdpa
    calls = []
    with torch.no_grad():
        ref = model(ids, attention_mask=mask).logits
        with native_gqa_on_cpu() as on:
            assert on and sdpa_attention.use_gqa_in_sdpa is not original
            calls.append(sdpa_attention.use_gqa_in_sdpa(mask, torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8)))
            got = model(ids, attention_mask=mask).logits
    assert calls == [True]
    assert sdpa_attention.use_gqa_in_sdpa is original
    valid = mask.bool()
    torch.testing.assert_close(got[valid], ref[valid], rtol=1e-12, atol=1e-12)


def test_input_gradients_match():
    model = tiny_llama(layers=2).double().requires_grad_(False)
    ids, mask = _padded_batch(model)
    emb = model.get_input_embeddings()(ids).detach()

    def grad():
        x = emb.clone().requires_grad_(True)
        out = model(inputs_embeds=x, attention_mask=mask).logits
        (out * mask[..., None]).square().sum().backward()
        return x.grad

    ref = grad()
    with native_gqa_on_cpu():
        got = grad()
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_disabled_leaves_transformers_alone():
    original = sdpa_attention.use_gqa_in_sdpa
    with native_gqa_on_cpu(enabled=False) as on:
        assert not on and sdpa_attention.use_gqa_in_sdpa is original
