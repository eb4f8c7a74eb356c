"""Engine faults: non-finite rows are excluded and counted per layer (capture/finite.py); an out-of-memory
during a scan forward halves the rows and retries, each statistic still seeing every row once."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from _engine_models import random_seqs, tiny_llama
from torch import nn

from deepsight.capture import Capture, CaptureSpec, finite, iter_batches, pad_batch
from deepsight.capture.gradients import GradCapture
from deepsight.stats import GradAbsSum

TRIGGER = 7  # token id whose positions get a non-finite state in the chosen block


def _poison(model, block: int, value: float, padding: bool = False):
    """Forward hooks making block ``block``'s output ``value`` at every trigger-token position (or, with
    ``padding``, at every padded position); returns the handles."""
    seen: dict[str, torch.Tensor] = {}

    def on_call(module, args, kwargs):
        seen["ids"] = kwargs.get("input_ids", args[0] if args else None)
        seen["mask"] = kwargs.get("attention_mask")

    def on_block(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        where = seen["ids"] == TRIGGER if not padding else seen["mask"] == 0
        h = h.masked_fill(where[..., None].to(h.device), value)
        return (h, *output[1:]) if isinstance(output, tuple) else h

    return [model.register_forward_pre_hook(on_call, with_kwargs=True),
            model.model.layers[block].register_forward_hook(on_block)]


def _data(n: int, vocab: int, seed: int, triggered: list[int]):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 12, (n,), generator=g).tolist()
    seqs = [[t if t != TRIGGER else TRIGGER + 1 for t in s] for s in random_seqs(lengths, vocab, seed)]
    for i in triggered:
        seqs[i][int(torch.randint(0, len(seqs[i]), (1,), generator=g))] = TRIGGER
    return seqs


def _reference(model, seqs, layers):
    """Per row, batch 1 in float64: mean over tokens of each block's output."""
    out = {}
    for i, s in enumerate(seqs):
        hs = model(input_ids=torch.tensor([s]), output_hidden_states=True).hidden_states
        for layer in layers:
            out[(layer, i)] = hs[layer + 1][0].double().mean(0)
    return out


def _scan(model, seqs, layers, max_batch_tokens, **capture):
    got: dict[tuple[int, int], torch.Tensor] = {}
    labels: dict[tuple[int, int], int] = {}
    tokens: dict[int, list[int]] = {layer: [] for layer in layers}

    def pooled(ev):
        for row, value, label in zip(ev.take("ids").tolist(), ev.value, ev.take("labels").tolist()):
            assert (ev.layer, row) not in got, f"row {row} fed twice at layer {ev.layer}"
            got[(ev.layer, row)], labels[(ev.layer, row)] = value.double(), label

    def every_token(ev):  # reduce="all": rows map through ev.rows; every id at most once per row
        tokens[ev.layer] += sorted(set(ev.take("ids").tolist()))

    specs = [CaptureSpec("block_output", layers, reduce="mean", name="pooled"),
             CaptureSpec("block_output", layers, reduce="all", name="tokens")]
    ids_all = torch.arange(len(seqs))
    with Capture(model, specs, {"pooled": pooled, "tokens": every_token}, **capture) as cap:
        for b in iter_batches(seqs, max_batch_tokens=max_batch_tokens, pad_id=0, progress=""):
            cap.forward(b.input_ids, b.attention_mask, ids=ids_all[b.index], labels=100 + ids_all[b.index])
    return cap, got, labels, tokens


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_rows_excluded_and_counted_per_layer(value, caplog):
    model = tiny_llama(layers=4).double()
    triggered = [1, 4, 5]
    seqs = _data(9, model.config.vocab_size, seed=3, triggered=triggered)
    ref = _reference(model, seqs, [1, 2])
    handles = _poison(model, block=2, value=value)
    try:
        with finite.collect() as counts, caplog.at_level(logging.WARNING, logger="deepsight"):
            cap, got, labels, tokens = _scan(model, seqs, [1, 2, 3], max_batch_tokens=40)
    finally:
        for h in handles:
            h.remove()
    clean = [i for i in range(len(seqs)) if i not in triggered]
    # block 1 runs before the poison: every row; blocks 2 and 3: the triggered rows are left out
    assert sorted(r for (layer, r) in got if layer == 1) == list(range(len(seqs)))
    for layer in (2, 3):
        assert sorted(r for (lay, r) in got if lay == layer) == clean
        assert tokens[layer] == clean or sorted(tokens[layer]) == clean
    assert sorted(tokens[1]) == list(range(len(seqs)))
    for (layer, row), value_ in got.items():
        assert labels[(layer, row)] == 100 + row
        assert torch.isfinite(value_).all()
        if layer in (1, 2):
            torch.testing.assert_close(value_, ref[(layer, row)], rtol=1e-5, atol=1e-6)  # mean: float32
    expected = {"layer 2": len(triggered), "layer 3": len(triggered)}
    assert cap.nonfinite.rows == {"pooled": expected, "tokens": expected}
    assert counts == cap.nonfinite.rows
    assert "non-finite activations" in caplog.text and "pooled layer 2" in caplog.text
    assert "pooled: layer 2: 3 rows" in finite.summary(counts)


