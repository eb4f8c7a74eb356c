"""SPIN: data selection, weight filters, candidates, coupling, and the fast G_W against the
slow per-(layer, sample) reference procedure in float64 on tiny dense and MoE models."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

from deepsight.config.schema import SPINConfig
from deepsight.data.spin import hf_shuffle_indices, load_spin_rows
from deepsight.diagnostics.spin import encode_sample, grad_abs_sums, per_sample_loss, run_spin
from deepsight.diagnostics.spin_loss import response_loss
from deepsight.diagnostics.spin_math import (
    candidates,
    coupling_summary,
    keep_weight,
    num_candidates,
    smallest_q_for_one,
    weights_of_model,
)
from deepsight.errors import DataFormatError
from deepsight.models.anatomy import inspect_model
from deepsight.stats import GradAbsSum


class CharTok:
    """Deterministic toy tokenizer: BOS then one id per character."""

    bos_token_id, pad_token_id, eos_token_id = 1, 0, 2

    def __init__(self, bos: bool = True):
        self.add_bos = bos
        if not bos:
            self.bos_token_id = None

    def __call__(self, text):
        return {"input_ids": ([1] if self.add_bos else []) + [3 + (ord(c) % 90) for c in text]}


def _dense(layers=3):
    c = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=layers, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=100)
    return LlamaForCausalLM(c).double().eval()


def _moe():
    c = MixtralConfig(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=100, num_local_experts=8, num_experts_per_tok=1,
                      experts_implementation="eager")
    return MixtralForCausalLM(c).double().eval()


def _rows(seed, n):
    g = torch.Generator().manual_seed(seed)
    words = ["privacy", "name", "phone", "fair", "group", "please", "no", "address", "why", "ok"]
    pick = lambda k: " ".join(words[int(i)] for i in torch.randint(0, len(words), (k,), generator=g))  # noqa: E731
    return [(pick(int(torch.randint(1, 5, (1,), generator=g))), pick(int(torch.randint(1, 6, (1,), generator=g))))
            for _ in range(n)]


def reference_sums(model, refs, samples):
    """The spec's slow procedure: per layer, per sample, forward+backward with only that layer's weights
    requiring grad, |grad| summed (loss in float64; HF's own loss upcasts logits to float32 only)."""
    sums = {r.name: torch.zeros(r.shape, dtype=torch.float64) for r in refs}
    layers = sorted({r.layer for r in refs})
    saved = {id(p): p.requires_grad for p in model.parameters()}
    try:
        for layer in layers:
            chosen = [r for r in refs if r.layer == layer]
            for p in model.parameters():
                p.requires_grad_(False)
            for r in chosen:
                r.param.requires_grad_(True)
            for ids, n_prompt in samples:
                model.zero_grad(set_to_none=True)
                x = torch.tensor([ids])
                logits = model(input_ids=x).logits[0, :-1]  # (T-1, V), float64: position t predicts t+1
                nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none")
                nll[n_prompt - 1 :].mean().backward()  # targets n_prompt.. = the response
                for r in chosen:
                    if r.param.grad is not None:
                        sums[r.name] += r.view(r.param.grad).abs()
    finally:
        for p in model.parameters():
            p.requires_grad_(saved[id(p)])
            p.grad = None
    return sums


def test_selection_matches_datasets_shuffle(data_dir):
    """Expected hashes were computed once with the real library (datasets 5.2.0, numpy 2):
    ``load_dataset("csv", data_files={"train": p}, split="train").shuffle(seed=0).select(range(128))``,
    then sha256 of ``json.dumps(list(zip(sel["prompt"], sel["response"])))``."""
    expected = {
        "beaver_train330k_privacy_safe_1k.csv": "416bd8ec6793610dcd8f40857c65803306132ede38dd1c75b877981c4d0c9b47",
        "beaver_train330k_fairness_safe_1k.csv": "5e0f961bd8e21e2cc2d1ae6c7879ae8e50736f2f402c79e39ee717df90c121fc",
    }
    for name, sha in expected.items():
        rows = load_spin_rows(data_dir / "spin" / name, n=128, seed=0)
        got = hashlib.sha256(json.dumps([(r.prompt, r.response) for r in rows]).encode()).hexdigest()
        assert got == sha, name
    assert hf_shuffle_indices(1000, 0, 5) == [459, 206, 222, 162, 711]  # same datasets run


def test_selection_errors(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("prompt,response\na,b\nc,d\n")
    assert [r.row for r in load_spin_rows(p, 2)] == hf_shuffle_indices(2, 0, 2)
    with pytest.raises(DataFormatError, match="only 2"):
        load_spin_rows(p, 3)
    p.write_text("prompt,answer\na,b\n")
    with pytest.raises(DataFormatError, match="response"):
        load_spin_rows(p, 1)
    p.write_text('prompt,response\na,""\n')
    with pytest.raises(DataFormatError, match="row 0"):
        load_spin_rows(p, 1)


def test_num_candidates_and_smallest_q():
    assert num_candidates(5e-7, (576, 1536)) == 0
    assert num_candidates(1e-3, (100, 10)) == 1
    q = smallest_q_for_one([(10, 10), (576, 1536)])
    assert num_candidates(q, (576, 1536)) == 1
    assert num_candidates(q * (1 - 1e-9), (576, 1536)) == 0


def test_candidates_topk_empty_and_zero():
    g = torch.Generator().manual_seed(1)
    w, acc = torch.randn(7, 13, generator=g, dtype=torch.float64), torch.rand(7, 13, generator=g, dtype=torch.float64)
    imp = (w.abs() * acc).flatten()
    stat = GradAbsSum(w.shape, dtype="float64").update_grad(acc)
    got = candidates(w, stat, 9)
    assert torch.equal(got, torch.sort(torch.topk(imp, 9).indices).values)
    assert candidates(w, stat, 0).numel() == 0
    assert candidates(w, GradAbsSum(w.shape), 5).numel() == 0  # e.g. an expert that saw no token


def test_target_module_filters():
    assert keep_weight("mlp.down_proj", "mlp", "self_attn", False)
    assert not keep_weight("self_attn.q_proj", "mlp", "self_attn", False)
    assert keep_weight("self_attn.q_proj", "self_attn", "self_attn", False)
    # MoE experts: outside attention by default, but the reference's "no 'mlp' in name" counts them as attention
    assert not keep_weight("block_sparse_moe.experts.0.w1", "self_attn", "self_attn", False)
    assert keep_weight("block_sparse_moe.experts.0.w1", "self_attn", "self_attn", True)
    model = _dense(2)
    an = inspect_model(model)
    names = {r.rel_name for r in weights_of_model(an, "mlp")}
    assert names == {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
    assert len(weights_of_model(an, "all")) == 14


def test_coupling_summary_by_hand():
    model = _dense(2)
    refs = weights_of_model(inspect_model(model), "mlp")
    c1 = {r.name: torch.tensor([1, 2, 3]) for r in refs}
    c2 = {r.name: torch.tensor([3, 4]) if r.layer == 0 else torch.tensor([], dtype=torch.long) for r in refs}
    out = coupling_summary(refs, c1, c2, 2, per_module=True)
    assert out["layers"][0]["coupled"] == 3 and out["layers"][1]["coupled"] == 0
    t = out["totals"]
    assert (t["candidate_dataset1"], t["candidate_dataset2"], t["coupled"]) == (18, 6, 3)
    assert t["total_neurons"] == 2 * 3 * 32 * 48
    assert t["coupling_ratio"] == pytest.approx(3 / t["total_neurons"])
    assert t["coupled_rate_vs_candidate_mean"] == pytest.approx(3 / 12)
    assert len(out["modules"]) == 6


def test_encode_sample_bos_handling():
    tok = CharTok()
    ids, n = encode_sample(tok, "ab", "cd")
    assert ids == [1, 3 + 97 % 90, 3 + 98 % 90, 3 + 99 % 90, 3 + 100 % 90] and n == 3
    nob = CharTok(bos=False)
    assert len(encode_sample(nob, "ab", "cd")[0]) == 4  # default keeps the real first token
    assert len(encode_sample(nob, "ab", "cd", reference_compat=True)[0]) == 3  # the reference drops it


def test_per_sample_loss_matches_hf_loss():
    model = _dense(2)
    tok = CharTok()
    samples = [encode_sample(tok, p, r) for p, r in _rows(3, 4)]
    for ids, n in samples:
        x = torch.tensor([ids])
        labels = x.clone()
        labels[:, :n] = -100
        ref = model(input_ids=x, labels=labels).loss
        got = per_sample_loss(model(input_ids=x).logits, x, torch.tensor([n]), torch.tensor([len(ids)]))
        assert torch.allclose(got[0], ref.double(), rtol=1e-6)  # HF computes its loss in float32


@pytest.mark.parametrize("target", ["mlp", "all"])
def test_fast_sums_equal_reference_dense(target, monkeypatch):
    from deepsight.diagnostics import spin

    fused = []  # the head's chunked loss is used even though the caller's parameters require grad
    monkeypatch.setattr(spin, "response_loss", lambda *a, **k: fused.append(1) or response_loss(*a, **k))
    model = _dense(3)
    assert all(p.requires_grad for p in model.parameters())
    an = inspect_model(model)
    refs = weights_of_model(an, target)
    tok = CharTok()
    samples = [encode_sample(tok, p, r) for p, r in _rows(5, 7)]
    ref = reference_sums(model, refs, samples)
    for bs, group in ((1, None), (3, None), (4, 2)):
        got, info = grad_abs_sums(model, an, refs, samples, batch_size=bs, max_batch_tokens=10_000,
                                  stat_dtype="float64", layer_group_size=group)
        assert "batched" in info["route"] and fused
        for r in refs:
            torch.testing.assert_close(got[r.name].total, ref[r.name], rtol=1e-10, atol=1e-13)
        fused.clear()


def test_fast_sums_equal_reference_moe_and_unseen_experts():
    model = _moe()
    an = inspect_model(model)
    refs = weights_of_model(an, "all")
    assert any(r.expert is not None for r in refs)
    tok = CharTok()
    samples = [encode_sample(tok, p, r) for p, r in _rows(8, 2)][:1]
    samples = [(ids[:4], min(n, 2)) for ids, n in samples]  # 4 tokens, top-1 of 8 experts: some unseen
    ref = reference_sums(model, refs, samples)
    got, _ = grad_abs_sums(model, an, refs, samples, stat_dtype="float64")
    unseen = [r for r in refs if r.expert is not None and not bool(ref[r.name].any())]
    assert unseen, "expected experts that saw no token"
    for r in refs:
        torch.testing.assert_close(got[r.name].total, ref[r.name], rtol=1e-10, atol=1e-13)
    for r in unseen:
        assert candidates(r.view(), got[r.name], 10).numel() == 0


def _topk_sets_equal_up_to_ties(imp: torch.Tensor, got: torch.Tensor, k: int) -> bool:
    flat = imp.flatten()
    kth = torch.topk(flat, k).values[-1]
    sure = set(torch.nonzero(flat > kth).flatten().tolist())
    tied = set(torch.nonzero(flat == kth).flatten().tolist())
    g = set(got.tolist())
    return len(g) == k and sure <= g and g <= sure | tied


@pytest.mark.parametrize("moe", [False, True])
def test_run_spin_matches_reference_candidates(moe):
    model = _moe() if moe else _dense(3)
    an = inspect_model(model)
    tok = CharTok()
    rows1, rows2 = _rows(11, 5), _rows(12, 5)
    cfg = SPINConfig(q=0.01, target_module="all", batch_size=3)
    res = run_spin(model, tok, an, rows1, rows2, cfg, stat_dtype="float64")
    refs = weights_of_model(an, "all")
    expect = {}
    for d, rows in enumerate((rows1, rows2)):
        samples = [encode_sample(tok, p, r) for p, r in rows]
        sums = reference_sums(model, refs, samples)
        expect[d] = {}
        for r in refs:
            k = num_candidates(cfg.q, r.shape)
            imp = r.view().detach().abs() * sums[r.name]
            got = res["candidates"][d][r.name]
            if not bool(sums[r.name].any()):
                assert got.numel() == 0
                expect[d][r.name] = got
                continue
            assert _topk_sets_equal_up_to_ties(imp, got, k), r.name
            expect[d][r.name] = torch.unique(torch.topk(imp.flatten(), k).indices)
    manual = coupling_summary(refs, expect[0], expect[1], an.num_layers)
    assert res["metrics"] == manual["totals"]
    assert [row["coupled"] for row in res["details"]["layers"]] == [row["coupled"] for row in manual["layers"]]
    assert res["metrics"]["candidate_dataset1"] > 0


def test_q_too_small_warns():
    model = _dense(2)
    an = inspect_model(model)
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    res = run_spin(model, CharTok(), an, _rows(1, 2), _rows(2, 2), SPINConfig(q=5e-7, target_module="mlp"))
    handle.remove()
    assert res["metrics"]["candidate_dataset1"] == 0 and res["metrics"]["coupled"] == 0
    assert any("smallest q" in w for w in res["warnings"])
    # every top-k is empty whatever the gradients: none is computed, and the totals still count the weights
    assert not calls and "no gradient was computed" in res["warnings"][0]
    refs = weights_of_model(an, "mlp")
    assert res["metrics"]["total_neurons"] == sum(r.numel for r in refs) > 0
    assert res["details"]["passes"]["dataset1"]["samples"] == 2
    assert f"{smallest_q_for_one([(48, 32)]):.6g}" in res["warnings"][0]


def test_spin_scan_writes_metrics_and_figure(tmp_path):
    from deepsight.config.schema import HardwareConfig
    from deepsight.diagnostics.registry import ScanContext
    from deepsight.diagnostics.spin import spin_scan

    data = tmp_path / "data" / "spin"
    data.mkdir(parents=True)
    for name, seed in (("p.csv", 1), ("f.csv", 2)):
        lines = ["prompt,response"] + [f'"{p}","{r}"' for p, r in _rows(seed, 6)]
        (data / name).write_text("\n".join(lines) + "\n")
    model = _dense(2)
    ctx = ScanContext(model=model, tokenizer=CharTok(), anatomy=inspect_model(model), run_dir=tmp_path / "run",
                      data_dir=tmp_path / "data", hardware=HardwareConfig())
    cfg = SPINConfig(dataset1_path="spin/p.csv", dataset2_path="spin/f.csv", n_samples=4, q=0.01, per_module=True)
    res = spin_scan(ctx, cfg)
    assert set(res["metrics"]) == {"candidate_dataset1", "candidate_dataset2", "coupled", "total_neurons",
                                   "coupling_ratio", "coupled_rate_vs_candidate_mean"}
    assert len(res["details"]["layers"]) == 2 and len(res["details"]["modules"]) == 6
    assert (ctx.run_dir / res["figures"][0]).read_bytes()[:4] == b"\x89PNG"
    assert res["config"]["q"] == 0.01
    json.dumps(res)  # serialisable as results.json


@pytest.mark.parametrize("bias", [False, True])
def test_chunked_head_loss_and_gradient_equal_the_plain_way(bias, monkeypatch):
    """response_loss over a few chunks == per_sample_loss(head(h)).sum(), value and gradient (float64)."""
    from deepsight.diagnostics import spin_loss

    monkeypatch.setattr(spin_loss, "CHUNK_BYTES", 4 * 37 * 5)  # 5 positions a chunk for V = 37
    g = torch.Generator().manual_seed(7)
    s, t, d, v = 4, 11, 6, 37
    head = torch.nn.Linear(d, v, bias=bias).double().requires_grad_(False)
    hidden = torch.randn(s, t, d, generator=g, dtype=torch.float64)
    ids = torch.randint(0, v, (s, t), generator=g)
    n_prompt = torch.tensor([3, 1, 5, 2])
    lengths = torch.tensor([11, 4, 9, 7])  # right padding after each length

    h1 = hidden.clone().requires_grad_(True)
    ref = per_sample_loss(head(h1), ids, n_prompt, lengths).sum()
    ref.backward()
    h2 = hidden.clone().requires_grad_(True)
    got = spin_loss.response_loss(h2, head, ids, n_prompt, lengths)
    (2.5 * got).backward()
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h2.grad, 2.5 * h1.grad, rtol=1e-12, atol=1e-12)
    assert h2.grad[1, 4:].abs().max() == 0  # padding and prompt-only positions get no gradient


def test_head_that_is_not_plain_linear_keeps_the_plain_loss(monkeypatch):
    """A model that rescales its logits after the head: the per-batch check sees it and SPIN's sums use
    the full logits (equal to the slow reference with the same model)."""
    from deepsight.diagnostics import spin

    model = _dense(2)
    head = model.lm_head
    monkeypatch.setattr(head, "forward", lambda x: torch.nn.functional.linear(x, head.weight) * 0.5)
    calls = []
    monkeypatch.setattr(spin, "response_loss", lambda *a, **k: calls.append(1))
    an = inspect_model(model)
    refs = weights_of_model(an, "mlp")
    samples = [encode_sample(CharTok(), p, r) for p, r in _rows(9, 5)]
    got, _ = grad_abs_sums(model, an, refs, samples, batch_size=2, max_batch_tokens=10_000, stat_dtype="float64")
    assert calls == []
    ref = reference_sums(model, refs, samples)
    for r in refs:
        torch.testing.assert_close(got[r.name].total, ref[r.name], rtol=1e-10, atol=1e-13)
