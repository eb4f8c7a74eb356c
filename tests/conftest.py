"""Shared fixtures: seeded RNG, the data directory, tiny random-weight models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton kernels run in Triton's CPU interpreter where there is no GPU. Triton fixes the
# mode when it is first imported (transformers imports it too), so set it before any test.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# No test downloads benchmark data from the internet: tests of the download cache serve files from a
# loopback server and unset this themselves (tests/test_data_fetch.py).
os.environ.setdefault("DEEPSIGHT_OFFLINE", "1")


def _find_data_dir() -> Path | None:
    env = os.environ.get("DEEPSIGHT_DATA_DIR")
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = Path(__file__).resolve().parent.parent
    candidate = here.parent / "shared" / "data"  # layout of this workplace and CI: ../shared/data
    return candidate if candidate.is_dir() else None


@pytest.fixture
def data_dir() -> Path:
    d = _find_data_dir()
    if d is None:
        pytest.skip("benchmark data not present (set DEEPSIGHT_DATA_DIR)")
    return d


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
