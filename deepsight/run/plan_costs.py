"""Sizes and costs of one model for ``deepsight plan``: weight bytes, device placement, activations, FLOPs.

Everything is read off a model built on the meta device (``deepsight.models.meta``) and its anatomy, so
the numbers follow the real module tree (MLA attention, shared experts, fused expert tensors, biases)
rather than a formula per architecture. Conventions (stated in the plan's output too):

- weights: every parameter at the model dtype, except the quantized ones of a ``QuantSpec``: FP8
  (linear and expert weights inside the blocks; routers, norms, embeddings and the head stay in the model
  dtype) and MXFP4 (fused expert weights only), each with its block scales;
- placement: ``device_map`` auto/balanced = the contiguous split of [embeddings, block 0 .. block L-1,
  final norm + head] over the rank's devices that minimises the largest share (what accelerate's
  balanced map aims at); sequential = fill each device up to its memory in order; no device_map = one
  device;
- activations: memory-efficient attention (no T x T scores, as flash attention / SDPA kernels), the
  largest transient of one block at ``tokens`` tokens (attention or MLP side, plus the residual stream);
  MoE experts run on tokens x top-k rows;
- FLOPs: 2 per active weight per token (routed experts count k / E of their weights), plus causal
  attention 2 x ctx x heads x (d_qk + d_v) per token with ctx the mean position (sliding-window layers
  cap it at the window).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import torch

_DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2, "auto": 2}


def dtype_bytes(name: str) -> int:
    return _DTYPE_BYTES[str(name).replace("torch.", "")]


@dataclass
class ModelCosts:
    """Per-unit weight bytes and per-block dimensions of one model."""

    units: list[tuple[str, float]]  # ("embeddings" | "block i" | "head", bytes) in forward order
    num_params: int
    active_params_per_token: float  # weights a token multiplies (routed experts at k / E)
    block_active: list[float]  # active weights per block
    head_params: int  # final norm + LM head
    hidden: int
    vocab: int
    num_layers: int
    attn: list[dict[str, int]]  # per block: heads, d_qk, d_v, kv_heads, extra (MLA latents), window
    mlp: list[dict[str, int]]  # per block: dense ffn, experts, top_k, expert ffn, shared ffn
    param_dtype_bytes: int
    quant: Any = None
    block_bytes: list[float] = field(default_factory=list)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name, p + ".*") or p in name for p in patterns)


def param_bytes(name: str, param: torch.Tensor, elem_bytes: int, quant, *, in_block: bool, is_router: bool,
                fused_expert: bool) -> float:
    """Stored bytes of one parameter under ``quant`` (None: the model dtype)."""
    numel = param.numel()
    # quantizable: a linear's 2-D weight or a fused 3-D expert weight (never biases, norms, routers)
    matrix = (name.endswith(".weight") and param.dim() == 2) or (fused_expert and param.dim() == 3)
    if quant is None or not in_block or is_router or not matrix or _matches(name, quant.modules_to_not_convert):
        return float(numel * elem_bytes)
    if quant.experts_only and not fused_expert:
        return float(numel * elem_bytes)
    return quant.bytes_for(tuple(param.shape))


def model_costs(model, anatomy, elem_bytes: int, quant=None) -> ModelCosts:
    """Weight bytes per unit and the per-block dimensions the estimates need."""
    block_of = {}
    for b in anatomy.layers:
        block_of[b.name] = b
    routers = {id(p) for b in anatomy.layers if b.router is not None for p in b.router.parameters()}
    fused = {n for b in anatomy.layers for n in b.fused_expert_weights}
    units: dict[str, float] = {"embeddings": 0.0}
    units.update({f"block {b.index}": 0.0 for b in anatomy.layers})
    units["head"] = 0.0
    block_active = [0.0] * anatomy.num_layers
    total = 0
    expert_ids = set()
    for b in anatomy.layers:
        if b.experts is not None:
            expert_ids.update(id(p) for p in b.experts.parameters())
    emb_ids = {id(p) for p in anatomy.embeddings.parameters()} if anatomy.embeddings is not None else set()
    head_params = 0
    seen: set[int] = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        blk = _block_for(name, anatomy)
        nbytes = param_bytes(name, p, elem_bytes, quant, in_block=blk is not None, is_router=id(p) in routers,
                             fused_expert=name in fused)
        if blk is None:
            key = "embeddings" if id(p) in emb_ids else "head"
            units[key] += nbytes
            if key == "head":
                head_params += p.numel()
            continue
        units[f"block {blk.index}"] += nbytes
        frac = 1.0
        if id(p) in expert_ids and blk.num_experts > 0:
            frac = blk.num_experts_per_tok / blk.num_experts
        block_active[blk.index] += p.numel() * frac
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    attn = [_attention_dims(cfg, b) for b in anatomy.layers]
    mlp = [_mlp_dims(b, anatomy.hidden_size) for b in anatomy.layers]
    return ModelCosts(
        units=list(units.items()), num_params=total,
        active_params_per_token=sum(block_active) + head_params,
        block_active=block_active, head_params=head_params, hidden=anatomy.hidden_size, vocab=anatomy.vocab_size,
        num_layers=anatomy.num_layers, attn=attn, mlp=mlp, param_dtype_bytes=elem_bytes, quant=quant,
        block_bytes=[units[f"block {b.index}"] for b in anatomy.layers],
    )


def _block_for(name: str, anatomy):
    prefix = anatomy.blocks_name + "."
    if not name.startswith(prefix):
        return None
    idx = int(name[len(prefix):].split(".", 1)[0])
    return anatomy.layers[idx] if idx < len(anatomy.layers) else None




def _attention_dims(cfg, block) -> dict[str, int]:
    heads = int(getattr(cfg, "num_attention_heads", 0) or 0)
    kv = int(getattr(cfg, "num_key_value_heads", heads) or heads)
    if getattr(cfg, "kv_lora_rank", None):  # MLA: q/k heads of nope + rope dims, v heads of v_head_dim
        d_qk = int(cfg.qk_nope_head_dim) + int(cfg.qk_rope_head_dim)
        d_v = int(cfg.v_head_dim)
        extra = int(getattr(cfg, "q_lora_rank", 0) or 0) + int(cfg.kv_lora_rank) + int(cfg.qk_rope_head_dim)
        kv = heads  # the latent is expanded to every head's k and v
    else:
        d_qk = d_v = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // max(heads, 1))
        extra = 0
    window = 0
    types = getattr(cfg, "layer_types", None)
    if types and block.index < len(types) and types[block.index] == "sliding_attention":
        window = int(getattr(cfg, "sliding_window", 0) or 0)
    return {"heads": heads, "kv_heads": kv, "d_qk": d_qk, "d_v": d_v, "extra": extra, "window": window}


def _linear_out(module) -> int:
    w = getattr(module, "weight", None)
    return int(w.shape[0]) if w is not None and w.dim() == 2 else 0


def _mlp_dims(block, hidden: int) -> dict[str, int]:
    """Dense ffn width, or experts E, top-k, expert ffn width and shared ffn width."""
    if block.num_experts > 0:
        ffn = 0
        for name, shape in block.fused_expert_weights.items():
            if name.endswith("down_proj"):  # (E, d, f) or transposed (E, f, d)
                ffn = int(shape[1] if block.experts_transposed else shape[2])
        if not ffn and block.expert_modules:
            ffn = max(_linear_out(m) for m in block.expert_modules[0].modules())
        shared = 0
        if block.shared_expert is not None:
            shared = sum(p.numel() for p in block.shared_expert.parameters()) // (3 * hidden)  # gate, up, down
        return {"ffn": 0, "experts": block.num_experts, "top_k": block.num_experts_per_tok, "expert_ffn": ffn,
                "shared_ffn": shared}
    mlp = block.mlp
    ffn = max((_linear_out(m) for m in mlp.modules() if m is not mlp), default=0) if mlp is not None else 0
    return {"ffn": ffn, "experts": 0, "top_k": 0, "expert_ffn": 0, "shared_ffn": 0}


# ------------------------------------------------------------------ placement
def place_units(units: list[tuple[str, float]], n_devices: int, policy: str | None,
                capacity: float | None = None) -> list[list[str]]:
    """Units per device: contiguous, balanced (min of the max share) or sequential (fill to ``capacity``)."""
    n_devices = max(1, int(n_devices))
    if policy is None or n_devices == 1:
        return [[u for u, _ in units]] + [[] for _ in range(n_devices - 1)]
    sizes = [s for _, s in units]
    if policy == "sequential" and capacity:
        out: list[list[str]] = [[] for _ in range(n_devices)]
        dev, used = 0, 0.0
        for name, s in units:
            if used + s > capacity and out[dev] and dev < n_devices - 1:
                dev, used = dev + 1, 0.0
            out[dev].append(name)
            used += s
        return out
    lo, hi = max(sizes), sum(sizes)
    for _ in range(60):  # binary search of the smallest largest-share a greedy contiguous split achieves
        mid = (lo + hi) / 2
        if _greedy_parts(sizes, mid) <= n_devices:
            hi = mid
        else:
            lo = mid
    out = [[] for _ in range(n_devices)]
    dev, used = 0, 0.0
    for name, s in units:
        if used + s > hi * (1 + 1e-12) and out[dev]:
            dev, used = dev + 1, 0.0
        out[dev].append(name)
        used += s
    return out


def _greedy_parts(sizes: list[float], cap: float) -> int:
    parts, used = 1, 0.0
    for s in sizes:
        if used + s > cap and used > 0:
            parts, used = parts + 1, 0.0
        used += s
    return parts


# ------------------------------------------------------------------ activations and FLOPs
def block_forward_activation(c: ModelCosts, l: int, tokens: int, act_bytes: int) -> float:
    """Largest transient bytes of one no-grad forward of block ``l`` at ``tokens`` tokens."""
    d, a, m = c.hidden, c.attn[l], c.mlp[l]
    attn = a["heads"] * a["d_qk"] + a["kv_heads"] * (a["d_qk"] + a["d_v"]) + a["heads"] * a["d_v"] + a["extra"] + d
    if m["experts"]:
        mlp = (m["top_k"] * (2 * d + 3 * m["expert_ffn"]) + 3 * m["shared_ffn"] + d
               + 4 * m["experts"] / act_bytes + 4 * d / act_bytes)  # router logits and the fp32 accumulator
    else:
        mlp = 3 * m["ffn"] + d
    return tokens * act_bytes * (2 * d + max(attn, mlp))


def block_saved_for_backward(c: ModelCosts, l: int, tokens: int, act_bytes: int) -> float:
    """Bytes autograd keeps of block ``l`` for the backward pass (input gradients only)."""
    d, a, m = c.hidden, c.attn[l], c.mlp[l]
    attn = a["heads"] * a["d_qk"] + a["kv_heads"] * (a["d_qk"] + a["d_v"]) + a["heads"] * a["d_v"] + a["extra"]
    if m["experts"]:
        mlp = m["top_k"] * (2 * d + 3 * m["expert_ffn"]) + 3 * m["shared_ffn"] + 2 * m["experts"]
    else:
        mlp = 3 * m["ffn"]
    return tokens * act_bytes * (4 * d + attn + mlp)


def forward_flops(c: ModelCosts, blocks: range, tokens: float, mean_len: float, with_head: float = 0.0) -> float:
    """FLOPs of running ``tokens`` tokens (items of ``mean_len``) through ``blocks`` (+ head tokens)."""
    total = 0.0
    for l in blocks:
        a = c.attn[l]
        ctx = mean_len / 2
        if a["window"]:
            ctx = min(ctx, a["window"])
        total += tokens * (2 * c.block_active[l] + 2 * ctx * a["heads"] * (a["d_qk"] + a["d_v"]))
    return total + with_head * 2 * c.head_params


def kv_cache_bytes(c: ModelCosts, blocks: range, tokens: int, act_bytes: int) -> float:
    return sum(tokens * act_bytes * c.attn[l]["kv_heads"] * (c.attn[l]["d_qk"] + c.attn[l]["d_v"]) for l in blocks)


def human_bytes(n: float) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    for unit, div in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"
