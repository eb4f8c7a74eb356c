"""The hf backend's fast decoding path (shared prompt prefix run once, preallocated cache, lazy dropping of
finished rows, CPU fast paths) against transformers' own ``model.generate``, one prompt at a time.

Tiny random-weight Llamas (float64 for token-exact comparisons, float32 with the CPU fast paths as the
benchmark runs them), ragged chat prompts that share a system prompt, and EOS ids chosen so that rows stop
at different steps.
"""

from __future__ import annotations

import random

import pytest
import torch
from test_generation_hf import char_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicLayer

from deepsight.generation.base import GenerationRequest, SamplingParams
from deepsight.generation.decode import decode_batch, shared_prefix_length
from deepsight.generation.hf import HFGenerator
from deepsight.generation.kv_cache import PreallocatedLayer
from deepsight.generation.prompts import encode_request
from deepsight.models.cpu_fast_paths import cpu_fast_paths


def tiny_model(dtype: torch.dtype, seed: int):
    torch.manual_seed(seed)
    tok = char_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=512, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, initializer_range=0.3,
    )
    return LlamaForCausalLM(cfg).to(dtype).eval(), tok


def chat_requests(n: int, rng: random.Random, system: str = "You are a terse assistant.") -> list[GenerationRequest]:
    alphabet = "abcdefghij klmnop?!"
    return [GenerationRequest(f"r{i}", messages=[{"role": "user", "content": "".join(
        rng.choice(alphabet) for _ in range(rng.randint(1, 23)))}], system_prompt=system) for i in range(n)]


def generate_one(model, prompt: list[int], max_new: int, eos: set[int]) -> tuple[list[int], torch.Tensor]:
    """transformers' greedy ``generate`` on one unpadded prompt: new ids cut at the first EOS, and the scores."""
    ids = torch.tensor([prompt])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=sorted(eos) or None, pad_token_id=0, output_scores=True,
                         return_dict_in_generate=True)
    new = out.sequences[0, len(prompt):].tolist()
    for k, t in enumerate(new):
        if t in eos:
            return new[: k + 1], torch.stack(out.scores)[:, 0]
    return new, torch.stack(out.scores)[:, 0]


def stop_ids(free: list[list[int]], rows: list[tuple[int, int]]) -> set[int]:
    """EOS ids that end some rows early: the token row r generated at step s (for each (r, s))."""
    return {free[r][s] for r, s in rows}


def test_shared_prefix_length_cases():
    assert shared_prefix_length([]) == 0
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6]]) == 0  # one prompt: nothing to share
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]], min_length=1) == 5  # a token stays
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 5, 6]], min_length=1) == 3
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 5, 6]], min_length=4) == 0
    assert shared_prefix_length([[7, 2, 3], [1, 2, 3]], min_length=1) == 0
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]], min_length=1) == 4


def test_repeat_interleave_copies_the_filled_prefix_like_dynamic_layer():
    g = torch.Generator().manual_seed(1)
    pre, dyn = PreallocatedLayer(capacity=9), DynamicLayer()
    k, v = (torch.randn(1, 3, 5, 4, generator=g, dtype=torch.float64) for _ in range(2))
    pre.update(k, v)
    dyn.update(k, v)
    pre.batch_repeat_interleave(4)
    dyn.batch_repeat_interleave(4)
    assert torch.equal(pre.keys, dyn.keys) and torch.equal(pre.values, dyn.values)
    k2, v2 = (torch.randn(4, 3, 2, 4, generator=g, dtype=torch.float64) for _ in range(2))
    kp, vp = pre.update(k2, v2)
    kd, vd = dyn.update(k2, v2)
    assert torch.equal(kp, kd) and torch.equal(vp, vd) and pre._k.shape[2] == 9  # written in place


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_equals_generate_float64(seed):
    """Ragged prompts with a shared system prompt, rows stopping at different steps: every row's tokens are
    exactly those of ``model.generate`` on that prompt alone; the prefix really ran once at batch 1."""
    model, tok = tiny_model(torch.float64, seed)
    rng = random.Random(seed)
    reqs = chat_requests(9, rng)
    prompts = [encode_request(tok, r) for r in reqs]
    p = shared_prefix_length(prompts)
    assert p >= 1 + len("system\nYou are a terse assistant.")  # the system turn (a token per character) is shared
    max_new = 16
    free = decode_batch(model, prompts, max_new_tokens=max_new, eos_ids=set(), pad_id=tok.pad_token_id)
    eos = stop_ids(free.tokens, [(0, 2), (4, 9), (7, 5)])
    shapes: list[tuple[int, ...]] = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, inp, out: shapes.append(tuple(inp[0].shape)))
    try:
        fast = decode_batch(model, prompts, max_new_tokens=max_new, eos_ids=eos, pad_id=tok.pad_token_id,
                            share_prefix=True)
    finally:
        hook.remove()
    width = max(map(len, prompts))
    assert shapes[0] == (1, p) and shapes[1] == (len(prompts), width - p)  # prefix once, then the rest of the rows
    stopped = 0
    for i, prompt in enumerate(prompts):
        ref, _ = generate_one(model, prompt, max_new, eos)
        assert fast.tokens[i] == ref, i
        assert fast.finish_reasons[i] == ("stop" if ref[-1] in eos else "length"), i
        stopped += fast.finish_reasons[i] == "stop"
    assert 1 <= stopped < len(prompts)  # some rows stop early, some run to the limit
    # the backend (length-sorted batches of 4, its own EOS ids) gives generate's texts too
    gen = HFGenerator(model, tok, batch_size=4)
    outs = gen.generate(reqs, SamplingParams(max_new_tokens=max_new))
    for o, prompt in zip(outs, prompts):
        ref, _ = generate_one(model, prompt, max_new, gen.eos_ids)
        body = [t for t in ref if t not in gen.eos_ids]
        assert o.completion_tokens == len(ref) and o.text == tok.decode(body, skip_special_tokens=True), o.id