def test_nonfinite_padding_is_not_counted_and_all_bad_batch_feeds_nothing():
    model = tiny_llama(layers=3).double()
    seqs = _data(6, model.config.vocab_size, seed=5, triggered=[])
    handles = _poison(model, block=2, value=float("nan"), padding=True)  # last block: nothing reads padding after
    try:
        cap, got, _, _ = _scan(model, seqs, [2], max_batch_tokens=64)
    finally:
        for h in handles:
            h.remove()
    assert not cap.nonfinite and len(got) == len(seqs)
    # every row of a batch non-finite: the sink is not called, all rows counted
    calls = []
    handles = _poison(model, block=0, value=float("nan"))
    try:
        with Capture(model, [CaptureSpec("block_output", [1], reduce="last")], calls.append) as cap:
            ids, mask = pad_batch([[TRIGGER, 5, 6], [9, TRIGGER]], 0)
            cap.forward(ids, mask)
    finally:
        for h in handles:
            h.remove()
    assert not calls
    assert cap.nonfinite.rows == {"block_output": {"layer 1": 2}}


def _per_sample_loss(logits, labels):
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
    return ce.sum(1) / (labels[:, 1:] != -100).sum(1).clamp_min(1)


def _grad_sums(model, modules, seqs):
    stats = {n: GradAbsSum(m.weight.shape, dtype="float64") for n, m in modules.items()}
    with GradCapture(model, modules, stats) as gc, torch.enable_grad():
        ids, mask = pad_batch(seqs, 0)
        labels = ids.masked_fill(mask == 0, -100)
        gc.token_mask = mask
        _per_sample_loss(model(input_ids=ids, attention_mask=mask).logits, labels).sum().backward()
    return stats, gc


def test_nonfinite_gradients_leave_out_the_sample():
    model = tiny_llama(layers=3).double()
    modules = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and "layers.1.mlp" in n}
    triggered = [0, 3]
    seqs = _data(5, model.config.vocab_size, seed=7, triggered=triggered)
    clean = [s for i, s in enumerate(seqs) if i not in triggered]
    ref, _ = _grad_sums(model, modules, clean)
    handles = _poison(model, block=1, value=float("inf"))  # after the MLP of block 1: its delta is non-finite
    try:
        got, gc = _grad_sums(model, modules, seqs)
    finally:
        for h in handles:
            h.remove()
    for n in modules:
        assert float(got[n].samples) == len(clean)
        torch.testing.assert_close(got[n].total, ref[n].total, rtol=1e-7, atol=1e-10)
    assert gc.nonfinite.rows == {"gradients": {n: len(triggered) for n in modules}}


