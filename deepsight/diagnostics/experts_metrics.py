"""Read-outs of the MoE expert statistics: activation rates, risk differences, separation, ranking.

From the per-(part, class, expert) sums of ``deepsight.stats.ExpertRouting`` of each MoE layer:

- activation rate p(e | c) = selections of e by tokens of class c / tokens of class c (a token
  selects top-k experts, so the rates of a layer sum to k);
- risk difference RD(e) = p(e | a) - p(e | b) for the contrast (a, b) (harmful vs safe), with
  Newcombe's hybrid-score 95% interval built from the two Wilson intervals (Newcombe 1998, method 10;
  tokens are treated as independent trials, so the interval is optimistic for correlated tokens);
- mean gate weight of e per class (gate sum / selections), mean router entropy (nats) per class;
- expert-output separation: the distance between e's class centroids of its (unweighted) output,
  ||mu_a - mu_b|| and the cosine distance 1 - cos(mu_a, mu_b) (NaN when e served no token of a class);
- load imbalance per layer: max_e load_e / mean_e load_e and the coefficient of variation of the load;
- safety experts: the (layer, expert) pairs with the largest RD; stability = |top-k(half A) ∩
  top-k(half B)| / k over two disjoint halves of the samples.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from deepsight.evals.metrics import wilson_interval

NAN = float("nan")


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, NAN))


def newcombe_interval(k1: float, n1: float, k2: float, n2: float) -> tuple[float, float, float]:
    """(p1 - p2, low, high): Newcombe's hybrid score interval of a difference of proportions."""
    if n1 <= 0 or n2 <= 0:
        return NAN, NAN, NAN
    k1, k2, n1, n2 = int(round(k1)), int(round(k2)), int(round(n1)), int(round(n2))
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def layer_readout(counts: torch.Tensor, tokens: torch.Tensor, gate_sums: torch.Tensor, entropy: torch.Tensor,
                  output_sums: torch.Tensor | None, contrast: tuple[int, int]) -> dict[str, Any]:
    """One layer and part: counts / gate_sums (C, E), tokens / entropy (C,), output_sums (C, E, D) or None.

    Returns matrices as nested lists (C x E or E) and per-layer scalars."""
    a, b = contrast
    C, E = counts.shape
    rate = _ratio(counts, tokens[:, None].expand(C, E))  # (C, E)
    rd, lo, hi = [], [], []
    for e in range(E):
        d, l_, h_ = newcombe_interval(float(counts[a, e]), float(tokens[a]), float(counts[b, e]), float(tokens[b]))
        rd.append(d)
        lo.append(l_)
        hi.append(h_)
    load = counts.sum(0)  # (E,)
    mean_load = float(load.mean()) if E else NAN
    out: dict[str, Any] = {
        "tokens": tokens.tolist(),
        "activation_rate": rate.tolist(),
        "risk_difference": rd,
        "rd_ci_low": lo,
        "rd_ci_high": hi,
        "mean_gate": _ratio(gate_sums, counts).tolist(),
        "router_entropy": _ratio(entropy, tokens).tolist(),
        "load": load.tolist(),
        "load_imbalance": float(load.max()) / mean_load if mean_load > 0 else NAN,
        "load_cv": float(load.std(unbiased=False)) / mean_load if mean_load > 0 else NAN,
    }
    if output_sums is not None:
        mu = _ratio(output_sums, counts[..., None].expand_as(output_sums))  # (C, E, D)
        dist = (mu[a] - mu[b]).norm(dim=-1)
        cos = torch.nn.functional.cosine_similarity(mu[a], mu[b], dim=-1)
        out["output_distance"] = dist.tolist()
        out["output_cosine_distance"] = (1.0 - cos).tolist()
    return out


def rank_experts(rd: dict[int, list[float]], k: int) -> list[tuple[int, int, float]]:
    """The k (layer, expert, RD) with the largest finite RD, largest first (ties: lower layer, expert)."""
    flat = [(layer, e, v) for layer, vals in rd.items() for e, v in enumerate(vals) if not math.isnan(v)]
    flat.sort(key=lambda t: (-t[2], t[0], t[1]))
    return flat[:k]


def stability(rd_a: dict[int, list[float]], rd_b: dict[int, list[float]], k: int) -> float:
    """Overlap |top-k(A) ∩ top-k(B)| / k of the safety-expert lists of two disjoint halves (NaN if k = 0)."""
    if k <= 0:
        return NAN
    ta = {(layer, e) for layer, e, _ in rank_experts(rd_a, k)}
    tb = {(layer, e) for layer, e, _ in rank_experts(rd_b, k)}
    return len(ta & tb) / k


def risk_differences(counts: torch.Tensor, tokens: torch.Tensor, contrast: tuple[int, int]) -> list[float]:
    """RD(e) = p(e | a) - p(e | b) for counts (C, E), tokens (C,); NaN when a class has no token."""
    a, b = contrast
    if tokens[a] <= 0 or tokens[b] <= 0:
        return [NAN] * counts.shape[1]
    return (counts[a] / tokens[a] - counts[b] / tokens[b]).tolist()
