"""Per-(part, class, expert) routing statistics of one MoE layer (MoE expert diagnostics).

For every valid token the sink passes the experts the model chose (its own top-k), their gate
weights, the router logits, a class id and a part (0 = prompt token, 1 = response token); with
``dim`` set, also each chosen expert's (unweighted) output. Accumulated, per part p, class c
and expert e (all sums, so ``merge`` and ``all_reduce`` are exact):

- ``counts[p, c, e]``: selections; ``tokens[p, c]``: tokens (each selects top-k experts)
- ``gate_sums[p, c, e]``: sum of gate weights; ``entropy_sums[p, c, e]``: router entropy of the
  served tokens; ``token_entropy[p, c]``: router entropy summed over all tokens
- ``output_sums[p, c, e]`` (D,): sum of expert e's output over the tokens of (p, c) it served

Usage::

    st = ExpertRouting(num_experts=E, num_classes=3, dim=D, device=layer_device)
    st.update(top_k_index, top_k_weights, cls, part, logits=router_logits, score="softmax")
    st.update_outputs(outputs, top_k_index, cls, part)      # outputs (N, K, D)
    st.counts / st.tokens -> (2, C, E) / (2, C) float64
"""

from __future__ import annotations

import torch

from deepsight.kernels import dispatch
from deepsight.stats._base import Statistic, resolve_stat_dtype

PARTS = ("prompt", "response")


class ExpertRouting(Statistic):
    """Running routing sums of one MoE layer; class ids < 0 (padding, unknown) are not counted."""

    _state = ("acc", "outputs")
    _config = ("num_experts", "num_classes", "dim")

    def __init__(self, num_experts: int, num_classes: int, dim: int = 0, *, dtype: str | torch.dtype = "float32",
                 device: torch.device | str = "cpu", backend: str = "auto"):
        self.num_experts, self.num_classes, self.dim = int(num_experts), int(num_classes), int(dim)
        self.backend = backend
        dt = resolve_stat_dtype(dtype)
        rows = len(PARTS) * self.num_classes
        self.acc = torch.zeros(3, rows, self.num_experts + 1, dtype=dt, device=device)  # see kernels/expert_routing
        # (rows * E + 1, D): row (p * C + c) * E + e; the last row absorbs tokens that are not counted
        self.outputs = torch.zeros(rows * self.num_experts + 1 if self.dim else 1, max(self.dim, 1), dtype=dt,
                                   device=device)

    def _row_class(self, cls: torch.Tensor, part: torch.Tensor | int) -> torch.Tensor:
        cls = cls.to(device=self.device, dtype=torch.long)
        part_t = torch.as_tensor(part, device=self.device, dtype=torch.long)
        ok = (cls >= 0) & (cls < self.num_classes) & (part_t >= 0) & (part_t < len(PARTS))
        return torch.where(ok, part_t * self.num_classes + cls, -1)  # (N,)

    def update(self, top_k_index: torch.Tensor, top_k_weights: torch.Tensor, cls: torch.Tensor,
               part: torch.Tensor | int, *, logits: torch.Tensor | None = None, score: str = "softmax"
               ) -> ExpertRouting:
        """Add N tokens: ``top_k_index`` / ``top_k_weights`` (N, K), ``cls`` and ``part`` (N,) (or an int part),
        ``logits`` (N, E) for the router entropy (softmax or normalised-sigmoid ``score``)."""
        if top_k_index.shape[0] == 0:
            return self
        rows = self._row_class(cls, part)
        dispatch.expert_routing_(top_k_index, top_k_weights, logits, rows, self.acc, score=score,
                                 backend=self.backend)
        return self

    def update_outputs(self, outputs: torch.Tensor, top_k_index: torch.Tensor, cls: torch.Tensor,
                       part: torch.Tensor | int) -> ExpertRouting:
        """Add each chosen expert's output: ``outputs`` (N, K, D) aligned with ``top_k_index`` (N, K)."""
        if not self.dim:
            raise ValueError("ExpertRouting was built without dim: it keeps no expert outputs")
        n, k = top_k_index.shape
        if tuple(outputs.shape) != (n, k, self.dim):
            raise ValueError(f"outputs: expected shape ({n}, {k}, {self.dim}), got {tuple(outputs.shape)}")
        if n == 0:
            return self
        rows = self._row_class(cls, part)  # (N,)
        e = top_k_index.to(device=self.device, dtype=torch.long)
        ok = (rows[:, None] >= 0) & (e >= 0) & (e < self.num_experts)  # (N, K)
        trash = self.outputs.shape[0] - 1
        dest = torch.where(ok, rows[:, None] * self.num_experts + e, trash).reshape(-1)  # (N * K,)
        self.outputs.index_add_(0, dest, outputs.reshape(n * k, self.dim).to(self.outputs.dtype))
        return self

    # -- read-outs (float64) --------------------------------------------------------------------------------------
    def _plane(self, i: int) -> torch.Tensor:
        return self.acc[i].to(torch.float64).reshape(len(PARTS), self.num_classes, self.num_experts + 1)

    @property
    def counts(self) -> torch.Tensor:
        """(2, C, E) selections per part, class and expert."""
        return self._plane(0)[..., : self.num_experts]

    @property
    def tokens(self) -> torch.Tensor:
        """(2, C) tokens per part and class."""
        return self._plane(0)[..., self.num_experts]

    @property
    def gate_sums(self) -> torch.Tensor:
        return self._plane(1)[..., : self.num_experts]

    @property
    def entropy_sums(self) -> torch.Tensor:
        return self._plane(2)[..., : self.num_experts]

    @property
    def token_entropy(self) -> torch.Tensor:
        """(2, C) router entropy (nats) summed over the tokens of each part and class."""
        return self._plane(2)[..., self.num_experts]

    @property
    def output_sums(self) -> torch.Tensor:
        """(2, C, E, D) per-expert output sums (requires ``dim``)."""
        if not self.dim:
            raise ValueError("ExpertRouting was built without dim: it keeps no expert outputs")
        body = self.outputs[:-1].to(torch.float64)
        return body.reshape(len(PARTS), self.num_classes, self.num_experts, self.dim)

