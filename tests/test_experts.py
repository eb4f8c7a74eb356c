"""MoE expert scan on tiny random-weight models of seven families: every per-expert statistic against a
float64 reference that recomputes routing from the router weights and the captured MoE-block inputs;
the expert_output site leaves the model bit-identical; the ablation mask removes exactly the masked experts."""

from __future__ import annotations

import math

import pytest
import torch
from _moe_models import FAMILIES, reference_routing, tiny_moe_model
from diag_helpers import char_tokenizer, random_chats, tiny_llama

from deepsight.capture import Capture, CaptureSpec
from deepsight.capture.expert_mask import ExpertMask
from deepsight.diagnostics.experts import collect_expert_stats, encode_with_parts, split_halves
from deepsight.diagnostics.experts_metrics import newcombe_interval, stability
from deepsight.errors import ConfigError
from deepsight.models.anatomy import inspect_model
from deepsight.stats.experts import ExpertRouting


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.where(p > 0, p.log(), 0.0)).sum(-1)


@torch.no_grad()
def reference_stats(family, model, anatomy, tokenizer, chats, num_classes, max_length):
    """Per MoE layer, float64 sums over (part, class[, expert]) from batch-1 unpadded forwards: the MoE
    block's input is captured by a hook and routed again from the router weights (reference_routing)."""
    ids, n_prompt = encode_with_parts(tokenizer, chats, max_length)
    layers = anatomy.moe_layer_indices
    out = {}
    for layer in layers:
        E = anatomy.layers[layer].num_experts
        out[layer] = {"counts": torch.zeros(2, num_classes, E, dtype=torch.float64),
                      "gates": torch.zeros(2, num_classes, E, dtype=torch.float64),
                      "ent": torch.zeros(2, num_classes, E, dtype=torch.float64),
                      "tokens": torch.zeros(2, num_classes, dtype=torch.float64),
                      "tok_ent": torch.zeros(2, num_classes, dtype=torch.float64),
                      "outs": torch.zeros(2, num_classes, E, anatomy.hidden_size, dtype=torch.float64)}
    for chat, row, n_p in zip(chats, ids, n_prompt):
        seen = {}
        hooks = [anatomy.layers[l].mlp.register_forward_pre_hook(
            lambda m, a, l=l, seen=seen: seen.__setitem__(l, a[0].reshape(-1, a[0].shape[-1]).clone())) for l in layers]
        try:
            model(input_ids=torch.tensor([row]))
        finally:
            for h in hooks:
                h.remove()
        part = (torch.arange(len(row)) >= n_p).long()
        c = chat.label
        for layer in layers:
            idx, w, probs, outs = reference_routing(family, anatomy.layers[layer], seen[layer])
            h = _entropy(probs)
            r = out[layer]
            for t in range(len(row)):
                p = int(part[t])
                r["tokens"][p, c] += 1
                r["tok_ent"][p, c] += h[t]
                for j in range(idx.shape[1]):
                    e = int(idx[t, j])
                    r["counts"][p, c, e] += 1
                    r["gates"][p, c, e] += w[t, j]
                    r["ent"][p, c, e] += h[t]
                    r["outs"][p, c, e] += outs[t, j]
    return out


def _close(actual, expected, rel, what):
    scale = expected.abs().max().clamp_min(1.0)
    err = (actual - expected).abs().max()
    assert err <= rel * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("family", FAMILIES)
def test_statistics_match_float64_reference(family):
    model = tiny_moe_model(family)
    anatomy = inspect_model(model)
    tok = char_tokenizer()
    gen = torch.Generator().manual_seed(FAMILIES.index(family))
    chats = random_chats(9, 3, gen, max_len=14)
    halves = split_halves([c.label for c in chats], seed=1)
    routing, outputs = collect_expert_stats(model, tok, anatomy, chats, 3, anatomy.moe_layer_indices, halves=halves,
                                            max_length=40, max_batch_tokens=70, stat_dtype="float64")
    ref = reference_stats(family, model, anatomy, tok, chats, 3, 40)
    assert sorted(routing) == anatomy.moe_layer_indices
    for layer, r in ref.items():
        st = routing[layer]
        both = lambda t: t[:, :3] + t[:, 3:]  # noqa: E731 - the two halves together
        assert torch.equal(both(st.counts), r["counts"]), f"{family} layer {layer}: selections differ"
        assert torch.equal(both(st.tokens), r["tokens"]), f"{family} layer {layer}: token counts differ"
        # softmax routers compute their probabilities in float32 even in a float64 model
        _close(both(st.gate_sums), r["gates"], 1e-6, f"{family} layer {layer} gate sums")
        _close(both(st.entropy_sums), r["ent"], 1e-6, f"{family} layer {layer} entropy sums")
        _close(both(st.token_entropy), r["tok_ent"], 1e-6, f"{family} layer {layer} token entropy")
        # (DeepSeek-V2 rotates queries and keys in complex64: batched and single rows differ by float32 rounding)
        _close(outputs[layer].output_sums, r["outs"], 1e-6, f"{family} layer {layer} expert output sums")
        lens = torch.tensor([len(x) for x in encode_with_parts(tok, chats, 40)[0]])
        for h in (0, 1):  # each half holds only its own samples' tokens
            assert st.tokens[:, h * 3 : (h + 1) * 3].sum() == lens[torch.tensor(halves) == h].sum(), "split halves"