def test_fast_path_equals_generate_float32_with_cpu_fast_paths():
    """float32 as the benchmark runs (packed linears, native GQA attention, shared prefix) against plain
    ``generate``: the same tokens, except after a genuine near-tie of the reference's two best logits."""
    model, tok = tiny_model(torch.float32, 7)
    reqs = chat_requests(12, random.Random(7))
    prompts = [encode_request(tok, r) for r in reqs]
    max_new = 20
    free = decode_batch(model, prompts, max_new_tokens=max_new, eos_ids=set(), pad_id=tok.pad_token_id)
    eos = stop_ids(free.tokens, [(1, 3), (6, 11)]) | {tok.eos_token_id}
    with cpu_fast_paths(model):
        fast = decode_batch(model, prompts, max_new_tokens=max_new, eos_ids=eos, pad_id=tok.pad_token_id,
                            share_prefix=True)
    exact = 0
    for i, prompt in enumerate(prompts):
        ref, scores = generate_one(model, prompt, max_new, eos)
        got = fast.tokens[i]
        k = next((j for j, (a, b) in enumerate(zip(got, ref)) if a != b), None)
        if k is None:
            assert got == ref, i  # same tokens, same length
            exact += 1
        else:  # a divergence is only allowed where fp32 rounding can decide it
            top2 = scores[k].topk(2).values
            assert float(top2[0] - top2[1]) < 1e-4 * max(1.0, float(top2[0].abs())), (i, k)
    assert exact >= len(prompts) - 1


def test_sliding_window_model_runs_whole_rows_and_equals_generate():
    """A sliding window counts cache positions, so pads between prefix and rest would shrink it: such a model
    gets the plain prefill (no prefix pass) and still matches ``generate`` token for token."""
    from transformers import MistralConfig, MistralForCausalLM

    from deepsight.generation.kv_cache import full_attention_only, preallocated_cache

    torch.manual_seed(3)
    tok = char_tokenizer()
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                        num_attention_heads=6, num_key_value_heads=2, sliding_window=16, initializer_range=0.3,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = MistralForCausalLM(cfg).to(torch.float64).eval()
    assert not full_attention_only(preallocated_cache(model, capacity=8))
    prompts = [encode_request(tok, r) for r in chat_requests(5, random.Random(3))]
    assert shared_prefix_length(prompts) > 0
    shapes: list[tuple[int, ...]] = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, inp, out: shapes.append(tuple(inp[0].shape)))
    try:
        out = decode_batch(model, prompts, max_new_tokens=10, eos_ids=set(), pad_id=tok.pad_token_id,
                           share_prefix=True)
    finally:
        hook.remove()
    assert shapes[0] == (len(prompts), max(map(len, prompts)))  # whole rows in one prefill
    for i, prompt in enumerate(prompts):
        assert out.tokens[i] == generate_one(model, prompt, 10, set())[0], i