def test_out_of_memory_halves_the_rows_and_feeds_each_row_once(caplog):
    model = tiny_llama(layers=4).double()
    seqs = _data(11, model.config.vocab_size, seed=11, triggered=[])
    _, ref, _, ref_tokens = _scan(model, seqs, [0, 2], max_batch_tokens=200)
    sizes: list[int] = []

    def oom_above_three(module, args, output):  # block 1: block 0's captures have fed the sinks already
        h = output[0] if isinstance(output, tuple) else output
        sizes.append(h.shape[0])
        if h.shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    handle = model.model.layers[1].register_forward_hook(oom_above_three)
    try:
        with caplog.at_level(logging.WARNING, logger="deepsight"):
            cap, got, labels, tokens = _scan(model, seqs, [0, 2], max_batch_tokens=200)
    finally:
        handle.remove()
    assert sizes[:4] == [11, 6, 3, 3] and max(sizes[4:]) <= 3 and cap.max_rows == 3
    assert "out of memory on a scan forward of 11 rows" in caplog.text
    assert got.keys() == ref.keys() and labels == {k: 100 + k[1] for k in got}
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-6, atol=1e-7)
    assert {k: sorted(v) for k, v in tokens.items()} == {k: sorted(v) for k, v in ref_tokens.items()}


def test_out_of_memory_single_row_and_other_errors_propagate():
    model = tiny_llama(layers=2).double()
    seen = []

    def always_oom(module, args, output):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    handle = model.model.layers[0].register_forward_hook(always_oom)
    try:
        with Capture(model, [CaptureSpec("block_output", [1], reduce="mean")], seen.append) as cap:
            ids, mask = pad_batch([[3, 4, 5], [6, 8]], 0)
            with pytest.raises(torch.OutOfMemoryError):
                cap.forward(ids, mask)
            assert cap.max_rows == 1
    finally:
        handle.remove()
    handle = model.model.layers[0].register_forward_hook(lambda *a: (_ for _ in ()).throw(ValueError("boom")))
    try:
        with Capture(model, [CaptureSpec("block_output", [1], reduce="mean")], seen.append) as cap:
            with pytest.raises(ValueError, match="boom"):
                cap.forward(ids, mask)
            assert cap.max_rows is None
    finally:
        handle.remove()
    assert not seen


def test_audit_records_nonfinite_rows_in_the_scan_result_and_warnings(tmp_path):
    from deepsight.run.audit import _run_one
    from deepsight.run.outputs import RunRecorder

    model = tiny_llama(layers=2).double()
    seqs = _data(4, model.config.vocab_size, seed=2, triggered=[2])
    handles = _poison(model, block=0, value=float("nan"))

    def scan():
        _scan(model, seqs, [1], max_batch_tokens=64)
        return {"metric": 1.0}

    recorder = RunRecorder(tmp_path, {})
    try:
        _run_one(recorder, "scans", "toy", "error", scan)
    finally:
        for h in handles:
            h.remove()
    result = recorder.results["scans"]["toy"]
    assert result["status"] == "ok" and result["nonfinite_rows"] == {"pooled": {"layer 1": 1},
                                                                      "tokens": {"layer 1": 1}}
    assert any("scan toy: non-finite" in w and "pooled: layer 1: 1 row" in w for w in recorder.results["warnings"])
    _run_one(recorder, "scans", "clean", "error", lambda: {"metric": 2.0})
    assert "nonfinite_rows" not in recorder.results["scans"]["clean"]


def test_generation_steps_count_nonfinite_rows_but_keep_one_value_per_running_row():
    model = tiny_llama(layers=3).double()
    handles = _poison(model, block=0, value=float("nan"))
    values = []
    try:
        with Capture(model, [CaptureSpec("block_output", [1], reduce="step")], values.append) as cap:
            ids, mask = pad_batch([[5, TRIGGER, 6, 9], [8, 9, 10, 11], [12, 13, 14]], 0, side="left")
            cap.generate(ids, mask, max_new_tokens=2, do_sample=False, pad_token_id=0)
    finally:
        for h in handles:
            h.remove()
    assert values and all(v.value.shape[0] == 3 for v in values)  # sinks pair value rows with decoder rows
    assert not torch.isfinite(values[0].value[0]).all() and torch.isfinite(values[0].value[1:]).all()
    assert cap.nonfinite.rows["block_output"]["layer 1"] >= 1
