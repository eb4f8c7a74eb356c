"""Shared machinery of the streaming statistics: dtype choice, exact merge, all_reduce, state dicts.

A statistic is a handful of accumulator tensors that only ever grow by *addition*
(sums, counts, Gram matrices, histogram counts). That makes merge exact: merging
the states of two halves of the data is the same addition a single pass performs,
and ``all_reduce`` is a SUM over processes. Subclasses list their accumulators in
``_state`` and their scalar settings in ``_config``; everything else lives here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from deepsight.errors import ConfigError

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "fp32": torch.float32, "fp64": torch.float64}


def resolve_stat_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """``hardware.stat_dtype`` -> torch dtype; accumulation is float32 or float64, never lower."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"hardware.stat_dtype={dtype} must be float32 or float64")
        return dtype
    if dtype not in _DTYPES:
        raise ConfigError(f"hardware.stat_dtype={dtype!r} must be 'float32' or 'float64'")
    return _DTYPES[dtype]


def all_reduce_sum_(tensor: torch.Tensor, group: Any = None, op: Any = None) -> torch.Tensor:
    """In-place SUM (or ``op``) over the processes of ``group``, whatever the backend and device.

    NCCL only reduces CUDA tensors: a CPU accumulator is staged through the current CUDA
    device and copied back. Gloo reduces CPU and CUDA tensors of float32/float64.
    """
    op = dist.ReduceOp.SUM if op is None else op
    backend = dist.get_backend(group)
    if backend == "nccl" and tensor.device.type != "cuda":
        staged = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(staged, op=op, group=group)
        tensor.copy_(staged)
        return tensor
    if not tensor.is_contiguous():
        staged = tensor.contiguous()
        dist.all_reduce(staged, op=op, group=group)
        tensor.copy_(staged)
        return tensor
    dist.all_reduce(tensor, op=op, group=group)
    return tensor


class Statistic:
    """Base of the mergeable accumulators: subclasses set ``_state`` (tensor attribute names)
    and ``_config`` (scalar settings that must agree for a merge)."""

    _state: tuple[str, ...] = ()
    _config: tuple[str, ...] = ()

    # -- helpers for subclasses ------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self._state}

    def _settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._config}

    @property
    def device(self) -> torch.device:
        return getattr(self, self._state[0]).device

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self, self._state[0]).dtype

    def _check_compatible(self, other: Statistic) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other._settings() != self._settings():
            raise ValueError(f"cannot merge {type(self).__name__} with settings {other._settings()} "
                             f"into one with {self._settings()}")

    # -- public API ------------------------------------------------------------------------
    def merge(self, other: Statistic) -> Statistic:
        """Add ``other``'s state into this one (exact: same as one pass over both data sets)."""
        self._check_compatible(other)
        for name, mine in self._tensors().items():
            theirs = getattr(other, name)
            assert mine.shape == theirs.shape, f"{name}: {tuple(mine.shape)} vs {tuple(theirs.shape)}"
            mine.add_(theirs.to(device=mine.device, dtype=mine.dtype))
        return self

    def all_reduce(self, group: Any = None) -> Statistic:
        """Sum the state over all processes of ``group`` (torch.distributed, any backend); no-op
        when torch.distributed is not initialised."""
        if not (dist.is_available() and dist.is_initialized()):
            return self
        for tensor in self._tensors().values():
            all_reduce_sum_(tensor, group)
        return self

    def reset(self) -> Statistic:
        for tensor in self._tensors().values():
            tensor.zero_()
        return self

    def to(self, device: torch.device | str) -> Statistic:
        for name, tensor in self._tensors().items():
            setattr(self, name, tensor.to(device))
        return self

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: t.detach().clone() for name, t in self._tensors().items()}
        out["config"] = self._settings()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> Statistic:
        config = state.get("config", {})
        if config != self._settings():
            raise ValueError(f"{type(self).__name__}: state dict settings {config} differ from {self._settings()}")
        for name, mine in self._tensors().items():
            t = state[name]
            if t.shape != mine.shape:
                raise ValueError(f"{type(self).__name__}.{name}: state shape {tuple(t.shape)} != {tuple(mine.shape)}")
            mine.copy_(t.to(device=mine.device, dtype=mine.dtype))
        return self

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings}, dtype={self.dtype}, device={self.device})"
