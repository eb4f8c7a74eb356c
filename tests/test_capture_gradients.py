"""GradCapture: batched per-sample |gradient| sums equal a batch-1 autograd loop, padding contributes nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _engine_models import random_seqs, tiny_llama, tiny_qwen2_moe
from torch import nn

from deepsight.capture import pad_batch
from deepsight.capture.gradients import GradCapture
from deepsight.stats import GradAbsSum


def _per_sample_loss(logits, labels):
    """(S,) mean next-token cross-entropy over each row's labelled tokens."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    ce = F.cross_entropy(shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none")  # (S, T-1)
    n = (shift_labels != -100).sum(1).clamp_min(1)
    return ce.sum(1) / n


def _batch(seqs, prompt_lens):
    ids, mask = pad_batch(seqs, 0)
    labels = ids.clone()
    labels[mask == 0] = -100
    for r, p in enumerate(prompt_lens):
        labels[r, :p] = -100
    return ids, mask, labels


def _reference(model, modules, seqs, prompt_lens):
    acc = {n: torch.zeros_like(m.weight, dtype=torch.float64) for n, m in modules.items()}
    for s, p in zip(seqs, prompt_lens):
        model.zero_grad(set_to_none=True)
        ids, mask, labels = _batch([s], [p])
        _per_sample_loss(model(input_ids=ids, attention_mask=mask).logits, labels).sum().backward()
        for n, m in modules.items():
            acc[n] += m.weight.grad.double().abs()
    model.zero_grad(set_to_none=True)
    return acc


@pytest.mark.parametrize("factory,pattern", [(tiny_llama, ("mlp.", "self_attn.o_proj")),
                                             (tiny_qwen2_moe, ("shared_expert.", "self_attn.q_proj"))])
def test_batched_per_sample_abs_grad_equals_batch_one(factory, pattern):
    model = factory()
    modules = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and any(p in n for p in pattern)
               and "layers.1." in n}
    assert modules
    seqs = random_seqs([6, 9, 4, 7], model.config.vocab_size)
    prompt_lens = [3, 5, 2, 4]
    ref = _reference(model, modules, seqs, prompt_lens)
    stats = {n: GradAbsSum(m.weight.shape, dtype="float64") for n, m in modules.items()}
    flags = [p.requires_grad for p in model.parameters()]
    with GradCapture(model, modules, stats) as gc:
        for rows in ([0, 1, 2], [3]):  # a padded batch of three, then one alone
            ids, mask, labels = _batch([seqs[i] for i in rows], [prompt_lens[i] for i in rows])
            gc.token_mask = mask
            _per_sample_loss(model(input_ids=ids, attention_mask=mask).logits, labels).sum().backward()
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters()), "param_grads=False computes no weight gradient"
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    for n in modules:
        assert float(stats[n].samples) == 4
        torch.testing.assert_close(stats[n].total, ref[n], rtol=1e-4, atol=1e-6, msg=n)


def test_param_grads_kept_and_no_grad_forward_ignored():
    model = tiny_llama(layers=2, hidden=32)
    lin = model.model.layers[0].mlp.down_proj
    stat = GradAbsSum(lin.weight.shape)
    seqs = random_seqs([5, 3], model.config.vocab_size)
    ids, mask, labels = _batch(seqs, [1, 1])
    with GradCapture(model, {"down": lin}, {"down": stat}, param_grads=True) as gc:
        gc.token_mask = mask
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        assert float(stat.samples) == 0
        _per_sample_loss(model(input_ids=ids, attention_mask=mask).logits, labels).sum().backward()
    assert lin.weight.grad is not None and float(stat.samples) == 2
    # batch-summed gradient <= per-sample |.| sum, elementwise (triangle inequality), and not equal in general
    assert bool((lin.weight.grad.abs() <= stat.total.float() + 1e-6).all())
    with pytest.raises(ValueError, match="no GradAbsSum"):
        GradCapture(model, {"down": lin}, {})


def test_flattened_input_without_token_mask_splits_samples():
    """A linear fed (S*T, I) rows (Qwen2-MoE shared expert) with no token mask: samples come from the call."""
    model = tiny_qwen2_moe()
    lin = model.model.layers[0].mlp.shared_expert.down_proj
    seqs = random_seqs([5, 5, 5], model.config.vocab_size)  # equal lengths: no padding, no mask needed
    ref = _reference(model, {"d": lin}, seqs, [2, 2, 2])
    stat = GradAbsSum(lin.weight.shape, dtype="float64")
    ids, mask, labels = _batch(seqs, [2, 2, 2])
    with GradCapture(model, {"d": lin}, {"d": stat}):
        _per_sample_loss(model(input_ids=ids).logits, labels).sum().backward()
    assert float(stat.samples) == 3
    torch.testing.assert_close(stat.total, ref["d"], rtol=1e-4, atol=1e-6)
