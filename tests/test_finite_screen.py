"""capture/finite.py's token screen: the one-read sum test with its exact re-check equals a value-by-value
isfinite check, including finite tokens whose sum overflows, NaN / +-inf anywhere, bf16, masks and empty."""

from __future__ import annotations

import pytest
import torch

from deepsight.capture.finite import _nonfinite_tokens, bad_rows


def _direct(t: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(t).all(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_token_screen_equals_value_by_value_check(dtype):
    g = torch.Generator().manual_seed(11)
    b, t, f = 5, 7, 33
    x = torch.randn(b, t, f, generator=g).to(dtype)
    big = torch.finfo(dtype).max
    x[0, 1] = big  # finite values whose sum overflows: not flagged
    x[1, 2, 5] = float("nan")
    x[2, 0, 0] = float("inf")
    x[2, 0, 1] = -float("inf")  # inf + -inf = nan
    x[3, 6, 32] = -float("inf")
    x[4, 3, :2] = torch.tensor([big, -big], dtype=dtype)
    got = _nonfinite_tokens(x)
    assert torch.equal(got, _direct(x))
    assert got.sum() == 3 and not got[0, 1] and not got[4, 3]


def test_bad_rows_masks_padding_and_handles_empty():
    x = torch.zeros(3, 4, 2)
    x[1, 3, 0] = float("nan")  # padding: ignored
    x[2, 0, 1] = float("inf")
    mask = torch.ones(3, 4, dtype=torch.long)
    mask[1, 3] = 0
    assert torch.equal(bad_rows([x], 3, 4, mask), torch.tensor([False, False, True]))
    assert bad_rows([x[:0]], 0, 4, None) is None
    assert bad_rows([torch.zeros(2, 3, 0)], 2, 3, None) is None
    assert bad_rows([None, torch.ones(2, 3, dtype=torch.long)], 2, 3, None) is None
