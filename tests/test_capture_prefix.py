"""Shared prefix (tokens every row starts with, run once from a KV cache): the sinks get the same
tensors as full forwards, on RoPE and absolute-position models; unsupported cases fall back."""

from __future__ import annotations

import pytest
import torch
from _engine_models import random_seqs, tiny_llama, tiny_qwen2_moe
from transformers import GPT2Config, GPT2LMHeadModel

from deepsight.capture import Capture, CaptureSpec, common_prefix_length, iter_batches


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=32, n_layer=3, n_head=4, vocab_size=101, n_positions=128, initializer_range=0.2)
    return GPT2LMHeadModel(cfg).eval()


def _rows(prefix_len: int, tail_lengths: list[int], vocab: int, seed: int = 3) -> list[list[int]]:
    prefix = random_seqs([prefix_len], vocab, seed=seed)[0]
    return [prefix + t for t in random_seqs(tail_lengths, vocab, seed=seed + 1)]


def _capture(model, seqs, specs, use_prefix: bool, budget: int = 40):
    """{(spec, layer): per-row tensors in data order} and whether a prefix was used."""
    got: dict[tuple[str, int], dict[int, torch.Tensor]] = {}

    def sink(ev):
        rows = ev.take("index").tolist()
        if ev.spec.reduce == "none":  # compare the valid positions of each row
            vals = [ev.value[i, ev.mask[i].bool()] for i in range(len(rows))]
        else:
            vals = list(ev.value)
        for r, v in zip(rows, vals):
            got.setdefault((ev.spec.name, ev.layer), {})[r] = v.double().clone()

    with Capture(model, specs, sink) as cap:
        prefix = cap.shared_prefix(seqs) if use_prefix else None
        for b in iter_batches(seqs, max_batch_tokens=budget, pad_id=0, side="right"):
            cap.forward(b.input_ids, b.attention_mask, prefix=prefix, index=b.index)
    return got, prefix


SPECS = [CaptureSpec("block_output", [0, 2], reduce="mean", name="mean"),
         CaptureSpec("block_output", [1], reduce="last", name="last"),
         CaptureSpec("hidden_states", [0, 3], reduce="none", name="none"),
         CaptureSpec("mlp_input", [1], reduce="all", name="all")]


@pytest.mark.parametrize("factory", [lambda: tiny_llama(layers=4).double(), lambda: tiny_gpt2().double()],
                         ids=["llama-rope", "gpt2-absolute"])
def test_prefix_gives_the_full_forward_states(factory):
    model = factory()
    seqs = _rows(11, [1, 6, 3, 9, 2, 13, 5], model.config.vocab_size)
    specs = [s for s in SPECS if not (s.site == "mlp_input" and not hasattr(model, "model"))]
    full, none_prefix = _capture(model, seqs, specs, use_prefix=False)
    fast, prefix = _capture(model, seqs, specs, use_prefix=True)
    assert none_prefix is None and prefix is not None and prefix.length == 11
    assert full.keys() == fast.keys()
    for key, rows in full.items():
        assert rows.keys() == fast[key].keys() == set(range(len(seqs)))
        for r, v in rows.items():
            torch.testing.assert_close(fast[key][r], v, rtol=1e-10, atol=1e-10, msg=f"{key} row {r}")


def test_prefix_in_float32_matches_within_rounding():
    model = tiny_llama(layers=3)
    seqs = _rows(9, [4, 1, 7, 12], model.config.vocab_size, seed=7)
    spec = [CaptureSpec("block_output", [2], reduce="mean")]
    full, _ = _capture(model, seqs, spec, use_prefix=False)
    fast, prefix = _capture(model, seqs, spec, use_prefix=True)
    assert prefix is not None
    for r, v in full[("block_output", 2)].items():
        torch.testing.assert_close(fast[("block_output", 2)][r], v, rtol=1e-5, atol=1e-5)


def test_prefix_keeps_a_token_of_every_row_and_needs_min_length():
    model = tiny_llama(layers=2)
    base = random_seqs([12], model.config.vocab_size, seed=5)[0]
    spec = [CaptureSpec("block_output", [1], reduce="last")]
    with Capture(model, spec, lambda ev: None) as cap:
        p = cap.shared_prefix([base, base[:10] + [7, 8]])  # a row equal to the prefix caps it at len - 1
        assert p is not None and p.length == 10
        p = cap.shared_prefix([base, base])
        assert p is not None and p.length == 11
        assert cap.shared_prefix([base, base[:5] + [7]]) is None  # shorter than min_length
        assert cap.shared_prefix([base, [9] + base[1:]]) is None
        assert cap.shared_prefix([]) is None


def test_rows_that_do_not_start_with_the_prefix_are_an_error():
    model = tiny_llama(layers=2)
    seqs = _rows(10, [3, 4], model.config.vocab_size)
    spec = [CaptureSpec("block_output", [1], reduce="last")]
    with Capture(model, spec, lambda ev: None) as cap:
        prefix = cap.shared_prefix(seqs)
        other = torch.tensor([[5] * 14])
        with pytest.raises(ValueError, match="start with the 10 prefix tokens"):
            cap.forward(other, torch.ones_like(other), prefix=prefix)
        padded = torch.tensor([seqs[0][:10] + [0] * 3])
        mask = torch.tensor([[1] * 10 + [0] * 3])
        with pytest.raises(ValueError, match="real token after them"):
            cap.forward(padded, mask, prefix=prefix)


def test_router_sites_fall_back_to_full_rows():
    model = tiny_qwen2_moe()
    seqs = _rows(10, [3, 4], model.config.vocab_size)
    with Capture(model, [CaptureSpec("router_logits", [0], reduce="all")], lambda ev: None) as cap:
        assert cap.shared_prefix(seqs) is None


def test_common_prefix_length():
    assert common_prefix_length([]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 3
    assert common_prefix_length([[1, 2, 3], [1, 2]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 5]]) == 1
    assert common_prefix_length([[1, 2], [2, 1]]) == 0
    assert common_prefix_length([[1, 2], []]) == 0


def test_rows_much_longer_than_the_prefix_run_whole(monkeypatch):
    import deepsight.capture.engine as engine
    import deepsight.capture.prefix as prefix_mod

    model = tiny_llama(layers=2).double()
    seqs = _rows(10, [2, 3, 75, 100], model.config.vocab_size)
    spec = [CaptureSpec("block_output", [1], reduce="mean")]
    calls = []
    real = prefix_mod.continue_from
    monkeypatch.setattr(prefix_mod, "continue_from", lambda *a: calls.append(a[1].shape) or real(*a))
    full, _ = _capture(model, seqs, spec, use_prefix=False, budget=110)
    fast, prefix = _capture(model, seqs, spec, use_prefix=True, budget=110)
    assert prefix is not None and engine.PREFIX_MAX_ROW_RATIO * 10 < 85
    assert [tuple(c) for c in calls] == [(2, 13)]  # the 85- and 110-token rows ran whole, the short ones from the cache
    for r, v in full[("block_output", 1)].items():
        torch.testing.assert_close(fast[("block_output", 1)][r], v, rtol=1e-10, atol=1e-10)
