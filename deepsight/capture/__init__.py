"""Capture: hooks that reduce activations (and gradients) at chosen modules straight into
statistics on the layer's device, with early exit and length-bucketed batches.

- :class:`CaptureSpec` — what to capture: site, layers, token reduction
- :class:`Capture` — context manager registering the hooks; ``forward`` (scan, early exit),
  ``generate`` (per-row step capture), ``shared_prefix`` (tokens every row starts with, run once)
- :class:`CaptureEvent` — what a sink receives (``value``, ``rows``, ``mask``, ``take(meta)``)
- :func:`iter_batches`, :func:`length_buckets`, :func:`pad_batch` — token-budget batching
- :class:`GradCapture` — per-sample |gradient| sums of linear layers (SPIN)

See docs/engine.md.
"""

from deepsight.capture.batching import Batch, iter_batches, length_buckets, pad_batch
from deepsight.capture.engine import Capture, CaptureEvent, SharedPrefix, common_prefix_length, truncated_forward
from deepsight.capture.gradients import GradCapture
from deepsight.capture.spec import REDUCTIONS, SITES, CaptureSpec

__all__ = [
    "REDUCTIONS",
    "SITES",
    "Batch",
    "Capture",
    "CaptureEvent",
    "CaptureSpec",
    "GradCapture",
    "SharedPrefix",
    "common_prefix_length",
    "iter_batches",
    "length_buckets",
    "pad_batch",
    "truncated_forward",
]
