"""MI-Peaks: data loading, batched generation with per-step states against batch-1 ``generate``, answer
states, and every metric against a straightforward float64 reference on a tiny model."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from deepsight.config.schema import MIPeaksConfig
from deepsight.data.mi_peaks import load_mi_peaks_items
from deepsight.diagnostics.hsic import hsic_direct
from deepsight.diagnostics.mi_histogram import histogram_mi, spearman
from deepsight.diagnostics.mi_peaks import align, answer_states, generate_with_states, ragged_mean, run_mi_peaks
from deepsight.errors import DataFormatError
from deepsight.models.anatomy import inspect_model

VOCAB = 60
EOS = 2


class CharTok:
    """Toy tokenizer: one id per character (ids 3..), no BOS; decodes ids back to characters."""

    eos_token_id, pad_token_id, bos_token_id = EOS, 0, None
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789+-=.,?!"

    def __call__(self, text):
        return {"input_ids": [3 + (self.alphabet.find(c) % (VOCAB - 3)) for c in text]}

    def decode(self, ids, skip_special_tokens=False):
        return "".join("<eos>" if i == EOS else self.alphabet[i - 3] if 3 <= i < 3 + len(self.alphabet) else "#"
                       for i in ids)


def _model(seed=0, layers=3):
    torch.manual_seed(seed)
    c = LlamaConfig(hidden_size=48, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=VOCAB, eos_token_id=EOS, pad_token_id=0, bos_token_id=1)
    m = LlamaForCausalLM(c).double().eval()
    m.generation_config.eos_token_id = EOS
    return m


PROBLEMS = ["what is two plus three?", "ab", "count the apples in the basket now", "x = 4, y = 5. x+y?"]
SOLUTIONS = ["five", "the answer is 9", "ok.", "9"]


def reference_generation(model, block, tok, prompt, max_new_tokens):
    """Batch-1 HF generate with a hook on the block, as the reference does."""
    cap = []
    h = block.register_forward_hook(lambda m, a, o: cap.append((o[0] if isinstance(o, tuple) else o)[0, -1].clone()))
    try:
        ids = torch.tensor([tok(prompt)["input_ids"]])
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=EOS, pad_token_id=0)
    finally:
        h.remove()
    return torch.stack(cap), out[0, ids.shape[1] :].tolist()


def test_loader(tmp_path, data_dir):
    items = load_mi_peaks_items(data_dir / "mi_peaks" / "gsm8k" / "test.jsonl", 3)
    assert len(items) == 3 and items[0].problem.startswith("Janet") and items[0].solution.endswith("#### 18")
    aime = load_mi_peaks_items(data_dir / "mi_peaks" / "aime24" / "test.jsonl", 1)
    first = json.loads((data_dir / "mi_peaks" / "aime24" / "test.jsonl").read_text().splitlines()[0])
    assert aime[0].problem == first["problem"] and aime[0].solution == first["solution"]
    p = tmp_path / "bad.jsonl"
    p.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"}\n')
    with pytest.raises(DataFormatError, match="row 1"):
        load_mi_peaks_items(p)
    p.write_text("not json\n")
    with pytest.raises(DataFormatError, match="row 0"):
        load_mi_peaks_items(p)


def test_batched_generation_equals_batch1_generate():
    model = _model()
    an = inspect_model(model)
    block = an.blocks[-1]
    tok = CharTok()
    got = generate_with_states(model, an, an.num_layers - 1, tok, PROBLEMS, max_new_tokens=12, batch_size=3)
    for prompt, (states, gen) in zip(PROBLEMS, got):
        ref_states, ref_gen = reference_generation(model, block, tok, prompt, 12)
        assert gen == ref_gen
        assert states.shape == ref_states.shape == (len(gen), 48)
        torch.testing.assert_close(states, ref_states, rtol=1e-9, atol=1e-10)


def test_generation_stops_at_eos_per_row():
    model = _model(1)
    an = inspect_model(model)
    last = an.num_layers - 1
    tok = CharTok()
    free = generate_with_states(model, an, last, tok, PROBLEMS, max_new_tokens=8, batch_size=4, eos=set())
    stop_id = free[0][1][2]  # make row 0's third token an EOS id
    got = generate_with_states(model, an, last, tok, PROBLEMS, max_new_tokens=8, batch_size=4, eos={stop_id})
    for (s_free, g_free), (s, g) in zip(free, got):
        n = next((i + 1 for i, t in enumerate(g_free) if t == stop_id), len(g_free))
        assert g == g_free[:n] and s.shape[0] == n
        torch.testing.assert_close(s, s_free[:n], rtol=1e-9, atol=1e-10)
    assert len(got[0][1]) == 3


def test_answer_states_last_token():
    model = _model()
    an = inspect_model(model)
    tok = CharTok()
    ys = answer_states(model, an, 1, tok, SOLUTIONS, batch_size=3)
    for text, y in zip(SOLUTIONS, ys):
        hs = model(torch.tensor([tok(text)["input_ids"]]), output_hidden_states=True).hidden_states
        torch.testing.assert_close(y, hs[2][0, -1], rtol=1e-9, atol=1e-10)  # block 1 output = hidden_states[2]


def test_align_and_ragged_mean():
    mi, hist, gen = [0.5, 0.1, 0.2, 0.3], [1.0, 2.0, 3.0, 4.0], [11, 12, 13, 14]
    assert align(mi, hist, gen, "generated") == ([0.1, 0.2, 0.3], [2.0, 3.0, 4.0], [11, 12, 13])
    assert align(mi, hist, gen, "emitted") == (mi, hist, gen)
    with pytest.raises(ValueError):
        align(mi, hist, gen, "other")
    assert ragged_mean([[1.0, 2.0, 3.0], [3.0], []]) == [2.0, 2.0, 3.0]


@pytest.mark.parametrize("alignment", ["generated", "emitted"])
def test_run_mi_peaks_matches_float64_reference(alignment):
    model = _model(2)
    an = inspect_model(model)
    tok = CharTok()
    cfg = MIPeaksConfig(max_new_tokens=10, layer=-2, top_k=3, n_thinking_tokens=4, batch_size=3,
                        histogram_bins=8, alignment=alignment)
    res = run_mi_peaks(model, tok, an, list(zip(PROBLEMS, SOLUTIONS)), cfg)
    block = an.blocks[-2]
    trajs, hists, words, cap = [], [], [], []
    for prob, sol in zip(PROBLEMS, SOLUTIONS):
        states, gen = reference_generation(model, block, tok, prob, 10)
        cap.clear()
        h = block.register_forward_hook(lambda m, a, o: cap.append(o[0] if isinstance(o, tuple) else o))
        model(torch.tensor([tok(sol)["input_ids"]]))
        h.remove()
        y = cap[0][0, -1]
        mi = [hsic_direct(s, y).item() for s in states]
        hi = histogram_mi(states, y, 8).tolist()
        if alignment == "generated":
            mi, hi, toks = mi[1:], hi[1:], gen[: len(mi) - 1]
        else:
            toks = gen
        trajs.append(mi)
        hists.append(hi)
        top = sorted(range(len(mi)), key=lambda i: mi[i], reverse=True)[:3]
        words += [w for w in (tok.decode([toks[i]]).strip() for i in top) if re.match(r"^[a-zA-Z]+$", w)]
    for a, b in zip(res["details"]["trajectories"], trajs):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert u == pytest.approx(v, rel=1e-6, abs=1e-12)
    mean = res["metrics"]["mean_trajectory"]
    n = max(len(t) for t in trajs)
    ref_mean = [sum(t[i] for t in trajs if len(t) > i) / sum(len(t) > i for t in trajs) for i in range(n)]
    assert mean == pytest.approx(ref_mean, rel=1e-6)
    flat = [v for t in trajs for v in t]
    assert res["metrics"]["mean_mi"] == pytest.approx(sum(flat) / len(flat), rel=1e-6)
    assert res["metrics"]["max_mi"] == pytest.approx(max(ref_mean), rel=1e-6)
    for a, b in zip(res["details"]["histogram_trajectories"], hists):
        assert a == pytest.approx(b, rel=1e-9)
    hist_mean = [sum(t[i] for t in hists if len(t) > i) / sum(len(t) > i for t in hists) for i in range(n)]
    s = res["metrics"]["spearman"]
    assert (math.isnan(s) and math.isnan(spearman(ref_mean, hist_mean))) or s == pytest.approx(
        spearman(ref_mean, hist_mean), abs=1e-9)
    expect = [{"token": t, "count": c} for t, c in Counter(words).most_common(4)]
    assert res["metrics"]["thinking_tokens"] == expect


def test_mi_peaks_scan_writes_metrics_and_figure(tmp_path):
    from deepsight.config.schema import HardwareConfig
    from deepsight.diagnostics.mi_peaks import mi_peaks_scan
    from deepsight.diagnostics.registry import ScanContext

    data = tmp_path / "data"
    data.mkdir()
    (data / "p.jsonl").write_text("".join(json.dumps({"question": p, "answer": s}) + "\n"
                                          for p, s in zip(PROBLEMS, SOLUTIONS)))
    model = _model(3)
    ctx = ScanContext(model=model, tokenizer=CharTok(), anatomy=inspect_model(model), run_dir=tmp_path / "run",
                      data_dir=data, hardware=HardwareConfig())
    res = mi_peaks_scan(ctx, MIPeaksConfig(data_path="p.jsonl", n_samples=3, max_new_tokens=6, top_k=2))
    m = res["metrics"]
    assert {"mean_mi", "max_mi", "histogram_mean_mi", "spearman", "thinking_tokens", "mean_trajectory"} <= set(m)
    assert len(m["mean_trajectory"]) == 5 and len(res["details"]["trajectories"]) == 3
    assert (ctx.run_dir / res["figures"][0]).read_bytes()[:4] == b"\x89PNG"
    json.dumps(res)
