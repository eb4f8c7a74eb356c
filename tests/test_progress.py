"""Progress display: every item passes through, with or without a terminal."""

from __future__ import annotations

import pytest

from deepsight.util import progress


@pytest.mark.parametrize("interactive", [False, True])
def test_track_yields_every_item_in_order(monkeypatch, interactive, capsys):
    monkeypatch.setattr(progress, "is_interactive", lambda: interactive)
    assert list(progress.track(range(7), "work")) == list(range(7))
    assert list(progress.track(iter(["a", "b"]), "work")) == ["a", "b"]  # no len(): no total
    assert list(progress.track([], "nothing")) == []
    if not interactive:  # quiet when not a terminal
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err == ""


def test_track_stops_cleanly_when_the_consumer_breaks(monkeypatch):
    monkeypatch.setattr(progress, "is_interactive", lambda: True)
    seen = []
    for x in progress.track(range(100), "partial"):
        seen.append(x)
        if x == 3:
            break
    assert seen == [0, 1, 2, 3]
