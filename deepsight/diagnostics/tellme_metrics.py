"""TELLME metrics (spec section 2): coding rates from per-class Grams, erank and distances from rows.

Coding rates need only the per-class raw Gram matrices G_j = sum_{z in class j} z z^T:
with G = sum_j G_j and S = diag(max(sqrt(G_kk), 1e-12)) (the global column norms; the floor is
``F.normalize``'s), the column-normalised Z^T Z is S^-1 G S^-1 and each class uses the same S:

    R_diff = (d ln d)/2 + 1/2 logdet(I/d + S^-1 G S^-1 / (m eps))
    R_same = sum_j (m_j / 2m) [d ln d + logdet(I/d + S^-1 G_j S^-1 / (m_j eps))]
    R_gap  = R_diff - R_same

erank and the pairwise distances need the last-token rows themselves (m x d, kept by the scan);
all final linear algebra is float64.

Distances (rows sorted by label, stable; c classes -> blocks of floor(m/c) rows; averaged over
block pairs): cos_sim (row i with row i, degrees of arccos of the mean), pcc, L2 and L1 (mean over
all pairs), hausdorff (L2). L1 over all pairs is exact in O(d n log n): per coordinate, sort one
block and use prefix sums; L2 and hausdorff use one n x n float64 distance matrix.
"""

from __future__ import annotations

import math

import torch

NAMES = ("R_diff", "R_same", "R_gap", "erank", "cos_sim", "pcc", "L1", "L2", "hausdorff")


def coding_rates(class_grams: dict[int, torch.Tensor], class_counts: dict[int, int], eps: float) -> dict[str, float]:
    """R_diff, R_same, R_gap from raw per-class Gram matrices (any float dtype; computed in float64)."""
    labels = [k for k in sorted(class_grams) if class_counts.get(k, 0) > 0]
    if not labels:
        return {"R_diff": math.nan, "R_same": math.nan, "R_gap": math.nan}
    grams = {k: class_grams[k].detach().to(torch.float64) for k in labels}
    g = sum(grams.values())
    d = g.shape[0]
    m = sum(class_counts[k] for k in labels)
    inv_s = 1.0 / g.diagonal().clamp_min(0).sqrt().clamp_min(1e-12)  # (d,) global column scaling
    scale = inv_s[:, None] * inv_s[None, :]  # (d, d)
    eye_d = torch.eye(d, dtype=torch.float64, device=g.device) / d
    r_diff = d * math.log(d) / 2 + 0.5 * float(torch.linalg.slogdet(eye_d + g * scale / (m * eps))[1])
    r_same = 0.0
    for k in labels:
        mk = class_counts[k]
        logdet_k = float(torch.linalg.slogdet(eye_d + grams[k] * scale / (mk * eps))[1])
        r_same += (d * math.log(d) + logdet_k) * mk / (2 * m)
    return {"R_diff": r_diff, "R_same": r_same, "R_gap": r_diff - r_same}


def erank(rows: torch.Tensor) -> float:
    """exp(entropy) of the normalised spectrum of A = Z'^T Z' / m (Z' = centred, row-normalised rows)."""
    z = rows.detach().to(torch.float64)
    z = z - z.mean(dim=0, keepdim=True)
    z = z / torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(1e-12)
    m, d = z.shape
    # A is d x d; with m < d the nonzero spectrum is that of the m x m Z' Z'^T / m (same values).
    a = (z.T @ z if d <= m else z @ z.T) / m
    ev = torch.linalg.eigvalsh(a).clamp_min(0)  # PSD: singular values = eigenvalues
    p = ev / ev.sum()
    p = p[p > 0]
    return math.exp(float(-(p * p.log()).sum()))


def _l1_mean(x: torch.Tensor, y: torch.Tensor) -> float:
    """mean_{i,j} ||x_i - y_j||_1, exact, via per-coordinate sorting and prefix sums."""
    n = x.shape[0]
    xs = x.T.contiguous().sort(dim=1).values  # (d, n) each coordinate sorted
    prefix = torch.nn.functional.pad(xs.cumsum(dim=1), (1, 0))  # (d, n+1)
    yt = y.T.contiguous()  # (d, n_y)
    below = torch.searchsorted(xs, yt)  # (d, n_y): how many x_k < y
    sum_below = prefix.gather(1, below)
    total = prefix[:, -1:]
    s = (below * yt - sum_below) + ((total - sum_below) - (n - below) * yt)
    return float(s.sum()) / (n * y.shape[0])


def _pair_metrics(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """cos (mean, not yet degrees), pcc, L2, L1, hausdorff for two equal-size blocks (float64)."""
    nx = torch.linalg.vector_norm(x, dim=1)
    ny = torch.linalg.vector_norm(y, dim=1)
    cos = float(((x * y).sum(1) / (nx * ny).clamp_min(1e-8)).mean())
    u = x - x.mean()
    v = y - y.mean()
    u = u / torch.linalg.vector_norm(u, dim=0, keepdim=True).clamp_min(1e-12)
    v = v / torch.linalg.vector_norm(v, dim=0, keepdim=True).clamp_min(1e-12)
    pcc = float((u * v).mean())
    d2 = (nx[:, None] ** 2 + ny[None, :] ** 2 - 2 * (x @ y.T)).clamp_min(0)  # (n, n) squared L2
    dist = d2.sqrt()
    l2 = float(dist.mean())
    haus = max(float(dist.min(dim=1).values.max()), float(dist.min(dim=0).values.max()))
    return [cos, pcc, l2, _l1_mean(x, y), haus]


def distance_metrics(rows_sorted: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Pairwise block metrics on label-sorted rows (see module docstring)."""
    nan = {"cos_sim": math.nan, "pcc": math.nan, "L2": math.nan, "L1": math.nan, "hausdorff": math.nan}
    z = rows_sorted.detach().to(torch.float64)
    step = z.shape[0] // num_classes if num_classes >= 2 else 0
    if step == 0:
        return nan
    blocks = [z[i * step : (i + 1) * step] for i in range(num_classes)]
    vals = [_pair_metrics(blocks[i], blocks[j]) for i in range(num_classes) for j in range(i + 1, num_classes)]
    mean = [sum(v[k] for v in vals) / len(vals) for k in range(5)]
    return {
        "cos_sim": math.degrees(math.acos(max(-1.0, min(1.0, mean[0])))),
        "pcc": mean[1],
        "L2": mean[2],
        "L1": mean[3],
        "hausdorff": mean[4],
    }


def tellme_metrics(
    rows: torch.Tensor, labels: torch.Tensor, class_grams: dict[int, torch.Tensor], eps: float
) -> dict[str, float]:
    """All nine metrics. ``rows`` (m, d) in data order with ``labels`` (m,); grams per label."""
    order = torch.sort(labels.cpu(), stable=True).indices
    lab_sorted = labels.cpu()[order]
    rows_sorted = rows[order.to(rows.device)]
    counts = {int(k): int((lab_sorted == k).sum()) for k in lab_sorted.unique()}
    out = coding_rates(class_grams, counts, eps)
    out["erank"] = erank(rows_sorted)
    out.update(distance_metrics(rows_sorted, len(counts)))
    return {k: out[k] for k in NAMES}
