"""capture/sharding.on_rank_zero in one process is a plain call (its 2-rank behaviour is tested with the
experts scan's gloo ranks in test_experts_scale.py)."""

from __future__ import annotations

import pytest

from deepsight.capture.sharding import on_rank_zero


def test_one_process_is_a_plain_call():
    calls = []
    assert on_rank_zero(lambda: (calls.append(1), [1, 2])[1]) == [1, 2] and calls == [1]
    with pytest.raises(ValueError):
        on_rank_zero(lambda: int("x"))
