"""Pre-packed oneDNN linears on the CPU: same outputs and input gradients as F.linear (float32
rounding), weights that require grad fall back, everything is restored on exit."""

from __future__ import annotations

import pytest
import torch
from _engine_models import random_seqs, tiny_llama
from torch import nn

from deepsight.models.cpu_linears import packed_cpu_linears, packing_available

pytestmark = pytest.mark.skipif(not packing_available(), reason="this torch build has no oneDNN linear ops")


def _linears(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def test_forward_matches_and_is_restored():
    model = tiny_llama(layers=3, hidden=64)
    ids = torch.tensor(random_seqs([13, 13, 13], model.config.vocab_size))
    with torch.no_grad():
        ref = model(ids, output_hidden_states=True)
        with packed_cpu_linears(model) as n:
            assert n == len(_linears(model)) > 0
            got = model(ids, output_hidden_states=True)
    for a, b in zip(got.hidden_states + (got.logits,), ref.hidden_states + (ref.logits,)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert all("forward" not in vars(m) for m in _linears(model))


def test_odd_shapes_and_bias_against_float64():
    torch.manual_seed(0)
    lin = nn.Linear(37, 23, bias=True)
    model = nn.Sequential(lin)
    for shape in [(1, 37), (5, 37), (2, 7, 37), (0, 37)]:
        x = torch.randn(*shape)
        with torch.no_grad(), packed_cpu_linears(model):
            got = model(x)
        ref = torch.nn.functional.linear(x.double(), lin.weight.double(), lin.bias.double())
        assert got.shape == ref.shape
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_input_gradients_through_frozen_layers():
    model = tiny_llama(layers=2, hidden=48)
    model.requires_grad_(False)
    ids = torch.tensor(random_seqs([9, 9], model.config.vocab_size))
    emb = model.get_input_embeddings()(ids).detach()

    def grad_of_input():
        x = emb.clone().requires_grad_(True)
        model(inputs_embeds=x).logits.square().mean().backward()
        return x.grad

    ref = grad_of_input()
    with packed_cpu_linears(model):
        got = grad_of_input()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_trainable_weights_use_plain_linear():
    torch.manual_seed(1)
    lin = nn.Linear(8, 4)
    x = torch.randn(3, 8)
    lin(x).sum().backward()
    ref = lin.weight.grad.clone()
    lin.weight.grad = None
    with packed_cpu_linears(lin.requires_grad_(True)) as n:
        assert n == 1
        lin(x).sum().backward()
    torch.testing.assert_close(lin.weight.grad, ref)


def test_disabled_and_non_float32_models_are_left_alone():
    model = tiny_llama(layers=1)
    with packed_cpu_linears(model, enabled=False) as n:
        assert n == 0 and all("forward" not in vars(m) for m in _linears(model))
    with packed_cpu_linears(model.to(torch.bfloat16)) as n:
        assert n == 0
    with packed_cpu_linears(tiny_llama(layers=1), memory_fraction=0.0) as n:
        assert n == 0


def test_restored_after_an_error():
    model = tiny_llama(layers=1)
    with pytest.raises(RuntimeError, match="boom"), packed_cpu_linears(model):
        raise RuntimeError("boom")
    assert all("forward" not in vars(m) for m in _linears(model))


def test_packed_once_activated_many_times_and_nested():
    from deepsight.models.cpu_fast_paths import cpu_fast_paths
    from deepsight.models.cpu_linears import PackedLinears

    model = tiny_llama(layers=2)
    ids = torch.tensor(random_seqs([6, 6], model.config.vocab_size))
    packed = PackedLinears(model)
    assert len(packed) == len(_linears(model))
    with torch.no_grad():
        ref = model(ids).logits
        for _ in range(2):
            with cpu_fast_paths(model, packed=packed) as on:
                assert on["packed_linears"] == len(packed)
                with packed.active():  # nested: the inner block leaves the layers to the outer one
                    pass
                assert all("forward" in vars(m) for m in _linears(model))
                torch.testing.assert_close(model(ids).logits, ref, rtol=1e-5, atol=1e-5)
            assert all("forward" not in vars(m) for m in _linears(model))
        with cpu_fast_paths(model, enabled=False, packed=packed) as on:
            assert on == {"packed_linears": 0, "native_gqa": False, "malloc_keeps_freed": False}
            assert all("forward" not in vars(m) for m in _linears(model))


def test_weights_changed_in_place_are_repacked():
    torch.manual_seed(2)
    lin = nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16)
    with torch.no_grad(), packed_cpu_linears(lin):
        before = lin(x)
        lin.weight.mul_(2.0)
        after = lin(x)
    torch.testing.assert_close(after, 2.0 * before, rtol=1e-5, atol=1e-6)
