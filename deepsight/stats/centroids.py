"""Per-class count, sum and (optionally) squared-norm sum of pooled activation vectors: class
centroids and the within-class spread (X-Boundary, arXiv 2502.09990; spec section 1).

On CUDA the pooling over tokens, the class sums and the squared norms come from one fused kernel
reading the block output in place (``kernels/pool.py``); on a CPU from its torch path. Pooling runs
in float32 (float64 for float64 states) and adds into the accumulators (``dtype``; X-Boundary uses
float64 since its spread subtracts nearly equal numbers).

Usage::

    cents = ClassCentroids(num_classes=3, dim=d, device=layer_device, spread=True)
    cents.update(hidden, labels, mask=attention_mask, pooling="mean")  # hidden (B, T, D): pooled in the kernel
    cents.update(pooled, labels)                                       # or already pooled (N, D)
    cents.centroids        # (K, D) float64, NaN rows for empty classes
    cents.within_class_ss  # (K,) float64 sum of squared distances to the own centroid (spread=True)
"""

from __future__ import annotations

import torch

from deepsight.kernels import dispatch
from deepsight.stats._base import Statistic, resolve_stat_dtype


def as_labels(labels: torch.Tensor | int, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """Class labels as an int64 tensor of length ``n`` on ``device`` (an int labels every row).

    Range is checked when the labels are on the CPU (checking CUDA labels would sync every batch)."""
    if isinstance(labels, int):
        if not 0 <= labels < num_classes:
            raise ValueError(f"label {labels} outside [0, {num_classes})")
        return torch.full((n,), labels, dtype=torch.long, device=device)
    if labels.shape != (n,):
        raise ValueError(f"labels have shape {tuple(labels.shape)}, expected ({n},)")
    if labels.device.type == "cpu" and n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got {labels.min()}..{labels.max()}")
    return labels.to(device=device, dtype=torch.long, non_blocking=True)


class ClassCentroids(Statistic):
    """Running per-class sums and counts of vectors of dimension ``dim``; with ``spread=True`` also the
    per-class sums of their squared norms (what a within-class spread needs)."""

    _config = ("num_classes", "dim", "spread")

    def __init__(self, num_classes: int, dim: int, *, dtype: str | torch.dtype = "float32",
                 device: torch.device | str = "cpu", backend: str = "auto", spread: bool = False):
        self.num_classes, self.dim, self.backend, self.spread = int(num_classes), int(dim), backend, bool(spread)
        dt = resolve_stat_dtype(dtype)
        self.sums = torch.zeros(self.num_classes, self.dim, dtype=dt, device=device)  # (K, D)
        self.counts = torch.zeros(self.num_classes, dtype=dt, device=device)  # (K,)
        self.sq_sums = torch.zeros(self.num_classes, dtype=dt, device=device) if self.spread else None  # (K,)
        self._state = ("sums", "counts", "sq_sums") if self.spread else ("sums", "counts")

    def update(self, x: torch.Tensor, labels: torch.Tensor | int, *, mask: torch.Tensor | None = None,
               pooling: str = "mean") -> ClassCentroids:
        """Add rows of ``x``: (B, T, D) token states pooled over valid tokens of ``mask`` (B, T)
        with ``pooling`` = mean | last | sum, or (N, D) vectors added as they are. A row with no
        valid token is not counted."""
        if x.dim() == 2:
            assert mask is None, "mask applies to (B, T, D) token states only"
            x, pooling = x[:, None, :], "sum"  # (N, 1, D)
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected (B, T, {self.dim}) or (N, {self.dim}), got {tuple(x.shape)}")
        if mask is not None and mask.shape != x.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match states {tuple(x.shape[:2])}")
        if x.device != self.device:
            raise ValueError(f"states on {x.device} but the statistic lives on {self.device}")
        if x.shape[0] == 0:
            return self
        lab = as_labels(labels, x.shape[0], self.num_classes, self.device)
        dispatch.pooled_class_sum_(x, mask, lab, self.sums, self.counts, pooling=pooling, backend=self.backend,
                                   sq_sums=self.sq_sums)
        return self

    @property
    def class_counts(self) -> torch.Tensor:
        """(K,) float64 number of vectors per class."""
        return self.counts.to(torch.float64)

    @property
    def class_sums(self) -> torch.Tensor:
        """(K, D) float64 sum of the vectors of each class."""
        return self.sums.to(torch.float64)

    @property
    def sq_norm_sums(self) -> torch.Tensor:
        """(K,) float64 sum of the squared norms of each class's vectors (``spread=True``)."""
        if self.sq_sums is None:
            raise ValueError("ClassCentroids(spread=False) keeps no squared norms; create it with spread=True")
        return self.sq_sums.to(torch.float64)

    @property
    def within_class_ss(self) -> torch.Tensor:
        """(K,) float64 sum of squared distances of each class's vectors to its centroid,
        q_k - ||s_k||^2 / n_k (0 for an empty class; ``spread=True``)."""
        n = self.class_counts
        s = self.class_sums
        return torch.where(n > 0, self.sq_norm_sums - (s * s).sum(1) / n.clamp_min(1), 0.0)

    @property
    def centroids(self) -> torch.Tensor:
        """(K, D) float64 class means; NaN for a class with no vectors."""
        n = self.class_counts[:, None]
        return torch.where(n > 0, self.sums.to(torch.float64) / n.clamp_min(1), float("nan"))
