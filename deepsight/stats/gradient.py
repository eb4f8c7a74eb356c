"""Per-weight sum over samples of |per-sample gradient| for linear layers, the importance
|W| * sum and its top-k candidates (SPIN).

For y = x W^T the gradient of sample s is sum_t delta_{s,t} x_{s,t}^T (delta = dL_s/dy): a
batch of S samples gives S separate gradients whose absolute values are summed, so any batch
size gives exactly the batch-1 result.

Usage::

    g = GradAbsSum(linear.weight.shape, device=linear.weight.device)
    g.update(delta, x, token_mask)        # delta (S, T, O), x (S, T, I), token_mask (S, T)
    g.update_grad(param.grad)             # or one sample's full gradient (e.g. fused expert weights)
    values, flat_idx = g.topk(linear.weight, k)
"""

from __future__ import annotations

import torch

from deepsight.kernels import dispatch
from deepsight.stats._base import Statistic, resolve_stat_dtype


class GradAbsSum(Statistic):
    _state = ("acc", "samples")
    _config = ("shape",)

    def __init__(self, shape: tuple[int, ...] | torch.Size, *, dtype: str | torch.dtype = "float32",
                 device: torch.device | str = "cpu", backend: str = "auto"):
        self.shape, self.backend = tuple(int(s) for s in shape), backend
        dt = resolve_stat_dtype(dtype)
        if len(self.shape) == 2 and torch.device(device).type == "cpu" and self.shape[0] < self.shape[1]:
            # the (O, I) sums stored as an (I, O) array: on a CPU the per-sample BLAS products run markedly
            # faster when their output has more rows than columns (SmolLM2's 576 x 1536 down-projection
            # gradient ~110-170 GFLOP/s, its transpose ~175-190), so update() computes the transposed
            # products; ``acc`` is still the (O, I) matrix, a transposed view
            self.acc = torch.zeros(self.shape[::-1], dtype=dt, device=device).T
        else:
            self.acc = torch.zeros(self.shape, dtype=dt, device=device)  # same shape as the weight
        self.samples = torch.zeros((), dtype=torch.float64, device=device)  # number of samples added

    def update(self, delta: torch.Tensor, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> GradAbsSum:
        """Add |sum_t delta_{s,t} x_{s,t}^T| for each sample s; masked tokens contribute nothing."""
        if len(self.shape) != 2:
            raise ValueError(f"update(delta, x) needs a 2-D weight; this GradAbsSum has shape {self.shape}")
        if delta.dim() == 2:  # one sample (T, O)
            delta, x = delta[None], x[None]
            token_mask = None if token_mask is None else token_mask[None]
        out_f, in_f = self.shape
        if delta.dim() != 3 or delta.shape[-1] != out_f or x.shape != (*delta.shape[:2], in_f):
            raise ValueError(f"expected delta (S, T, {out_f}) and x (S, T, {in_f}); "
                             f"got {tuple(delta.shape)} and {tuple(x.shape)}")
        if token_mask is not None and token_mask.shape != delta.shape[:2]:
            raise ValueError(f"token_mask {tuple(token_mask.shape)} must be (S, T) = {tuple(delta.shape[:2])}")
        if delta.shape[0] == 0:
            return self
        acc = self.acc
        if not acc.is_contiguous() and acc.T.is_contiguous():  # stored transposed: |x_s^T delta_s| = |.|^T
            dispatch.grad_abs_sum_(x, delta, acc.T, token_mask, backend=self.backend)
        else:
            if not acc.is_contiguous():
                self.acc = acc = acc.contiguous()
            dispatch.grad_abs_sum_(delta, x, acc, token_mask, backend=self.backend)
        self.samples += delta.shape[0]
        return self

    def update_grad(self, grad: torch.Tensor) -> GradAbsSum:
        """Add |grad| where ``grad`` is one sample's full gradient of the weight."""
        if tuple(grad.shape) != self.shape:
            raise ValueError(f"gradient shape {tuple(grad.shape)} != {self.shape}")
        self.acc.add_(grad.detach().to(self.acc.dtype).abs())
        self.samples += 1
        return self

    @property
    def total(self) -> torch.Tensor:
        """float64 sum over samples of |dL_s/dW|."""
        return self.acc.to(torch.float64)

    def importance(self, weight: torch.Tensor) -> torch.Tensor:
        """float64 |W| * sum_s |dL_s/dW|."""
        return weight.detach().to(device=self.acc.device, dtype=torch.float64).abs() * self.total

    def topk(self, weight: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` importance values and their flat indices; empty when k = 0 or no gradient was seen."""
        if tuple(weight.shape) != self.shape:
            raise ValueError(f"weight shape {tuple(weight.shape)} != {self.shape}")
        k = min(int(k), self.acc.numel())
        if k <= 0 or not bool((self.acc != 0).any()):
            empty = torch.zeros(0, device=self.acc.device)
            return empty.to(torch.float64), empty.to(torch.long)
        w = weight.detach().to(self.acc.device)
        if len(self.shape) == 2:
            values, idx = dispatch.importance_topk(w, self.acc, k, backend=self.backend)
        else:  # (E, O, I) fused experts: viewed as (E, O * I), same flat indices
            values, idx = dispatch.importance_topk(w.reshape(self.shape[0], -1), self.acc.reshape(self.shape[0], -1),
                                                   k, backend=self.backend)
        return values.to(torch.float64), idx.to(torch.long)