@pytest.mark.parametrize("family", FAMILIES)
def test_expert_output_capture_is_bit_identical_and_ablation_masks(family):
    model = tiny_moe_model(family, layers=3, seed=3)
    anatomy = inspect_model(model)
    ids = torch.randint(4, 100, (2, 11), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    seen = {}
    spec = CaptureSpec("expert_output", anatomy.moe_layer_indices, reduce="none")
    with Capture(model, [spec], lambda ev: seen.__setitem__(ev.layer, ev), early_exit=False) as cap:
        out = cap.forward(ids, mask)
    assert torch.equal(out.logits, plain.logits), "the expert_output site changed the model's output"
    # nothing masked: the model is untouched
    with ExpertMask(model, {}, anatomy=anatomy), torch.no_grad():
        same = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(same, plain.logits)
    # mask two experts of the last MoE block and one of the first
    first, last = anatomy.moe_layer_indices[0], anatomy.moe_layer_indices[-1]
    top = {last: [int(seen[last].top_k_index[0, 0]), int(seen[last].top_k_index[3, 0])],
           first: [int(seen[first].top_k_index[1, 0])]}
    got = {}
    with ExpertMask(model, top, anatomy=anatomy):
        with Capture(model, [CaptureSpec("expert_routing", anatomy.moe_layer_indices, reduce="none")],
                     lambda ev: got.__setitem__(ev.layer, ev), early_exit=False) as cap:
            masked = cap.forward(ids, mask)
    for layer, experts in top.items():
        chosen = got[layer].top_k_index
        assert not torch.isin(chosen, torch.tensor(experts)).any(), f"{family}: a masked expert received a token"
    assert not torch.equal(masked.logits, plain.logits), "masking changed nothing"
    # state before the first masked block is bit-identical; after exit the router is restored
    with ExpertMask(model, {last: top[last]}, anatomy=anatomy), torch.no_grad():
        part = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    for i in range(last + 1):  # hidden_states[i] = input of block i
        assert torch.equal(part.hidden_states[i], plain.hidden_states[i]), f"block {i} input changed"
    with torch.no_grad():
        again = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(again, plain.logits), "ExpertMask did not restore the router"


def test_mask_errors():
    model = tiny_moe_model("mixtral", layers=2)
    with pytest.raises(ConfigError, match="has 6 experts"):
        ExpertMask(model, {0: [6]})
    with pytest.raises(ConfigError, match="fewer than its top-k"):
        ExpertMask(model, {0: [0, 1, 2, 3, 4]})


def test_statistic_merge_state_dict_and_empty_classes():
    gen = torch.Generator().manual_seed(0)
    N, E, K, C, D = 41, 7, 2, 3, 5
    idx = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(N)])
    w = torch.rand(N, K, generator=gen)
    logits = torch.randn(N, E, generator=gen)
    cls = torch.randint(-1, 2, (N,), generator=gen)  # class 2 stays empty
    part = torch.randint(0, 2, (N,), generator=gen)
    outs = torch.randn(N, K, D, generator=gen)
    one = ExpertRouting(E, C, dim=D, dtype="float64")
    one.update(idx, w, cls, part, logits=logits).update_outputs(outs, idx, cls, part)
    a, b = ExpertRouting(E, C, dim=D, dtype="float64"), ExpertRouting(E, C, dim=D, dtype="float64")
    a.update(idx[:20], w[:20], cls[:20], part[:20], logits=logits[:20]).update_outputs(outs[:20], idx[:20], cls[:20],
                                                                                       part[:20])
    b.update(idx[20:], w[20:], cls[20:], part[20:], logits=logits[20:]).update_outputs(outs[20:], idx[20:], cls[20:],
                                                                                       part[20:])
    a.merge(b)
    for name in ("counts", "tokens", "gate_sums", "entropy_sums", "token_entropy", "output_sums"):
        assert torch.allclose(getattr(a, name), getattr(one, name)), name
    assert one.tokens[:, 2].sum() == 0 and one.output_sums[:, 2].abs().sum() == 0
    assert one.tokens.sum() == (cls >= 0).sum()
    # direct check of one cell
    sel = (cls == 1) & (part == 0)
    assert one.counts[0, 1, 3] == (idx[sel] == 3).sum()
    c = ExpertRouting(E, C, dim=D, dtype="float64").load_state_dict(one.state_dict())
    assert torch.equal(c.acc, one.acc) and torch.equal(c.outputs, one.outputs)
    with pytest.raises(ValueError):
        ExpertRouting(E, C, dim=D + 1, dtype="float64").load_state_dict(one.state_dict())
    one.all_reduce()  # no process group: no-op


