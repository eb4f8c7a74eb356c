"""``deepsight plan``: meta-device models of every shipped large-model config, weight bytes against parameter
counts worked out by hand from the published dimensions, device placement, fit and suggestions, the CLI."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from deepsight.run.plan import Planner, _compose, format_plan, make_plan
from deepsight.run.plan_costs import forward_flops, place_units

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30


def _c(cfg, key):
    return cfg.model.config[key]


# ------------------------------------------------------------------ hand counts from config.json dimensions
def qwen3_moe_params(c) -> dict:
    d, L, V, E, f = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["num_experts"], \
        c["moe_intermediate_size"]
    H, KV, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    attn = d * H * hd + 2 * d * KV * hd + H * hd * d + 2 * hd  # q, k, v, o + q_norm, k_norm
    experts = E * 3 * d * f
    other = attn + 2 * d + E * d  # two norms, router
    return {"total": 2 * V * d + d + L * (other + experts), "experts": L * experts, "other": 2 * V * d + d + L * other}


def mixtral_params(c) -> dict:
    d, L, V, E, f = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["num_local_experts"], \
        c["intermediate_size"]
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]
    hd = d // H
    other = 2 * d * H * hd + 2 * d * KV * hd + 2 * d + E * d
    experts = E * 3 * d * f
    return {"total": 2 * V * d + d + L * (other + experts)}


def llama_params(c) -> dict:
    d, L, V, f = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["intermediate_size"]
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]
    hd = d // H
    return {"total": 2 * V * d + d + L * (2 * d * H * hd + 2 * d * KV * hd + 2 * d + 3 * d * f)}


def deepseek_v3_matrices(c) -> tuple[list[tuple[int, int]], int]:
    """(rows, cols) of every FP8 matrix (one entry per expert matrix), and the bf16 parameter count."""
    d, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    H, ql, kl = c["num_attention_heads"], c["q_lora_rank"], c["kv_lora_rank"]
    nope, rope, vd = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    E, f, ff, dense = c["n_routed_experts"], c["moe_intermediate_size"], c["intermediate_size"], \
        c["first_k_dense_replace"]
    mats: list[tuple[int, int]] = []
    plain = 2 * V * d + d  # embeddings, head, final norm
    for layer in range(L):
        mats += [(ql, d), (H * (nope + rope), ql), (kl + rope, d), (H * (nope + vd), kl), (d, H * vd)]
        plain += 2 * d + ql + kl  # block norms, q_a and kv_a norms
        if layer < dense:
            mats += [(ff, d), (ff, d), (d, ff)]
        else:
            mats += [(2 * f, d)] * E + [(d, f)] * E  # fused gate_up and down per expert
            mats += [(f * c["n_shared_experts"], d)] * 2 + [(d, f * c["n_shared_experts"])]
            plain += E * d  # router weight (e_score_correction_bias is a buffer in transformers)
    return mats, plain


def gpt_oss_params(c) -> tuple[int, int]:
    """(MXFP4 expert weights, bf16 parameters)."""
    d, L, V, E, f = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["num_local_experts"], \
        c["intermediate_size"]
    H, KV, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    attn = d * H * hd + H * hd + 2 * (d * KV * hd + KV * hd) + H * hd * d + d + H  # biases, sinks
    experts = E * d * 2 * f + E * f * d
    other = attn + 2 * d + E * d + E + E * 2 * f + E * d  # norms, router + bias, expert biases
    return L * experts, 2 * V * d + d + L * other


def _planner(model: str, *extra: str) -> Planner:
    return Planner(_compose([f"model={model}", "hardware=multi_gpu", *extra]))


@pytest.mark.parametrize("model,published", [
    ("qwen3_30b_a3b", 30.5e9), ("qwen3_235b_a22b", 235.1e9), ("mixtral_8x22b", 140.6e9), ("llama3_405b", 405.9e9),
])
def test_bf16_weight_bytes_equal_the_hand_count(model, published):
    p = _planner(model)
    c = p.cfg.model.config
    count = {"qwen3_30b_a3b": qwen3_moe_params, "qwen3_235b_a22b": qwen3_moe_params,
             "mixtral_8x22b": mixtral_params, "llama3_405b": llama_params}[model](c)["total"]
    assert p.costs.num_params == count
    assert sum(p.weights) == 2 * count  # bf16, nothing quantized
    assert abs(count - published) / published < 2e-3  # the model card's size
    assert p.topo.devices_per_rank == 8 and len(p.weights) == 8


def test_qwen3_30b_exact_published_count_and_active_params():
    p = _planner("qwen3_30b_a3b")
    assert p.costs.num_params == 30_532_122_624  # Qwen3-30B-A3B's published parameter count
    c = p.cfg.model.config
    h = qwen3_moe_params(c)
    # active per token: everything but the embeddings, routed experts at k / E
    routed = h["experts"] * c["num_experts_per_tok"] / c["num_experts"]
    active = h["other"] - c["vocab_size"] * c["hidden_size"] + routed
    assert p.costs.active_params_per_token == pytest.approx(active, rel=1e-12)
    assert 3.0e9 < active < 3.4e9  # "A3B" (3.3B activated with the embeddings)


def test_deepseek_v3_fp8_blocks_priced_from_the_hand_count():
    p = _planner("deepseek_v3")
    c = p.cfg.model.config
    mats, plain = deepseek_v3_matrices(c)
    n_fp8 = sum(r * k for r, k in mats)
    assert p.costs.num_params == n_fp8 + plain
    assert abs(p.costs.num_params - 671.0e9) / 671.0e9 < 1e-3
    scales = sum(math.ceil(r / 128) * math.ceil(k / 128) for r, k in mats)
    assert sum(p.weights) == pytest.approx(n_fp8 * 1 + scales * 4 + plain * 2, rel=1e-12)
    assert p.quant.method == "fp8"


def test_gpt_oss_mxfp4_experts_priced_from_the_hand_count():
    p = _planner("gpt_oss_120b")
    experts, plain = gpt_oss_params(p.cfg.model.config)
    assert p.costs.num_params == experts + plain
    assert abs(p.costs.num_params - 116.8e9) / 116.8e9 < 1e-3
    assert sum(p.weights) == pytest.approx(experts / 2 + experts / 32 + plain * 2, rel=1e-12)


def test_fp8_setting_prices_a_bf16_model_at_one_byte_per_block_weight():
    bf16, fp8 = _planner("llama3_405b"), _planner("llama3_405b", "model.quantization=fp8")
    c = bf16.cfg.model.config
    d, L, V = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"]
    outside = 2 * V * d + d + L * 2 * d  # embeddings, head, norms stay bf16
    inside = bf16.costs.num_params - outside
    mats = [(d, d), (1024, d), (1024, d), (d, d), (c["intermediate_size"], d), (c["intermediate_size"], d),
            (d, c["intermediate_size"])]
    scales = L * sum(math.ceil(r / 128) * math.ceil(k / 128) for r, k in mats)
    assert sum(fp8.weights) == pytest.approx(inside + 4 * scales + 2 * outside, rel=1e-12)


@pytest.mark.parametrize("model", ["qwen3_30b_a3b", "qwen3_235b_a22b", "deepseek_v3", "mixtral_8x22b",
                                   "gpt_oss_120b", "llama3_405b"])
def test_every_shipped_config_plans_every_scan(model):
    cfg = _compose([f"model={model}", "hardware=multi_gpu", "audit=none", "scan=[xboundary,tellme,spin,mi_peaks]",
                    "eval=[xstest]"])
    plan = make_plan(cfg)
    names = [r["phase"] for r in plan["phases"]]
    assert names == ["model load", "black-box generation", "scan xboundary", "scan tellme", "scan spin",
                     "scan mi_peaks"]
    for r in plan["phases"][2:]:
        assert r["flops"] > 0 and r["seconds"] > 0 and r["activations"] > 0 and r["statistics"] > 0
        assert r["peak"] >= max(r["weights"], r["activations"], r["statistics"])
    for r in plan["phases"]:
        assert r["fits"] == (r["peak"] <= plan["device_memory"])
        assert r["fits"] or r["suggestions"] is not None
    text = format_plan(plan)
    assert plan["model"] in text and "| scan spin |" in text


def test_tellme_statistics_are_three_grams_plus_rows():
    p = _planner("qwen3_30b_a3b", "scan=[tellme]", "audit=none", "hardware.stat_dtype=float64")
    ph = p.phases(only="scan tellme")[0]
    d = 2048
    assert sum(ph.statistics) == 3 * d * d * 8 + 2000 * d * 4


def _best_split(sizes: list[float], i: int, k: int) -> float:
    """Brute force: the smallest possible largest share of sizes[i:] over k contiguous devices."""
    if k == 1 or i == len(sizes):
        return sum(sizes[i:])
    return min(max(sum(sizes[i:j]), _best_split(sizes, j, k - 1)) for j in range(i, len(sizes) + 1))


def test_placement_is_contiguous_and_optimal_against_brute_force():
    rng = random.Random(3)
    for _ in range(30):
        sizes = [rng.uniform(0.1, 5.0) for _ in range(rng.randint(1, 9))]
        n = rng.randint(1, 4)
        units = [(f"u{i}", s) for i, s in enumerate(sizes)]
        parts = place_units(units, n, "balanced")
        assert [u for dev in parts for u in dev] == [u for u, _ in units]  # contiguous, in order
        assert len(parts) == n
        got = max(sum(dict(units)[u] for u in dev) for dev in parts)

        assert got == pytest.approx(_best_split(sizes, 0, n), rel=1e-9)
    seq = place_units([("a", 3.0), ("b", 3.0), ("c", 3.0)], 3, "sequential", capacity=6.5)
    assert seq == [["a", "b"], ["c"], []]
    assert place_units([("a", 1.0)], 2, None) == [["a"], []]


def test_forward_flops_of_a_dense_model_by_hand():
    p = _planner("llama3_405b")
    c = p.cfg.model.config
    d, f, H, KV = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = d // H
    per_block = 2 * d * H * hd + 2 * d * KV * hd + 2 * d + 3 * d * f
    tokens, mean = 1000, 300
    want = 3 * tokens * (2 * per_block + 2 * (mean / 2) * H * 2 * hd)
    assert forward_flops(p.costs, range(3), tokens, mean) == pytest.approx(want, rel=1e-12)


def test_a_plan_that_does_not_fit_names_settings_that_do():
    cfg = _compose(["model=llama3_405b", "hardware=multi_gpu", "audit=none", "scan=[xboundary]"])
    plan = make_plan(cfg)
    load = plan["phases"][0]
    assert not load["fits"]  # 756 GiB of bf16 weights on 8 x 80 GB
    assert "model.quantization=fp8" in load["suggestions"]
    for fix in load["suggestions"]:  # each suggestion really fits when applied
        fixed = make_plan(_compose(["model=llama3_405b", "hardware=multi_gpu", "audit=none", "scan=[xboundary]",
                                    *fix.split(" ")]))
        assert fixed["phases"][0]["fits"]


def test_ranks_split_devices_and_time():
    base = ["model=qwen3_235b_a22b", "hardware=multi_gpu", "audit=none", "scan=[tellme,xboundary,mi_peaks]"]
    one = make_plan(_compose(base))
    two = make_plan(_compose([*base, "hardware.processes=2"]))
    assert (one["ranks"], one["devices_per_rank"]) == (1, 8) and (two["ranks"], two["devices_per_rank"]) == (2, 4)
    assert [r["phase"] for r in one["phases"][1:]] == ["scan xboundary", "scan tellme", "scan mi_peaks"]
    for a, b in zip(one["phases"][1:3], two["phases"][1:3]):  # X-Boundary and TELLME split their rows
        assert b["seconds"] == pytest.approx(a["seconds"] / 2, rel=1e-9)
    mi1, mi2 = one["phases"][3], two["phases"][3]
    assert mi2["flops"] == pytest.approx(mi1["flops"], rel=1e-12)  # the total work
    # 10 prompts in batches of 16: one decoding batch per rank either way, and decoding is bound by reading
    # the weights once per step, so two ranks take as long as one
    assert mi2["seconds"] == pytest.approx(mi1["seconds"], rel=1e-9)
    assert not any("not split" in n for r in two["phases"] for n in r["notes"])
    assert sum(two["weights_per_device"]) == pytest.approx(sum(one["weights_per_device"]), rel=1e-12)


def test_bad_config_is_an_error_naming_it():
    from deepsight.errors import ConfigError

    with pytest.raises(ConfigError, match="processes"):
        make_plan(_compose(["model=qwen3_30b_a3b", "hardware=multi_gpu", "hardware.processes=3"]))
    with pytest.raises(ConfigError, match="model.config"):
        make_plan(_compose(["model=hf", "model.path=some-org/unknown-model"]))


def test_cli_prints_the_table_and_exit_codes():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    exe = [sys.executable, "-m", "deepsight", "plan", "model=deepseek_v3", "hardware=multi_gpu"]
    r = subprocess.run(exe, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 1, r.stderr  # 627 GiB of FP8 weights do not split over 8 x 80 GB in whole blocks
    assert "| model load |" in r.stdout and "fits: NO" in r.stdout and "hardware.devices=16" in r.stdout
    h200 = make_plan(_compose(["model=deepseek_v3", "hardware=multi_gpu", "hardware.device_memory_gib=139.8",
                               "audit=none", "scan=[xboundary]"]))  # 8 x H200
    assert h200["fits"] and "fits: yes" in format_plan(h200)
    r = subprocess.run(exe + ["hardware.no_such_key=1"], capture_output=True, text=True, cwd=REPO, env=env,
                       timeout=300)
    assert r.returncode == 2 and "hardware.no_such_key" in r.stderr


def test_local_checkpoint_folder_and_cpu_hardware(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=100, hidden_size=24, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2).save_pretrained(tmp_path)  # config.json only: no weights needed
    plan = make_plan(_compose(["model=hf", f"model.path={tmp_path}", "audit=none", "scan=[tellme]"]))
    d, f, L, V = 24, 40, 3, 100
    params = 2 * V * d + d + L * (2 * d * d + 2 * d * 12 + 2 * d + 3 * d * f)
    assert plan["num_params"] == params
    assert plan["weight_bytes"] == 4 * params  # hardware=cpu: float32
    assert not plan["accelerator"] and plan["devices_per_rank"] == 1 and plan["fits"]
