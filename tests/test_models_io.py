"""models/io.pad_id: the one pad-id rule of the engine and the generation backends."""

from __future__ import annotations

from types import SimpleNamespace as NS

from deepsight.models.io import pad_id


def test_pad_id_order_of_preference():
    assert pad_id(NS(pad_token_id=5, eos_token_id=2), {9, 3}) == 5  # the tokenizer's pad id first
    assert pad_id(NS(pad_token_id=None, eos_token_id=2), {9, 3}) == 3  # else the smallest stop id
    assert pad_id(NS(pad_token_id=None, eos_token_id=[7, 4])) == 7  # else the tokenizer's first EOS
    assert pad_id(NS(pad_token_id=None, eos_token_id=2), set()) == 2
    assert pad_id(NS(pad_token_id=0, eos_token_id=2), {1}) == 0  # 0 is a pad id, not "none"
    assert pad_id(NS()) == 0