def test_encode_with_parts_splits_at_the_reply():
    tok = char_tokenizer()
    tok.chat_template = ("{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<a>{% endif %}")
    from deepsight.data.labeled_chats import LabeledChat

    chats = [LabeledChat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo!"}], 0, "x", 0),
             LabeledChat([{"role": "user", "content": "only a prompt"}], 1, "x", 1)]
    ids, n_prompt = encode_with_parts(tok, chats, None)
    assert n_prompt[0] == len("<u>hi\n<a>") and len(ids[0]) == len("<u>hi\n<a>yo!\n")
    assert n_prompt[1] == len(ids[1])


def test_newcombe_and_stability():
    d, lo, hi = newcombe_interval(56, 70, 48, 80)  # Newcombe (1998), Stat Med 17:873, method 10 example
    assert d == pytest.approx(0.2) and lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    assert all(math.isnan(v) for v in newcombe_interval(0, 0, 1, 2))
    rd = {0: [0.3, 0.1, -0.2], 1: [0.05, 0.4, 0.0]}
    assert stability(rd, rd, 3) == 1.0
    assert stability(rd, {0: [-0.3, -0.1, 0.2], 1: [-0.05, -0.4, 0.5]}, 1) == 0.0


def test_dense_model_is_skipped(tmp_path):
    from deepsight.config.schema import ExpertsConfig
    from deepsight.diagnostics.experts import run_experts
    from deepsight.diagnostics.registry import ScanContext

    model = tiny_llama(layers=2)
    ctx = ScanContext(model, char_tokenizer(), inspect_model(model), tmp_path, None, None)
    out = run_experts(ctx, ExpertsConfig())
    assert out["status"] == "skipped" and "dense" in out["reason"]


def test_mask_restores_an_instance_level_forward():
    """accelerate (device_map) installs its hooks as an instance-level forward: it must survive the mask."""
    model = tiny_moe_model("mixtral", layers=2)
    anatomy = inspect_model(model)
    router = anatomy.layers[0].router
    original = router.forward

    def wrapped(*args, **kwargs):
        return original(*args, **kwargs)

    router.forward = wrapped
    with ExpertMask(model, {0: [1], 1: [2]}, anatomy=anatomy), torch.no_grad():
        model(input_ids=torch.randint(4, 100, (1, 7)))
    assert router.forward is wrapped
    assert "forward" not in anatomy.layers[1].router.__dict__


@pytest.mark.parametrize("impl", ["eager", "grouped_mm", "batched_mm"])
@pytest.mark.parametrize("family", ["qwen3_moe", "deepseek_v3", "gpt_oss"])
def test_expert_output_capture_is_bit_identical_under_each_experts_implementation(family, impl):
    """float32, the implementation transformers dispatches to (grouped_mm is the CPU default): the model's
    output with the expert_output site equals the plain forward bit for bit, the second batch (reused pair
    buffers) too, and the per-pair outputs handed to the sink are the experts' own outputs."""
    model = tiny_moe_model(family, layers=3, seed=4, dtype=torch.float32)
    model.config._experts_implementation = impl
    anatomy = inspect_model(model)
    gen = torch.Generator().manual_seed(6)
    batches = []
    for t in (13, 7, 11):  # different pair counts: the workspace is resized and reused
        ids = torch.randint(4, 100, (3, t), generator=gen)
        mask = torch.ones_like(ids)
        mask[2, t - 3 :] = 0
        with torch.no_grad():
            batches.append((ids, mask, model(input_ids=ids, attention_mask=mask).logits))
    seen = {}
    spec = CaptureSpec("expert_output", anatomy.moe_layer_indices, reduce="none")
    with Capture(model, [spec], lambda ev: seen.__setitem__(ev.layer, ev), early_exit=False) as cap:
        for ids, mask, plain in batches:
            out = cap.forward(ids, mask)
            assert torch.equal(out.logits, plain), f"{impl}: the expert_output site changed the output"
    layer = anatomy.moe_layer_indices[-1]
    ev = seen[layer]
    block = anatomy.layers[layer]
    # each chosen expert's output recomputed alone from the experts' weights (float64)
    hooks = {}
    h = block.experts.register_forward_pre_hook(
        lambda m, a, k: hooks.__setitem__("x", (a[0] if a else k["hidden_states"]).detach().clone()),
        with_kwargs=True)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    h.remove()
    x = hooks["x"].reshape(-1, hooks["x"].shape[-1]).double()
    _, _, _, ref_out = reference_routing(family, block, x)
    ref_idx = reference_routing(family, block, x)[0]
    got = ev.outputs.double()
    # match each (token, route) by expert id (the capture may order a token's routes differently)
    for n in range(x.shape[0]):
        for j in range(ev.top_k_index.shape[1]):
            e = int(ev.top_k_index[n, j])
            jr = (ref_idx[n] == e).nonzero()
            assert jr.numel() == 1, f"token {n}: expert {e} not in the reference top-k"
            torch.testing.assert_close(got[n, j], ref_out[n, int(jr)], rtol=1e-4, atol=1e-5)
