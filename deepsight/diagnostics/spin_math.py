"""SPIN math (spec section 3): which weights count, candidates per matrix, coupling per layer.

A *weight* is one 2-D matrix W (O, I) of a decoder block: an ``nn.Linear`` weight, a
router weight, or one expert's slice of a fused 3-D expert parameter (transformers 5
stores ``gate_up_proj`` (E, 2I, H) -> per expert ``gate_proj`` rows [0, I) and
``up_proj`` rows [I, 2I); ``down_proj`` (E, H, I) -> per expert ``down_proj``), so every
expert matrix is counted like the per-expert ``nn.Linear`` the reference saw.

candidates(W) = flat indices of the top-k of |W| * G_W with k = int(q * cols * rows)
(the reference's expression and order); none when k = 0 or G_W is all zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deepsight.errors import ConfigError
from deepsight.stats import GradAbsSum

TARGET_MODULES = ("mlp", "self_attn", "all")


@dataclass
class WeightRef:
    """One 2-D weight matrix: ``param[expert, rows]`` (fused experts) or ``param`` itself."""

    name: str  # qualified, e.g. "model.layers.3.mlp.down_proj" or "model.layers.3.mlp.experts.5.up_proj"
    layer: int
    rel_name: str  # relative to the block, e.g. "mlp.down_proj"
    param: nn.Parameter
    expert: int | None = None
    rows: tuple[int, int] | None = None  # row range inside the expert's matrix
    module: nn.Module | None = None  # the nn.Linear (None for fused experts / non-Linear routers)

    def view(self, t: torch.Tensor | None = None) -> torch.Tensor:
        """This matrix's (O, I) view of ``t`` (default: the weight) shaped like ``param``."""
        t = self.param if t is None else t
        if self.expert is not None:
            t = t[self.expert]
        if self.rows is not None:
            t = t[self.rows[0] : self.rows[1]]
        return t

    @property
    def shape(self) -> tuple[int, int]:
        o, i = self.view().shape
        return int(o), int(i)

    @property
    def numel(self) -> int:
        o, i = self.shape
        return o * i


def num_candidates(q: float, shape: tuple[int, int]) -> int:
    """k = int(q * cols * rows), the reference's expression."""
    rows, cols = shape
    return int(q * cols * rows)


def smallest_q_for_one(shapes: list[tuple[int, int]]) -> float:
    """Smallest q that gives k >= 1 for at least one of the matrices."""
    if not shapes:
        return math.nan
    rows, cols = max(shapes, key=lambda s: s[0] * s[1])
    q = 1.0 / (rows * cols)
    while num_candidates(q, (rows, cols)) < 1:  # float rounding of q * cols * rows
        q = math.nextafter(q, math.inf)
    return q


def candidates(weight: torch.Tensor, grad_abs_sum: GradAbsSum, k: int) -> torch.Tensor:
    """Sorted flat indices (int64, CPU) of the top-k of |W| * G_W (``grad_abs_sum``: the weight's
    ``GradAbsSum``); empty when k <= 0 or G_W == 0."""
    _, idx = grad_abs_sum.topk(weight.detach(), k)
    return torch.unique(idx.to("cpu", torch.long))


def _in_attention(rel_name: str, attention_prefix: str | None) -> bool:
    return attention_prefix is not None and rel_name.startswith(attention_prefix + ".")


def keep_weight(rel_name: str, target_module: str, attention_prefix: str | None, reference_compat: bool) -> bool:
    """The target_module filter. Default: ``mlp`` = outside the attention module, ``self_attn`` = inside it.
    Reference compat: ``mlp`` = name without "self_attn", ``self_attn`` = name without "mlp" (so MoE experts
    under ``block_sparse_moe`` count as attention there)."""
    if target_module not in TARGET_MODULES:
        raise ConfigError(f"scan.spin.target_module={target_module!r}; expected one of {list(TARGET_MODULES)}")
    if target_module == "all":
        return True
    if reference_compat:
        return ("self_attn" not in rel_name) if target_module == "mlp" else ("mlp" not in rel_name)
    inside = _in_attention(rel_name, attention_prefix) or (attention_prefix is None and "self_attn" in rel_name)
    return not inside if target_module == "mlp" else inside


