"""Streaming statistics: small mergeable accumulators fed straight from hooks on the model's device.

Each statistic has ``update`` (add a batch), ``merge`` (exact: the two halves give one pass),
``all_reduce(group=None)`` (SUM over torch.distributed processes, any backend), ``state_dict`` /
``load_state_dict``, ``to(device)`` and results as float64 properties. Accumulation is float32
(``dtype="float64"`` on request) whatever the activation dtype; the heavy updates run through
``deepsight.kernels.dispatch`` (Triton on CUDA, torch on CPU).

- :class:`ClassCentroids`: per-class count and sum of pooled vectors -> centroids (X-Boundary)
- :class:`GramMatrix`: total and per-class X^T X, sums, counts -> covariance (TELLME)
- :class:`JointHistogram`: per-step joint 2-D histogram and its plug-in MI (MI-Peaks)
- :class:`GradAbsSum`: per-weight sum of |per-sample gradient|, importance and top-k (SPIN)
- :class:`ExpertRouting`: per part x class x expert MoE selections, gates, router entropy, expert outputs

See docs/engine.md for how a diagnostic wires them to captures.
"""

from deepsight.stats._base import Statistic, all_reduce_sum_, resolve_stat_dtype
from deepsight.stats.centroids import ClassCentroids
from deepsight.stats.experts import ExpertRouting
from deepsight.stats.gradient import GradAbsSum
from deepsight.stats.gram import GramMatrix
from deepsight.stats.histogram import JointHistogram

__all__ = [
    "ClassCentroids",
    "ExpertRouting",
    "GradAbsSum",
    "GramMatrix",
    "JointHistogram",
    "Statistic",
    "all_reduce_sum_",
    "resolve_stat_dtype",
]
