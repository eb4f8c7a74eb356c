"""Capture engine on tiny random models: pooled stats vs output_hidden_states (float64), padding sides,
early exit, hook cleanup, MoE sites, generation steps, batching."""

from __future__ import annotations

import pytest
import torch
from _engine_models import random_seqs, tiny_llama, tiny_mixtral, tiny_qwen2_moe

from deepsight.capture import Capture, CaptureSpec, iter_batches, length_buckets, pad_batch, truncated_forward
from deepsight.errors import ConfigError
from deepsight.models.anatomy import inspect_model
from deepsight.stats import ClassCentroids, GramMatrix

LENGTHS = [5, 9, 3, 7, 8, 1, 6]


def _reference_states(model, seqs):
    """hidden_states of each sequence run alone (batch 1, no padding), float64: list of (L+1, T, D)."""
    out = []
    with torch.no_grad():
        for s in seqs:
            hs = model(torch.tensor([s]), output_hidden_states=True).hidden_states
            out.append(torch.stack([h[0] for h in hs]).double())
    return out


@pytest.fixture(scope="module")
def llama():
    return tiny_llama()


@pytest.fixture(scope="module")
def llama_ref(llama):
    seqs = random_seqs(LENGTHS, llama.config.vocab_size)
    return seqs, _reference_states(llama, seqs)


@pytest.mark.parametrize("side", ["right", "left"])
def test_mean_last_all_match_hidden_states(llama, llama_ref, side):
    seqs, ref = llama_ref
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 2])
    layers = [0, 2]
    got: dict[tuple[str, int], list] = {}

    def sink(ev):
        rows = ev.take("row")
        if ev.spec.reduce == "all":
            got.setdefault((ev.spec.name, ev.layer), []).append((ev.value.double(), rows))
        else:
            got.setdefault((ev.spec.name, ev.layer), []).extend(zip(rows.tolist(), ev.value.double()))

    specs = [CaptureSpec("block_output", layers, "mean", name="mean"),
             CaptureSpec("block_output", layers, "last", name="last"),
             CaptureSpec("block_output", layers, "all", name="all")]
    with Capture(llama, specs, sink) as cap:
        for b in iter_batches(seqs, max_batch_tokens=20, pad_id=0, side=side):
            cap.forward(b.input_ids, b.attention_mask, row=b.index, labels=labels[b.index])
    for layer in layers:
        mean = dict(got[("mean", layer)])
        last = dict(got[("last", layer)])
        for r, states in enumerate(ref):
            h = states[layer + 1]  # (T, D) block output = hidden_states[l + 1]
            tol = dict(rtol=1e-4, atol=1e-4) if side == "right" else dict(rtol=2e-3, atol=2e-3)
            torch.testing.assert_close(mean[r], h.mean(0), **tol)
            torch.testing.assert_close(last[r], h[-1], **tol)
        tokens = {}
        for value, rows in got[("all", layer)]:
            for r in rows.unique().tolist():
                tokens[r] = value[rows == r]
        for r, states in enumerate(ref):
            torch.testing.assert_close(tokens[r], states[layer + 1], **tol)