def _split_fused(pname: str, shape: tuple[int, ...], transposed: bool) -> list[tuple[str, tuple[int, int] | None]]:
    """Per-expert matrices of one fused parameter: [(sub-name, row range or None)]."""
    if transposed:
        return []  # (E, in, out) layouts (GPT-OSS) are not split here; see weights_of_model
    if pname == "gate_up_proj" and shape[1] % 2 == 0:
        half = shape[1] // 2
        return [("gate_proj", (0, half)), ("up_proj", (half, shape[1]))]
    return [(pname, None)]


def weights_of_model(anatomy, target_module: str, reference_compat: bool = False) -> list[WeightRef]:
    """Every considered 2-D weight of the decoder blocks, in block order."""
    refs: list[WeightRef] = []
    for layer in anatomy.layers:
        att_prefix = None
        for cname, child in layer.block.named_children():
            if child is layer.attention:
                att_prefix = cname
        block_prefix = layer.name + "."
        for name, module in layer.linear_modules.items():
            rel = name[len(block_prefix) :]
            w = getattr(module, "weight", None)
            if w is None or w.dim() != 2:
                continue
            if keep_weight(rel, target_module, att_prefix, reference_compat):
                refs.append(WeightRef(name, layer.index, rel, w, module=module))
        router = layer.router
        if router is not None and not isinstance(router, nn.Linear):
            w = getattr(router, "weight", None)
            rname = next((n for n, m in layer.block.named_modules() if m is router), "router")
            if isinstance(w, nn.Parameter) and w.dim() == 2 and keep_weight(
                rname + ".weight", target_module, att_prefix, reference_compat
            ):
                refs.append(WeightRef(f"{block_prefix}{rname}", layer.index, rname, w))
        if layer.fused_experts and layer.experts is not None:
            ename = next(n for n, m in layer.block.named_modules() if m is layer.experts)
            for pname, p in layer.experts.named_parameters(recurse=False):
                if p.dim() != 3:
                    continue
                for sub, rows in _split_fused(pname, tuple(p.shape), layer.experts_transposed):
                    for e in range(p.shape[0]):
                        rel = f"{ename}.{e}.{sub}"
                        if keep_weight(rel, target_module, att_prefix, reference_compat):
                            refs.append(WeightRef(f"{block_prefix}{rel}", layer.index, rel, p, expert=e, rows=rows))
    return refs


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else math.nan


def coupling_summary(
    refs: list[WeightRef],
    cand1: dict[str, torch.Tensor],
    cand2: dict[str, torch.Tensor],
    num_layers: int,
    per_module: bool = False,
) -> dict:
    """Per-layer and total candidate counts, coupled counts and ratios (spec names)."""
    zero = {"candidate_dataset1": 0, "candidate_dataset2": 0, "coupled": 0, "total_neurons": 0}
    layers = [dict(zero, layer=i) for i in range(num_layers)]
    modules: list[dict] = []
    for ref in refs:
        c1, c2 = cand1[ref.name], cand2[ref.name]
        coupled = int(torch.isin(c1, c2).sum()) if c1.numel() and c2.numel() else 0
        row = layers[ref.layer]
        row["candidate_dataset1"] += int(c1.numel())
        row["candidate_dataset2"] += int(c2.numel())
        row["coupled"] += coupled
        row["total_neurons"] += ref.numel
        if per_module:
            modules.append({
                "name": ref.name, "layer": ref.layer, "candidate_dataset1": int(c1.numel()),
                "candidate_dataset2": int(c2.numel()), "coupled": coupled, "total_neurons": ref.numel,
                "coupling_ratio": _ratio(coupled, ref.numel),
            })  # fmt: skip
    for row in layers:
        row["coupling_ratio"] = _ratio(row["coupled"], row["total_neurons"])
    totals = {k: sum(r[k] for r in layers) for k in zero}
    totals["coupling_ratio"] = _ratio(totals["coupled"], totals["total_neurons"])
    totals["coupled_rate_vs_candidate_mean"] = _ratio(
        totals["coupled"], (totals["candidate_dataset1"] + totals["candidate_dataset2"]) / 2
    )
    out = {"totals": totals, "layers": layers}
    if per_module:
        out["modules"] = modules
    return out
