"""Total and per-class Gram matrices X^T X with the sums and counts that give means and covariances (TELLME).

Usage::

    g = GramMatrix(dim=d, num_classes=2, device=layer_device)
    g.update(x, labels)          # x (N, D) in any float dtype; accumulated in float32 (or float64)
    g.gram, g.class_gram(0)      # (D, D) float64
    g.covariance                 # (D, D) float64, unbiased (n - 1)
"""

from __future__ import annotations

import torch

from deepsight.kernels import dispatch
from deepsight.stats._base import Statistic, resolve_stat_dtype
from deepsight.stats.centroids import as_labels

_MASKED_MAX_CLASSES = 8  # up to this many classes, class Grams come from one masked batched product
_SMALL_ROWS = 1024  # up to this many rows per update, backend "auto" takes the plain-torch Gram product


class GramMatrix(Statistic):
    """Running X^T X over rows of X (and per class when ``num_classes`` is given), plus row sums and counts."""

    _config = ("dim", "num_classes")

    def __init__(self, dim: int, num_classes: int | None = None, *, dtype: str | torch.dtype = "float32",
                 device: torch.device | str = "cpu", backend: str = "auto"):
        self.dim, self.num_classes, self.backend = int(dim), num_classes, backend
        dt = resolve_stat_dtype(dtype)
        k = 1 if num_classes is None else int(num_classes)
        self.total_gram = torch.zeros(self.dim, self.dim, dtype=dt, device=device)  # (D, D)
        self.class_sums = torch.zeros(k, self.dim, dtype=dt, device=device)  # (K, D); K = 1 without classes
        self.class_counts = torch.zeros(k, dtype=dt, device=device)  # (K,)
        self._state = ("total_gram", "class_sums", "class_counts")
        if num_classes is not None:
            self.class_grams = torch.zeros(k, self.dim, self.dim, dtype=dt, device=device)  # (K, D, D)
            self._state += ("class_grams",)

    def update(self, x: torch.Tensor, labels: torch.Tensor | int | None = None) -> GramMatrix:
        """Add the rows of ``x`` (N, D); ``labels`` (N,) are required iff ``num_classes`` was given."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected (N, {self.dim}), got {tuple(x.shape)}")
        if x.device != self.device:
            raise ValueError(f"rows on {x.device} but the statistic lives on {self.device}")
        if (labels is None) != (self.num_classes is None):
            raise ValueError("labels are required exactly when the GramMatrix has num_classes")
        n = x.shape[0]
        if n == 0:
            return self
        lab = as_labels(0 if labels is None else labels, n, self.class_counts.shape[0], self.device)
        # few rows (e.g. one last-token state per sample): the plain product was faster than the kernel's
        # launch on an H200 (~50 vs ~120 us at N <= 128, d = 576); "auto" only, a forced backend is respected
        small = self.backend == "auto" and n <= _SMALL_ROWS
        dispatch.gram_update_(x, self.total_gram, backend="torch" if small else self.backend)
        if labels is not None:
            self._update_class_grams(x, lab)
        # per-class row sums and counts: two small scatter-adds (no host sync, unlike a labelled kernel call)
        self.class_sums.index_add_(0, lab, x.to(self.class_sums.dtype))
        self.class_counts.index_add_(0, lab, torch.ones(n, dtype=self.class_counts.dtype, device=self.device))
        return self

    def _update_class_grams(self, x: torch.Tensor, lab: torch.Tensor) -> None:
        """Few classes: one batched product of class-masked copies of x (exact zeros elsewhere), no
        sorting or per-class bookkeeping; many classes: the labelled kernel."""
        k = self.class_grams.shape[0]
        if k > _MASKED_MAX_CLASSES:
            scratch = torch.zeros_like(self.total_gram)  # the kernel also adds into a total Gram
            dispatch.gram_update_(x, scratch, lab, self.class_grams, backend=self.backend)
            return
        dt = self.class_grams.dtype
        onehot = (lab[None, :] == torch.arange(k, device=lab.device)[:, None]).to(dt)  # (K, N); F.one_hot syncs
        xk = onehot[:, :, None] * x.to(dt)[None]  # (K, N, D) rows of other classes zeroed
        self.class_grams.baddbmm_(xk.transpose(1, 2), xk)  # (K, D, D) += x_k^T x_k

    # -- results (float64) -----------------------------------------------------------------
    @property
    def count(self) -> float:
        return float(self.class_counts.to(torch.float64).sum())

    @property
    def gram(self) -> torch.Tensor:
        """(D, D) float64 sum of x x^T over all rows."""
        return self.total_gram.to(torch.float64)

    @property
    def sum(self) -> torch.Tensor:
        return self.class_sums.to(torch.float64).sum(0)

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / self.count if self.count > 0 else torch.full_like(self.sum, float("nan"))

    @property
    def covariance(self) -> torch.Tensor:
        """(D, D) float64 unbiased covariance (G - n mu mu^T) / (n - 1); NaN with fewer than 2 rows."""
        return _covariance(self.gram, self.sum, self.count)

    def class_gram(self, k: int) -> torch.Tensor:
        assert self.num_classes is not None, "GramMatrix without classes"
        return self.class_grams[k].to(torch.float64)

    def class_count(self, k: int) -> float:
        return float(self.class_counts[k])

    def class_covariance(self, k: int) -> torch.Tensor:
        return _covariance(self.class_gram(k), self.class_sums[k].to(torch.float64), self.class_count(k))


def _covariance(gram: torch.Tensor, total: torch.Tensor, n: float) -> torch.Tensor:
    if n < 2:
        return torch.full_like(gram, float("nan"))
    mu = total / n
    return (gram - n * torch.outer(mu, mu)) / (n - 1)