def test_right_padding_is_exact_and_centroids_fused(llama, llama_ref):
    """Fused pooling in the statistic (reduce='none') equals the float64 reference; right padding exact."""
    seqs, ref = llama_ref
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 2])
    cents: dict[int, ClassCentroids] = {}

    def sink(ev):
        c = cents.setdefault(ev.layer, ClassCentroids(3, ev.hidden.shape[-1], dtype="float64", device=ev.device))
        c.update(ev.hidden, ev.take("labels"), mask=ev.mask, pooling="mean")

    with Capture(llama, [CaptureSpec("block_output", [1, -2], "none")], sink) as cap:
        for b in iter_batches(seqs, max_batch_tokens=1000, pad_id=0):
            cap.forward(b.input_ids, b.attention_mask, labels=labels[b.index])
    for layer in (1, 2):  # (HF hidden_states[L] is after the final norm, so the last block is not compared)
        expect = torch.stack([torch.stack([ref[i][layer + 1].mean(0) for i in range(7) if labels[i] == k]).mean(0)
                              for k in range(3)])
        torch.testing.assert_close(cents[layer].centroids, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("with_prefix", [False, True])
def test_causal_right_padding_runs_without_the_mask_and_matches(with_prefix):
    """Right-padded rows of a causal model run without the padding mask: every reduction equals the masked
    forward's and batch 1's; the model really gets no mask; left padding is refused."""
    model = tiny_llama().double()
    head = [7, 8, 9, 10, 11, 12, 13, 14, 15]
    seqs = [head + s for s in random_seqs([5, 9, 3, 7, 1, 6], model.config.vocab_size)]
    ref = _reference_states(model, seqs)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    specs = [CaptureSpec("block_output", [0, 2], "mean", name="mean"), CaptureSpec("block_output", [1], "last")]
    seen_masks = []
    model.register_forward_pre_hook(lambda m, a, kw: seen_masks.append(kw.get("attention_mask")), with_kwargs=True)

    def run(causal_right_padding):
        got = {}

        def sink(ev):
            for r, v in zip(ev.take("row").tolist(), ev.value):
                got[(ev.spec.name, ev.layer, r)] = v.double()  # (the mean is taken in float32)

        with Capture(model, specs, sink, causal_right_padding=causal_right_padding) as cap:
            prefix = cap.shared_prefix(seqs) if with_prefix else None
            assert (prefix is not None) == with_prefix
            for b in iter_batches(seqs, max_batch_tokens=40, pad_id=0):
                cap.forward(b.input_ids, b.attention_mask, prefix=prefix, row=b.index, labels=labels[b.index])
        return got

    masked = run(False)
    seen_masks.clear()
    unmasked = run(True)
    assert seen_masks and all(m is None for m in seen_masks[1 if with_prefix else 0 :])
    assert masked.keys() == unmasked.keys()
    for key, value in unmasked.items():
        torch.testing.assert_close(value, masked[key], rtol=1e-6, atol=1e-6)
        name, layer, r = key
        h = ref[r][layer + 1]
        torch.testing.assert_close(value, h.mean(0) if name == "mean" else h[-1], rtol=1e-6, atol=1e-6)
    ids, mask = pad_batch(seqs[:2], pad_id=0, side="left")
    with Capture(model, specs, lambda ev: None, causal_right_padding=True) as cap:
        with pytest.raises(ValueError, match="right padding"):
            cap.forward(ids, mask)
    with pytest.raises(ConfigError, match="causal_right_padding"):
        Capture(model, specs, lambda ev: None, causal_right_padding=True, mask_positions=True)


def test_early_exit_stops_after_deepest_block(llama):
    seqs = random_seqs([4, 6], llama.config.vocab_size)
    ids, mask = pad_batch(seqs, 0)
    ran: list[str] = []
    handles = [blk.register_forward_hook(lambda m, a, o, i=i: ran.append(f"block{i}"))
               for i, blk in enumerate(llama.model.layers)]
    handles.append(llama.lm_head.register_forward_hook(lambda *a: ran.append("lm_head")))
    handles.append(llama.model.norm.register_forward_hook(lambda *a: ran.append("norm")))
    values = {}
    try:
        with Capture(llama, [CaptureSpec("block_output", [1], "last")], lambda ev: values.update(v=ev.value)) as cap:
            assert cap.stop_after == 1
            assert cap.forward(ids, mask) is None
        assert ran == ["block0", "block1"]
        ran.clear()
        with torch.no_grad():
            full = llama(ids, attention_mask=mask, output_hidden_states=True).hidden_states[2]
        assert "lm_head" in ran and "block3" in ran
        torch.testing.assert_close(values["v"], full[torch.arange(2), mask.sum(1) - 1])
        ran.clear()
        truncated_forward(llama, ids, mask, stop_after=2)
        assert ran == ["block0", "block1", "block2"]
        ran.clear()
        with Capture(llama, [CaptureSpec("block_output", [0], "last")], lambda ev: None, early_exit=False) as cap:
            out = cap.forward(ids, mask)
        assert out is not None and ran[-1] == "lm_head"
    finally:
        for h in handles:
            h.remove()


def _hook_counts(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_removed_after_errors(llama):
    before = _hook_counts(llama)
    ids, mask = pad_batch(random_seqs([3, 5], llama.config.vocab_size), 0)

    def bad_sink(ev):
        raise RuntimeError("sink failed")

    with pytest.raises(RuntimeError, match="sink failed"):
        with Capture(llama, [CaptureSpec("mlp_output", [0, 2], "mean")], bad_sink) as cap:
            assert _hook_counts(llama) > before
            cap.forward(ids, mask)
    assert _hook_counts(llama) == before
    with pytest.raises(KeyError, match="labels"):
        with Capture(llama, [CaptureSpec("block_output", [0], "mean")], lambda ev: ev.take("labels")) as cap:
            cap.forward(ids, mask)
    assert _hook_counts(llama) == before
    # a plain model call after the capture is untouched (no stale early exit, no sink)
    with torch.no_grad():
        assert llama(ids, attention_mask=mask).logits.shape == (2, 5, llama.config.vocab_size)


def test_spec_validation(llama):
    with pytest.raises(ConfigError, match="site"):
        CaptureSpec("embeddings", [0])
    with pytest.raises(ConfigError, match="reduce"):
        CaptureSpec("block_output", [0], "max")
    with pytest.raises(ConfigError, match="layer 4"):
        Capture(llama, [CaptureSpec("block_output", [4])], lambda ev: None)
    with pytest.raises(ConfigError, match="router"):
        with Capture(llama, [CaptureSpec("router_logits", [0], "all")], lambda ev: None):
            pass
    with pytest.raises(ConfigError, match="unique"):
        Capture(llama, [CaptureSpec("block_output", [0]), CaptureSpec("block_output", [1])], lambda ev: None)
    with pytest.raises(ConfigError, match="no sink"):
        Capture(llama, [CaptureSpec("block_output", [0])], {"other": print})


def test_attention_and_mlp_sites_are_consistent(llama):
    """block_output(l) = block_output(l-1) + attention_output(l) + mlp_output(l); mlp_input = norm(resid)."""
    seqs = random_seqs([6, 4, 7], llama.config.vocab_size)
    ids, mask = pad_batch(seqs, 0)
    got = {}
    specs = [CaptureSpec(s, [1, 2], "none") for s in ("block_output", "attention_output", "mlp_input", "mlp_output")]
    with Capture(llama, specs, lambda ev: got.__setitem__((ev.spec.site, ev.layer), ev.hidden.clone())) as cap:
        cap.forward(ids, mask)
    recon = got[("block_output", 1)] + got[("attention_output", 2)] + got[("mlp_output", 2)]
    torch.testing.assert_close(recon, got[("block_output", 2)], rtol=1e-5, atol=1e-5)
    norm = llama.model.layers[2].post_attention_layernorm
    with torch.no_grad():
        expect = norm(got[("block_output", 1)] + got[("attention_output", 2)])
    torch.testing.assert_close(got[("mlp_input", 2)], expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factory", [tiny_mixtral, tiny_qwen2_moe])
def test_moe_router_and_expert_inputs(factory):
    model = factory()
    anatomy = inspect_model(model)
    seqs = random_seqs([5, 3, 6], model.config.vocab_size)
    ids, mask = pad_batch(seqs, 0)
    got = {}

    def sink(ev):
        got[(ev.spec.site, ev.layer)] = (ev.value.clone(), ev.rows, ev.experts)

    specs = [CaptureSpec("router_logits", [0, 1], "all"), CaptureSpec("expert_input", [1], "all"),
             CaptureSpec("mlp_input", [1], "none")]
    with Capture(model, specs, sink, anatomy=anatomy, early_exit=False) as cap:
        out = cap.forward(ids, mask)
    with torch.no_grad():
        ref = model(ids, attention_mask=mask, output_router_logits=True)
    valid = mask.bool()
    for layer in (0, 1):
        logits, rows, _ = got[("router_logits", layer)]
        torch.testing.assert_close(logits, ref.router_logits[layer].view(3, 6, -1)[valid], rtol=1e-5, atol=1e-5)
        assert rows.tolist() == [0] * 5 + [1] * 3 + [2] * 6
    torch.testing.assert_close(out.logits, ref.logits)
    # expert inputs: every valid token once per selected expert, experts = top-k of the router
    x, rows, experts = got[("expert_input", 1)]
    k = anatomy.layers[1].num_experts_per_tok
    assert x.shape[0] == valid.sum() * k and experts.shape == rows.shape == (x.shape[0],)
    router_logits = ref.router_logits[1]  # (B*T, E)
    topk = router_logits.softmax(-1).topk(k, dim=-1).indices[valid.reshape(-1)]  # (N_valid, k)
    assert torch.equal(experts.view(-1, k).sort(-1).values, topk.sort(-1).values)
    mlp_in = got[("mlp_input", 1)][0][valid]  # (N_valid, D)
    torch.testing.assert_close(x.view(-1, k, x.shape[-1])[:, 0], mlp_in)
    centroids = ClassCentroids(anatomy.layers[1].num_experts, x.shape[-1]).update(x, experts)  # per-expert means
    assert centroids.class_counts.sum() == x.shape[0]


def test_generation_steps_match_batch_one(llama):
    """reduce='step': per forward call, the last position per row, skipping finished rows; equals batch-1 runs."""
    model = llama
    prompts = random_seqs([4, 6, 5], model.config.vocab_size, seed=3)
    new = 6
    with torch.no_grad():  # make row 0 stop early: its third greedy token becomes the EOS id
        free = model.generate(torch.tensor([prompts[0]]), max_new_tokens=3, do_sample=False, pad_token_id=0)
    eos = int(free[0, -1])
    # batch-1 reference: states of the last position at every forward call
    ref = []
    for p in prompts:
        with torch.no_grad():
            out = model.generate(torch.tensor([p]), max_new_tokens=new, do_sample=False, eos_token_id=eos,
                                 pad_token_id=0, output_hidden_states=True, return_dict_in_generate=True)
        ref.append([hs[2][0, -1].double() for hs in out.hidden_states])  # block 1 output
    assert len(ref[0]) == 3 and max(len(r) for r in ref) > 3, "row 0 must finish before the others"
    got: dict[int, list] = {}

    def sink(ev):
        for r, v in zip(ev.take("row").tolist(), ev.value.double()):
            got.setdefault(r, []).append((ev.step, v))

    ids, mask = pad_batch(prompts, 0, side="left")
    with Capture(model, [CaptureSpec("block_output", [1], "step")], sink) as cap:
        cap.generate(ids, mask, eos_token_id=eos, meta={"row": torch.arange(3)}, max_new_tokens=new,
                     do_sample=False, pad_token_id=0)
    for r in range(3):
        steps = [s for s, _ in got[r]]
        assert steps == list(range(len(ref[r])))
        for (_, v), expect in zip(got[r], ref[r]):
            torch.testing.assert_close(v, expect, rtol=2e-3, atol=2e-3)


def test_generation_skips_finished_rows(llama):
    model = llama
    prompts = random_seqs([3, 5], model.config.vocab_size, seed=4)
    ids, mask = pad_batch(prompts, 0, side="left")
    seen: list[tuple[int, list[int]]] = []
    with Capture(model, [CaptureSpec("block_output", [0], "step")],
                 lambda ev: seen.append((ev.step, ev.rows.tolist()))) as cap:
        cap.begin_generation(eos_token_id=None)
        past = None
        cur, cur_mask = ids, mask
        with torch.no_grad():
            for step in range(4):
                out = model(input_ids=cur, attention_mask=cur_mask, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                if step == 1:
                    cap.mark_finished(torch.tensor([True, False]))
                cur, cur_mask = nxt, torch.cat([cur_mask, torch.ones(2, 1, dtype=mask.dtype)], 1)
        cap.end_generation()
    assert seen == [(0, [0, 1]), (1, [0, 1]), (2, [1]), (3, [1])]
    # an EOS fed back finishes the row at that step
    seen.clear()
    with Capture(model, [CaptureSpec("block_output", [0], "step")],
                 lambda ev: seen.append((ev.step, ev.rows.tolist()))) as cap:
        cap.begin_generation(eos_token_id=[2, 7])
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, use_cache=True)
            m2 = torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], 1)
            model(input_ids=torch.tensor([[5], [7]]), attention_mask=m2, past_key_values=out.past_key_values,
                  use_cache=True)
        cap.end_generation()
    assert seen == [(0, [0, 1]), (1, [0])]


def test_length_buckets_budget_order_and_restore():
    lengths = [5, 1, 9, 9, 3, 4, 12, 2, 7]
    batches = length_buckets(lengths, max_batch_tokens=20)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 20
    assert flat == sorted(range(len(lengths)), key=lambda i: -lengths[i])  # longest first, stable
    assert all(len(b) <= 2 for b in length_buckets(lengths, 1000, max_batch_size=2))
    assert length_buckets([30], 10) == [[0]]  # a row over budget runs alone
    assert length_buckets([], 10) == []
    seqs = [[i + 1] * n for i, n in enumerate(lengths)]
    restored = [None] * len(seqs)
    for b in iter_batches(seqs, max_batch_tokens=20, pad_id=0, side="left"):
        assert b.input_ids.shape == b.attention_mask.shape
        for r, i in enumerate(b.index.tolist()):
            restored[i] = b.input_ids[r][b.attention_mask[r].bool()].tolist()
            assert b.attention_mask[r, -1] == 1  # left padding
    assert restored == seqs
    ids, mask = pad_batch([[4, 5], [6]], 0)
    assert ids.tolist() == [[4, 5], [6, 0]] and mask.tolist() == [[1, 1], [1, 0]]


def test_gram_from_last_tokens_with_left_padding(llama, llama_ref):
    """TELLME-style: last-token Gram per class with left padding equals the batch-1 reference."""
    seqs, ref = llama_ref
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    grams = {}

    def sink(ev):
        g = grams.setdefault(ev.layer, GramMatrix(ev.value.shape[-1], num_classes=2, dtype="float64"))
        g.update(ev.value, ev.take("labels"))

    with Capture(llama, [CaptureSpec("block_output", [2], "last")], sink) as cap:
        for b in iter_batches(seqs, max_batch_tokens=16, pad_id=0, side="left"):
            cap.forward(b.input_ids, b.attention_mask, labels=labels[b.index])
    z = torch.stack([r[3][-1] for r in ref])  # (N, D)
    torch.testing.assert_close(grams[2].gram, z.T @ z, rtol=5e-3, atol=5e-3)
    z1 = z[labels == 1]
    torch.testing.assert_close(grams[2].class_gram(1), z1.T @ z1, rtol=5e-3, atol=5e-3)


def test_sharded_offloaded_model_gives_same_stats(tmp_path):
    """Blocks dispatched by accelerate (layers 2-3 offloaded to disk, run through accelerate's hooks)."""
    from accelerate import dispatch_model

    plain, sharded = tiny_llama(), tiny_llama()
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu",
                  "model.layers.2": "disk", "model.layers.3": "disk", "model.norm": "cpu",
                  "model.rotary_emb": "cpu", "lm_head": "cpu"}
    sharded = dispatch_model(sharded, device_map=device_map, offload_dir=str(tmp_path))
    assert sharded.model.layers[3].mlp.up_proj.weight.device.type == "meta"
    seqs = random_seqs([4, 7, 2, 5], plain.config.vocab_size)
    labels = torch.tensor([0, 1, 1, 0])

    def scan(model):
        anatomy = inspect_model(model)
        stats = {}

        def sink(ev):
            key = (ev.spec.name, ev.layer)
            if key not in stats:
                assert ev.device == anatomy.block_devices[ev.layer]
                stats[key] = ClassCentroids(2, ev.value.shape[-1], device=ev.device)
            stats[key].update(ev.value, ev.take("labels"))

        specs = [CaptureSpec("block_output", [1, 3], "mean"), CaptureSpec("mlp_output", [2], "last")]
        before = _hook_counts(model)
        with Capture(model, specs, sink, anatomy=anatomy) as cap:
            assert cap.layer_device(3).type == "cpu"
            for b in iter_batches(seqs, max_batch_tokens=14, pad_id=0):
                cap.forward(b.input_ids, b.attention_mask, labels=labels[b.index])
        assert _hook_counts(model) == before
        return stats

    a, b = scan(plain), scan(sharded)
    assert a.keys() == b.keys() == {("block_output", 1), ("block_output", 3), ("mlp_output", 2)}
    for key in a:
        torch.testing.assert_close(a[key].centroids, b[key].centroids, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("indices,ran_expected", [([0], []), ([0, 2], ["block0", "block1"]),
                                                  ([-1, 1], ["block0", "block1", "block2", "block3", "norm"])])
def test_hidden_states_indices_match_hf(llama, llama_ref, indices, ran_expected):
    """site hidden_states: HF indices 0..L (0 = embeddings, L = final norm output), early exit right after."""
    seqs, ref = llama_ref
    ran: list[str] = []
    handles = [blk.register_forward_hook(lambda m, a, o, i=i: ran.append(f"block{i}"))
               for i, blk in enumerate(llama.model.layers)]
    handles.append(llama.model.norm.register_forward_hook(lambda *a: ran.append("norm")))
    handles.append(llama.lm_head.register_forward_hook(lambda *a: ran.append("lm_head")))
    got = {}
    try:
        with Capture(llama, [CaptureSpec("hidden_states", indices, "mean")],
                     lambda ev: got.setdefault(ev.layer, {}).update(zip(ev.take("row").tolist(), ev.value))) as cap:
            for b in iter_batches(seqs[:3], max_batch_tokens=100, pad_id=0):
                ran.clear()
                cap.forward(b.input_ids, b.attention_mask, row=b.index)
        assert ran == ran_expected
    finally:
        for h in handles:
            h.remove()
    for i in indices:
        idx = i + 5 if i < 0 else i  # 4 blocks: indices 0..4
        for r in range(3):
            torch.testing.assert_close(got[idx][r].double(), ref[r][idx].mean(0), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="hidden_states index 5"):
        Capture(llama, [CaptureSpec("hidden_states", [5])], lambda ev: None)


def test_mask_positions_make_left_padding_match_batch_one(llama, llama_ref):
    seqs, ref = llama_ref
    got = {}
    with Capture(llama, [CaptureSpec("block_output", [2], "last")], lambda ev: got.update(
            zip(ev.take("row").tolist(), ev.value.double())), mask_positions=True) as cap:
        for b in iter_batches(seqs, max_batch_tokens=1000, pad_id=0, side="left"):
            cap.forward(b.input_ids, b.attention_mask, row=b.index)
    for r, states in enumerate(ref):
        torch.testing.assert_close(got[r], states[3][-1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("factory", [tiny_llama, tiny_mixtral, tiny_qwen2_moe])
@pytest.mark.parametrize("side", ["right", "left", "prefix"])
def test_last_token_mlp_shortcut_matches_whole_blocks(factory, side):
    """Last-token captures at the stop block: its MLP runs on one position per row, same states as whole
    blocks (dense and MoE; right padding, left padding, a shared prefix); not used for other captures."""
    moe = factory is not tiny_llama
    model = factory() if moe else factory().double()  # (the fused MoE experts take no float64)
    tol = dict(rtol=1e-5, atol=1e-5) if moe else dict(rtol=1e-10, atol=1e-10)
    anatomy = inspect_model(model)
    head = [5, 6, 7, 8, 9, 10, 11, 12]
    seqs = [head + s for s in random_seqs([6, 2, 9, 4, 1], model.config.vocab_size)]
    layer = anatomy.num_layers - 2
    mlp_rows = []  # (B, T) of every MLP output of that block (after the shortcut's pre-hook)
    anatomy.layers[layer].mlp.register_forward_hook(
        lambda m, a, out: mlp_rows.append((out[0] if isinstance(out, tuple) else out).shape[:-1]))

    def run(shortcut, specs):
        got = {}

        def sink(ev):
            for r, v in zip(ev.take("row").tolist(), ev.value):
                got[(ev.spec.name, ev.layer, r)] = v.double()

        mlp_rows.clear()
        with Capture(model, specs, sink, anatomy=anatomy, last_token_mlp=shortcut) as cap:
            prefix = cap.shared_prefix(seqs) if side == "prefix" else None
            for b in iter_batches(seqs, max_batch_tokens=40, pad_id=0, side="left" if side == "left" else "right"):
                cap.forward(b.input_ids, b.attention_mask, prefix=prefix, row=b.index)
        return got, list(mlp_rows)

    specs = [CaptureSpec("block_output", [layer], "last")]
    ref, whole = run(False, specs)
    got, shortcut = run(True, specs)
    def tokens(shape):  # (B, T) or, for MoE blocks that flatten, (B * T,)
        return shape[-1] if len(shape) == 2 else shape[0]

    n_rows = [tokens(s) for s in shortcut[1 if side == "prefix" else 0 :]]  # (the prefix pass runs whole)
    assert sum(n_rows) < sum(tokens(s) for s in whole)
    assert all(len(s) == 1 or s[1] == 1 for s in shortcut[1 if side == "prefix" else 0 :]) or moe
    assert got.keys() == ref.keys() and len(ref) == len(seqs)
    for key, value in got.items():
        torch.testing.assert_close(value, ref[key], **tol)
    # another capture (here a mean over the same block) needs every position: no shortcut
    _, rows = run(True, specs + [CaptureSpec("block_output", [layer], "mean", name="mean")])
    assert [tokens(s) for s in rows] == [tokens(s) for s in whole]


def test_last_token_mlp_shortcut_falls_back_where_a_block_cannot_take_it():
    """Falcon adds the attention output into the MLP output in place: the shortcut fails once, is switched
    off, and the batch runs again whole (each sink call happens once, with the right values)."""
    from transformers import FalconConfig, FalconForCausalLM

    cfg = FalconConfig(vocab_size=101, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                       parallel_attn=True, new_decoder_architecture=False, multi_query=True, bias=False)
    torch.manual_seed(0)
    model = FalconForCausalLM(cfg).eval().double()
    seqs = random_seqs([5, 8, 3], cfg.vocab_size)
    out = {}
    for shortcut in (False, True):
        events = out[shortcut] = []
        with Capture(model, [CaptureSpec("block_output", [1], "last")], lambda ev, e=events: e.append(ev.value),
                     last_token_mlp=shortcut) as cap:
            assert (cap._last_mlp is not None) == shortcut
            for b in iter_batches(seqs, max_batch_tokens=100, pad_id=0):
                cap.forward(b.input_ids, b.attention_mask)
            assert cap._last_mlp is None
    assert len(out[True]) == len(out[False]) == 1
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-12, atol=1e-12)
