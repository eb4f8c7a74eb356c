"""X-Boundary metrics from per-class streaming moments (spec section 1).

Per layer only three numbers per class are accumulated (``deepsight.stats.ClassCentroids`` with
``spread=True``): the count n_k, the sum of the pooled vectors s_k (d,) and the sum of their squared
norms q_k, all in float64 (B x d per batch: negligible cost, and the spread below subtracts nearly
equal numbers). From them:

* centroid C_k = s_k / n_k
* separation_score = ||C_safe - C_harmful||
* boundary_ratio = ||C_boundary - C_safe|| / ||C_boundary - C_harmful|| (+inf when the
  denominator < 1e-9)
* details: dist_bound_safe, dist_bound_harmful
* scaled_separation (DeepSight extra, comparable across models) = ||C_safe - C_harmful|| / s_w
  with the pooled within-class spread of the two classes
  s_w = sqrt((SS_safe + SS_harmful) / (n_safe + n_harmful - 2)), SS_k = q_k - n_k ||C_k||^2
  (sum of squared distances to the own centroid). Scale-free: multiplying all activations
  by a constant leaves it unchanged.
"""

from __future__ import annotations

import math

import torch

from deepsight.data.xboundary import BOUNDARY, CLASS_NAMES, HARMFUL, SAFE
from deepsight.stats import ClassCentroids

NUM_CLASSES = 3


def layer_metrics(stat: ClassCentroids) -> tuple[dict, list[str]]:
    """Metrics of one layer from its class statistic (``spread=True``); returns (values, warnings)."""
    return xboundary_metrics(stat.class_counts, stat.class_sums, stat.sq_norm_sums)


def _f(x: torch.Tensor | float) -> float:
    return float(x)


def xboundary_metrics(counts: torch.Tensor, sums: torch.Tensor, sq_sums: torch.Tensor) -> tuple[dict, list[str]]:
    """Metrics of one layer from its class moments; returns (values, warnings)."""
    counts, sums, sq_sums = (t.detach().to("cpu", torch.float64) for t in (counts, sums, sq_sums))
    n = {k: int(counts[k].item()) for k in (HARMFUL, SAFE, BOUNDARY)}
    empty = [CLASS_NAMES[k] for k, v in n.items() if v == 0]
    nan = float("nan")
    out = {
        "separation_score": nan,
        "boundary_ratio": nan,
        "dist_bound_safe": nan,
        "dist_bound_harmful": nan,
        "scaled_separation": nan,
        "within_class_spread": nan,
        "counts": {CLASS_NAMES[k]: v for k, v in n.items()},
    }
    if empty:
        return out, [f"empty class(es) {empty}: X-Boundary metrics are NaN"]
    c = sums / counts[:, None]  # (K, d) centroids
    sep = torch.linalg.vector_norm(c[SAFE] - c[HARMFUL])
    d_bs = torch.linalg.vector_norm(c[BOUNDARY] - c[SAFE])
    d_bh = torch.linalg.vector_norm(c[BOUNDARY] - c[HARMFUL])
    out["separation_score"] = _f(sep)
    out["dist_bound_safe"] = _f(d_bs)
    out["dist_bound_harmful"] = _f(d_bh)
    out["boundary_ratio"] = math.inf if _f(d_bh) < 1e-9 else _f(d_bs / d_bh)
    dof = n[SAFE] + n[HARMFUL] - 2
    if dof > 0:
        ss = sum(sq_sums[k] - counts[k] * (c[k] @ c[k]) for k in (SAFE, HARMFUL))
        spread = math.sqrt(max(_f(ss), 0.0) / dof)
        out["within_class_spread"] = spread
        out["scaled_separation"] = _f(sep) / spread if spread > 0 else math.inf
    return out, []


def summarize_layers(per_layer: dict[int, dict]) -> dict:
    """Headline numbers: the layer with max separation and the layer with min boundary ratio."""
    finite_sep = {l: v["separation_score"] for l, v in per_layer.items() if not math.isnan(v["separation_score"])}
    finite_ratio = {l: v["boundary_ratio"] for l, v in per_layer.items() if not math.isnan(v["boundary_ratio"])}
    out: dict = {}
    if finite_sep:
        best = max(finite_sep, key=finite_sep.get)
        out["best_separation_layer"] = best
        out["separation_score"] = finite_sep[best]
        out["scaled_separation"] = per_layer[best]["scaled_separation"]
    if finite_ratio:
        best = min(finite_ratio, key=finite_ratio.get)
        out["best_boundary_layer"] = best
        out["boundary_ratio"] = finite_ratio[best]
    return out
