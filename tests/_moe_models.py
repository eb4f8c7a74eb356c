"""Tiny random-weight MoE models of seven families and an independent float64 routing reference.

``tiny_moe_model(family)`` builds a 2-3 block model in float64 with eager experts (so the scan can be
compared in float64). ``reference_routing(block, x)`` recomputes, from the router's weights and the MoE
block's input x (N, D) only, the experts each token selects, their gate weights, the router's score
distribution and each chosen expert's unweighted output, written out per family from the original
routing rules (Mixtral/Qwen/OLMoE softmax top-k with optional renormalisation; Granite and GPT-OSS top-k
of the logits then softmax; DeepSeek-V3 sigmoid scores + correction bias, group-limited top-k,
renormalised and scaled; DeepSeek-V2 softmax with group-limited greedy top-k, scaled).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "olmoe", "gpt_oss", "granitemoe")
VOCAB = 100
COMMON = dict(vocab_size=VOCAB, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=256, pad_token_id=1, bos_token_id=2, eos_token_id=3)


def _config(family: str, layers: int):
    import transformers as tf

    if family == "mixtral":
        return tf.MixtralConfig(**COMMON, intermediate_size=24, num_hidden_layers=layers, num_local_experts=6,
                                num_experts_per_tok=2)
    if family == "qwen2_moe":
        return tf.Qwen2MoeConfig(**COMMON, intermediate_size=40, moe_intermediate_size=16,
                                 shared_expert_intermediate_size=24, num_hidden_layers=layers, num_experts=8,
                                 num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1,
                                 mlp_only_layers=[])
    if family == "qwen3_moe":
        return tf.Qwen3MoeConfig(**COMMON, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=layers,
                                 num_experts=8, num_experts_per_tok=3, norm_topk_prob=True, decoder_sparse_step=1,
                                 mlp_only_layers=[], head_dim=8)
    if family == "deepseek_v3":
        return tf.DeepseekV3Config(**{**COMMON, "num_key_value_heads": 4}, intermediate_size=40,
                                   moe_intermediate_size=16, num_hidden_layers=layers,
                                   n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=4,
                                   topk_group=2, first_k_dense_replace=1, routed_scaling_factor=2.5,
                                   norm_topk_prob=True, kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=4,
                                   qk_nope_head_dim=4, v_head_dim=8, rope_scaling=None)
    if family == "deepseek_v2":
        return tf.DeepseekV2Config(**{**COMMON, "num_key_value_heads": 4}, intermediate_size=40,
                                   moe_intermediate_size=16, num_hidden_layers=layers, n_routed_experts=8,
                                   n_shared_experts=2, num_experts_per_tok=2, n_group=4, topk_group=2,
                                   topk_method="group_limited_greedy", first_k_dense_replace=1,
                                   routed_scaling_factor=1.5, kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=4,
                                   qk_nope_head_dim=4, v_head_dim=8, rope_scaling=None)
    if family == "olmoe":
        return tf.OlmoeConfig(**COMMON, intermediate_size=24, num_hidden_layers=layers, num_experts=8,
                              num_experts_per_tok=2, norm_topk_prob=False)
    if family == "gpt_oss":
        return tf.GptOssConfig(**COMMON, intermediate_size=24, num_hidden_layers=layers, num_local_experts=8,
                               num_experts_per_tok=2, head_dim=8, sliding_window=16,
                               layer_types=(["sliding_attention", "full_attention"] * layers)[:layers])
    if family == "granitemoe":
        return tf.GraniteMoeConfig(**COMMON, intermediate_size=24, num_hidden_layers=layers, num_local_experts=6,
                                   num_experts_per_tok=2)
    raise ValueError(family)


def tiny_moe_model(family: str, layers: int = 3, seed: int = 0, dtype=torch.float64):
    from transformers import AutoModelForCausalLM

    cfg = _config(family, layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # random weights of a healthy scale (some families initialise routers to zero)
        for name, p in model.named_parameters():
            if p.dim() >= 2 or "bias" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.2 if p.dim() >= 2 else 0.1))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.3)
    model = model.to(dtype).eval()
    model.config._experts_implementation = "eager"  # torch's grouped_mm has no float64 kernel
    return model


def _swiglu(x, gate_up, down, act):
    g, u = (x @ gate_up.T).chunk(2, dim=-1)
    return (act(g) * u) @ down.T


def reference_routing(family: str, block, x: torch.Tensor):
    """(idx (N, K), weights (N, K), probs (N, E) the router's score distribution, outputs (N, K, D)), float64."""
    x = x.double()
    router, experts = block.router, block.experts
    W = router.weight.double()
    k = block.num_experts_per_tok
    if family == "gpt_oss":
        logits = x @ W.T + router.bias.double()
    else:
        logits = x @ W.T
    cfg = experts.config if hasattr(experts, "config") else None
    if family in ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe"):
        probs = torch.softmax(logits, -1)
        w, idx = torch.topk(probs, k, -1)
        if family == "mixtral" or getattr(cfg, "norm_topk_prob", False):
            w = w / w.sum(-1, keepdim=True)
    elif family in ("granitemoe", "gpt_oss"):
        probs = torch.softmax(logits, -1)
        top, idx = torch.topk(logits, k, -1)
        w = torch.softmax(top, -1)
    elif family == "deepseek_v2":  # softmax, group-limited greedy (best expert per group), scaled, no renorm
        probs = torch.softmax(logits, -1)
        g = router.num_group
        per = block.num_experts // g
        keep = torch.zeros(probs.shape[0], g, dtype=torch.bool)
        keep.scatter_(1, probs.view(-1, g, per).amax(-1).topk(router.topk_group, -1).indices, True)
        w, idx = probs.masked_fill(~keep.repeat_interleave(per, 1), 0.0).topk(k, -1)
        w = w * router.routed_scaling_factor
    elif family == "deepseek_v3":
        s = torch.sigmoid(logits)
        probs = s / s.sum(-1, keepdim=True)
        choice = s + router.e_score_correction_bias.double()
        g = router.num_group
        per = block.num_experts // g
        group_score = choice.view(-1, g, per).topk(2, -1).values.sum(-1)  # (N, G)
        keep = torch.zeros_like(group_score, dtype=torch.bool)
        keep.scatter_(1, group_score.topk(router.topk_group, -1).indices, True)
        choice = choice.masked_fill(~keep.repeat_interleave(per, 1), float("-inf"))
        idx = choice.topk(k, -1).indices
        w = s.gather(1, idx)
        w = w / (w.sum(-1, keepdim=True) + 1e-20) * router.routed_scaling_factor
    else:
        raise ValueError(family)
    outs = []
    for j in range(k):
        rows = []
        for n in range(x.shape[0]):
            e = int(idx[n, j])
            if family == "gpt_oss":
                gu = x[n] @ experts.gate_up_proj[e].double() + experts.gate_up_proj_bias[e].double()
                gate, up = gu[::2].clamp(max=experts.limit), gu[1::2].clamp(-experts.limit, experts.limit)
                h = (up + 1) * gate * torch.sigmoid(gate * experts.alpha)
                rows.append(h @ experts.down_proj[e].double() + experts.down_proj_bias[e].double())
            else:
                rows.append(_swiglu(x[n : n + 1], experts.gate_up_proj[e].double(), experts.down_proj[e].double(),
                                    F.silu)[0])
        outs.append(torch.stack(rows))
    return idx, w, probs, torch.stack(outs, 1)
