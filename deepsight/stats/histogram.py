"""Per-step joint 2-D histograms of an activation vector against a reference vector, and their
plug-in mutual information (the streaming estimator of MI-Peaks).

Step s holds the histogram of the pairs (x_s[k], y[k]) over the coordinates k of a d-vector,
with ``bins`` equal-width bins per axis over fixed ranges (values outside are clamped into the
edge bins), or, with a range of None, over each updated row's own [min, max] (``numpy.histogram2d``'s
default: MI-Peaks bins every state against the answer over their data ranges). The number of steps grows
as updates arrive, so generations of any length fit.

Usage::

    h = JointHistogram(bins=32, range_x=(-4, 4), range_y=(-4, 4), device=dev)
    h.update(states, answer, step=0)   # states (S, D) for steps 0..S-1, answer (D,) or (S, D)
    h.mutual_information              # (S,) float64, nats: sum p_ab ln(p_ab / (p_a p_b))
    JointHistogram(bins=32, range_x=None, range_y=None)   # per-row data ranges
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from deepsight.kernels import dispatch
from deepsight.stats._base import Statistic, all_reduce_sum_, resolve_stat_dtype


def _row_range(fixed: tuple[float, float] | None, v: torch.Tensor, s: int) -> tuple:
    """(lo, hi) of the bins: the fixed range, or per row (S,) the data's min and max (of the 1-D y for all)."""
    if fixed is not None:
        return fixed
    if v.dim() == 1:
        return v.min().expand(s), v.max().expand(s)
    return v.amin(dim=1), v.amax(dim=1)


class JointHistogram(Statistic):
    _state = ("counts",)
    _config = ("bins", "range_x", "range_y")

    def __init__(self, bins: int = 32, range_x: tuple[float, float] | None = (-1.0, 1.0),
                 range_y: tuple[float, float] | None = (-1.0, 1.0), *, num_steps: int = 0,
                 dtype: str | torch.dtype = "float32", device: torch.device | str = "cpu", backend: str = "auto"):
        if bins < 1:
            raise ValueError(f"bins={bins} must be >= 1")
        for name, rng in (("range_x", range_x), ("range_y", range_y)):
            if rng is not None and not rng[1] > rng[0]:
                raise ValueError(f"{name}={tuple(rng)} must have hi > lo (or be None: each row's data range)")
        self.bins, self.backend = int(bins), backend
        # None: bins over each updated row's [min, max] (set by the update that fills the step)
        self.range_x = None if range_x is None else (float(range_x[0]), float(range_x[1]))
        self.range_y = None if range_y is None else (float(range_y[0]), float(range_y[1]))
        self._dtype = resolve_stat_dtype(dtype)
        self._buf = torch.zeros(num_steps, self.bins, self.bins, dtype=self._dtype, device=device)
        self.num_steps = int(num_steps)

    @property
    def counts(self) -> torch.Tensor:
        """(S, BINS, BINS) accumulated counts of the steps seen so far (a view)."""
        return self._buf[: self.num_steps]

    @counts.setter
    def counts(self, value: torch.Tensor) -> None:  # used by Statistic.to()
        self._buf, self.num_steps = value, value.shape[0]

    def _grow(self, steps: int) -> None:
        if steps <= self._buf.shape[0]:
            self.num_steps = max(self.num_steps, steps)
            return
        cap = max(steps, 2 * self._buf.shape[0])
        buf = torch.zeros(cap, self.bins, self.bins, dtype=self._buf.dtype, device=self._buf.device)
        buf[: self.num_steps] = self.counts
        self._buf, self.num_steps = buf, steps

    def update(self, x: torch.Tensor, y: torch.Tensor, step: int = 0) -> JointHistogram:
        """Add the pairs of ``x`` (S, D) (or (D,) for one step) against ``y`` (D,) or (S, D) into
        the histograms of steps ``step .. step + S - 1`` (a range of None: each row's own min..max)."""
        if x.dim() == 1:
            x = x[None]  # (1, D)
        if y.dim() == 2 and y.shape[0] == 1 and x.shape[0] != 1:
            y = y[0]
        if x.dim() != 2 or y.shape not in (x.shape[1:], x.shape):
            raise ValueError(f"x must be (S, D) and y (D,) or (S, D); got {tuple(x.shape)} and {tuple(y.shape)}")
        if x.device != self._buf.device or y.device != self._buf.device:
            raise ValueError(f"inputs on {x.device}/{y.device} but the statistic lives on {self._buf.device}")
        s = x.shape[0]
        if s == 0:
            return self
        self._grow(step + s)
        dispatch.joint_histogram_(x, y, self._buf[step: step + s], *_row_range(self.range_x, x, s),
                                  *_row_range(self.range_y, y, s), backend=self.backend)
        return self

    # -- merge / distributed (the step count may differ between parts) -----------------------
    def merge(self, other: JointHistogram) -> JointHistogram:
        self._check_compatible(other)
        self._grow(other.num_steps)
        self._buf[: other.num_steps].add_(other.counts.to(device=self._buf.device, dtype=self._buf.dtype))
        return self

    def all_reduce(self, group: Any = None) -> JointHistogram:
        if not (dist.is_available() and dist.is_initialized()):
            return self
        steps = torch.tensor([self.num_steps], dtype=torch.int64, device=self._buf.device)
        all_reduce_sum_(steps, group, op=dist.ReduceOp.MAX)
        self._grow(int(steps.item()))
        counts = self.counts.contiguous()
        all_reduce_sum_(counts, group)
        self._buf[: self.num_steps] = counts
        return self

    def load_state_dict(self, state: dict[str, Any]) -> JointHistogram:
        if state.get("config", {}) != self._settings():
            raise ValueError(f"JointHistogram: state dict settings {state.get('config')} "
                             f"differ from {self._settings()}")
        self._buf = state["counts"].to(device=self._buf.device, dtype=self._buf.dtype).clone()
        self.num_steps = self._buf.shape[0]
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self._buf.dtype

    @property
    def device(self) -> torch.device:
        return self._buf.device

    # -- results -----------------------------------------------------------------------------
    @property
    def mutual_information(self) -> torch.Tensor:
        """(S,) float64 plug-in MI in nats per step; NaN for a step with no counts."""
        counts = self.counts
        if counts.shape[0] == 0:
            return torch.zeros(0, dtype=torch.float64, device=counts.device)
        mi = dispatch.histogram_mutual_information(counts).to(torch.float64)
        empty = counts.to(torch.float64).sum(dim=(1, 2)) == 0
        return torch.where(empty, float("nan"), mi)
