"""MI-Peaks' second, streaming estimator and the rank correlation used to compare the two.

``histogram_mi(states, answer, bins)``: per state row x, the joint 2-D histogram of the
pairs (x_k, y_k) over the coordinates k, with ``bins`` equal-width bins per axis over
[min x, max x] and [min y, max y] (the maximum lands in the last bin, as in
``numpy.histogram2d``), and its plug-in MI = sum p_ab ln(p_ab / (p_a p_b)) in nats.
Counting is the ``JointHistogram`` statistic with per-row data ranges (its kernels: CUDA/Triton on a GPU).

``spearman(a, b)``: Pearson correlation of the average ranks (ties share their mean rank).
"""

from __future__ import annotations

import math

import torch

from deepsight.stats import JointHistogram


def histogram_mi(states: torch.Tensor, answer: torch.Tensor, bins: int = 32) -> torch.Tensor:
    """(S, D) states, (D,) answer -> (S,) float64 plug-in MI (nats) of each state's joint histogram."""
    assert states.dim() == 2 and answer.shape == states.shape[1:], (
        f"states (S, D) and answer (D,) expected, got {tuple(states.shape)} and {tuple(answer.shape)}"
    )
    s = states.shape[0]
    if s == 0:
        return torch.zeros(0, dtype=torch.float64, device=states.device)
    x = states.detach().float()
    y = answer.detach().float().to(x.device)
    hist = JointHistogram(bins, range_x=None, range_y=None, num_steps=s, device=x.device).update(x, y)
    return hist.mutual_information


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    order = torch.argsort(v, stable=True)
    sorted_v = v[order]
    ranks = torch.empty_like(v, dtype=torch.float64)
    n = v.numel()
    i = 0
    vals = sorted_v.tolist()
    pos = torch.arange(n, dtype=torch.float64)
    while i < n:
        j = i
        while j + 1 < n and vals[j + 1] == vals[i]:
            j += 1
        ranks[order[i : j + 1]] = pos[i : j + 1].mean() + 1.0
        i = j + 1
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation of two equal-length sequences; NaN if shorter than 2 or constant."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.numel() != b.numel():
        raise ValueError(f"spearman: lengths differ ({a.numel()} vs {b.numel()})")
    keep = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[keep], b[keep]
    if a.numel() < 2:
        return math.nan
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum()) / den if den > 0 else math.nan
