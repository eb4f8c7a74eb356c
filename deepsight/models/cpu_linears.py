"""Pre-packed oneDNN weights for the ``nn.Linear`` layers of a float32 model on the CPU.

A plain ``F.linear`` on the CPU calls MKL's sgemm, which re-packs the weight matrix on every
call: for the few rows of a decoding step that packing costs more than the product itself (the
LM head of SmolLM2, 49152 x 576, took 16.6 ms for 4 rows, 3.6 ms pre-packed), and even for
1024-row scan batches oneDNN's pre-packed kernel runs ~15% faster (220 vs 190 GFLOP/s on the
2-core dev machine). ``packed_cpu_linears(model)`` packs every eligible weight once
(``torch.ops.mkldnn._reorder_linear_weight``, the op torch's own CPU compiler uses) and routes
the layer's forward through ``torch.ops.mkldnn._linear_pointwise`` until the context exits.

Numbers stay float32 (different summation order: ~1e-6 relative, checked against ``F.linear``
when packing). Gradients flow to the inputs (SPIN's backward passes deltas through frozen
layers: W^T is packed the first time it is needed); a layer whose weight requires grad runs the
plain ``F.linear``; a weight changed in place is packed again before its next use. The packed
copies cost one more copy of the weights (two after a backward), so packing is skipped when that
would not fit in a quarter of the free memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("deepsight")

_HINT_ROWS = 1024  # oneDNN's layout hint: the typical rows of a scan batch (decoding rows run fast too)


def packing_available() -> bool:
    """True when this torch build has oneDNN and the two linear ops used here."""
    ops = torch.ops.mkldnn
    return bool(torch.backends.mkldnn.is_available() and hasattr(ops, "_reorder_linear_weight")
                and hasattr(ops, "_linear_pointwise"))


def _pack(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _HINT_ROWS)


def _packed_product(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


class _PackedLinearFn(torch.autograd.Function):
    """y = x W^T + b with packed W; backward gives the input gradient only (W and b are frozen)."""

    @staticmethod
    def forward(ctx, x, layer):  # noqa: D102
        ctx.layer = layer
        return _packed_product(x, layer.packed, layer.module.bias)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        return _packed_product(grad_out.contiguous(), ctx.layer.packed_t(), None), None


class _PackedLinear:
    """The replacement ``forward`` of one ``nn.Linear`` (an instance attribute, so hooks still run)."""

    def __init__(self, module: nn.Linear):
        self.module = module
        self.packed = _pack(module.weight)
        self._packed_t: torch.Tensor | None = None
        self._version = module.weight._version  # an in-place change of the weight makes the copies stale

    def _refresh(self) -> None:
        if self.module.weight._version != self._version:
            self.packed, self._packed_t = _pack(self.module.weight), None
            self._version = self.module.weight._version

    def packed_t(self) -> torch.Tensor:
        if self._packed_t is None:
            self._packed_t = _pack(self.module.weight.detach().t().contiguous())
        return self._packed_t

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        if x.dtype != torch.float32 or x.device.type != "cpu":
            return F.linear(x, m.weight, m.bias)
        self._refresh()
        if torch.is_grad_enabled():
            if m.weight.requires_grad or (m.bias is not None and m.bias.requires_grad):
                return F.linear(x, m.weight, m.bias)
            if x.requires_grad:
                return _PackedLinearFn.apply(x, self)
        return _packed_product(x, self.packed, m.bias)


def _eligible(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.weight.dtype == torch.float32
            and m.weight.device.type == "cpu" and m.weight.dim() == 2]


def _fits(layers: list[nn.Linear], fraction: float) -> bool:
    need = 2 * sum(m.weight.numel() * 4 for m in layers)  # packed W, and W^T after a backward
    try:
        import psutil

        free = psutil.virtual_memory().available
    except ImportError:  # pragma: no cover
        return True
    return need <= fraction * free


def _agrees(layer: _PackedLinear) -> bool:
    """The packed product equals F.linear on a random input (guards against a changed private op)."""
    m = layer.module
    x = torch.randn(3, 5, m.in_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = F.linear(x.double(), m.weight.double(), None if m.bias is None else m.bias.double())
        got = _packed_product(x, layer.packed, m.bias).double()
    scale = ref.abs().max().clamp_min(1e-30)
    return got.shape == ref.shape and bool(((got - ref).abs().max() / scale) < 1e-4)


class PackedLinears:
    """Packed copies of the eligible linears of ``model``, made once (~0.25 s for SmolLM2-135M; W^T on the
    first backward); ``active()`` routes the layers through them inside its block, as often as needed."""

    def __init__(self, model: nn.Module, enabled: bool = True, memory_fraction: float = 0.25):
        layers = _eligible(model) if enabled and packing_available() else []
        if layers and not _fits(layers, memory_fraction):
            log.info("packed CPU linears skipped: two copies of %d weights exceed %.0f%% of the free memory",
                     len(layers), 100 * memory_fraction)
            layers = []
        self.layers: list[_PackedLinear] = []
        for m in layers:
            p = _PackedLinear(m)
            if not self.layers and not _agrees(p):
                log.warning("packed CPU linears disabled: oneDNN's product disagrees with F.linear")
                break
            self.layers.append(p)

    def __len__(self) -> int:
        return len(self.layers)

    @contextmanager
    def active(self) -> Iterator[int]:
        """Inside the block the packed layers run packed; yields how many."""
        patched: list[nn.Linear] = []
        try:
            for p in self.layers:
                if "forward" in vars(p.module):  # already routed (nested use): leave it to the outer block
                    continue
                p.module.forward = p
                patched.append(p.module)
            yield len(self.layers)
        finally:
            for m in patched:
                del m.forward


@contextmanager
def packed_cpu_linears(model: nn.Module, enabled: bool = True, memory_fraction: float = 0.25) -> Iterator[int]:
    """Route the float32 CPU ``nn.Linear`` layers of ``model`` through pre-packed oneDNN weights inside
    the block; yields how many layers were packed (0 when disabled, unavailable or too big)."""
    with PackedLinears(model, enabled, memory_fraction).active() as n:
        yield n
