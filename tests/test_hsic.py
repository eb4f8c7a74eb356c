"""HSIC MI estimator: the fast routes against the literal float64 formula; histogram MI and Spearman
against numpy / scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepsight.diagnostics.hsic import HSICAnswer, hsic_direct, hsic_mi, hsic_r_matrix
from deepsight.diagnostics.mi_histogram import histogram_mi, spearman


def literal_mi(x: np.ndarray, y: np.ndarray, sigma=50.0, eps=1e-5) -> float:
    """The spec's definition written out in numpy float64 (independent of the torch code)."""
    m = x.size

    def r(v):
        k = np.exp(-((v[:, None] - v[None, :]) ** 2) / (2 * sigma**2))
        h = np.eye(m) - np.ones((m, m)) / m
        kc = k @ h
        return kc @ np.linalg.inv(kc + eps * m * np.eye(m))

    rx, ry = r(x), r(y)
    return float(sum(rx[i, j] * ry[j, i] for i in range(m) for j in range(m))) if m <= 8 else float(
        np.sum(rx * ry.T)
    )


def heavy(shape, scale, seed):
    """Student-t (3 dof) values: heavy tails like LLM activations."""
    return torch.tensor(scale * np.random.default_rng(seed).standard_t(3, size=shape))


def test_direct_matches_numpy_literal():
    for m, seed in ((5, 0), (37, 1)):
        x, y = heavy((m,), 20.0, seed), heavy((m,), 20.0, seed + 10)
        got = hsic_direct(x, y).item()
        assert got == pytest.approx(literal_mi(x.numpy(), y.numpy()), rel=1e-10)


@pytest.mark.parametrize("d,scale", [(16, 1.0), (96, 3.0), (257, 15.0), (576, 40.0)])
def test_fast_matches_direct(d, scale):
    y = heavy((d,), scale, 1)
    states = heavy((9, d), scale, 2)
    states[0, 3] = 30 * scale  # a massive-activation outlier
    states[1] = states[1].mean()  # constant state: zero range
    states[2] = y  # identical to the answer
    est = HSICAnswer(y)
    got = est.mi(states)
    ref = hsic_direct(states, y)
    assert ref[1].abs() < 1e-12 and got[1].abs() < 1e-12  # constant state: Kc = K H = 0, MI = 0
    keep = torch.arange(9) != 1
    rel = ((got - ref).abs() / ref.abs())[keep].max().item()
    assert rel <= 1e-6, (rel, est.stats)
    if d >= 64:
        assert est.stats["low_rank"] > 0


def test_forced_routes_agree():
    d = 120
    y, states = heavy((d,), 10.0, 3), heavy((6, d), 10.0, 4)
    low = HSICAnswer(y, max_rank=400).mi(states)
    direct = HSICAnswer(y, max_rank=1).mi(states)  # rank never small: every state takes the direct route
    ref = hsic_direct(states, y)
    torch.testing.assert_close(direct, ref, rtol=1e-9, atol=0)
    torch.testing.assert_close(low, ref, rtol=1e-6, atol=0)


def test_answer_fallback_and_empty_batch():
    d = 64
    y = heavy((d,), 2000.0, 5)  # huge range: the answer itself is not low rank
    est = HSICAnswer(y)
    assert est.r_y == 0
    states = heavy((3, d), 5.0, 6)
    torch.testing.assert_close(est.mi(states), hsic_direct(states, y), rtol=1e-9, atol=0)
    assert est.mi(torch.zeros(0, d)).shape == (0,)
    assert hsic_mi(states, y).shape == (3,)


def test_r_matrix_definition():
    v = heavy((11,), 30.0, 7)
    r = hsic_r_matrix(v)
    m = 11
    k = torch.exp(-((v[:, None] - v[None, :]) ** 2) / 5000.0)
    kc = k @ (torch.eye(m, dtype=torch.float64) - 1.0 / m)
    torch.testing.assert_close(r @ (kc + 1e-5 * m * torch.eye(m, dtype=torch.float64)), kc, rtol=1e-9, atol=1e-12)


def test_histogram_mi_matches_numpy():
    g = np.random.default_rng(0)
    d, bins = 500, 16
    y = g.standard_t(3, size=d)
    states = np.stack([g.standard_t(3, size=d), 0.5 * y + 0.1 * g.normal(size=d), np.full(d, 2.0)])
    got = histogram_mi(torch.tensor(states), torch.tensor(y), bins)
    for row, v in zip(states, got.tolist()):
        if np.ptp(row) == 0:
            assert v == pytest.approx(0.0, abs=1e-12)
            continue
        c, _, _ = np.histogram2d(row, y, bins=bins, range=[[row.min(), row.max()], [y.min(), y.max()]])
        p = c / c.sum()
        pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        assert v == pytest.approx(float(np.sum(p[nz] * np.log(p[nz] / (pa @ pb)[nz]))), rel=1e-9)
    assert got[1] > got[0]


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = np.random.default_rng(1)
    a = g.normal(size=40)
    b = a + g.normal(size=40)
    b[:5] = b[5]  # ties
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, rel=1e-12)
    assert np.isnan(spearman([1.0], [2.0]))
    assert np.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError):
        spearman([1.0, 2.0], [1.0])


@pytest.mark.parametrize("r", [2, 3, 8, 49])
def test_chebyshev_basis_and_moments_match_the_cosine_form(r):
    from deepsight.diagnostics.hsic import _cheb_basis_and_moments

    s = torch.rand(5, 37, generator=torch.Generator().manual_seed(r), dtype=torch.float64) * 2 - 1
    s[0, 0], s[0, 1] = -1.0, 1.0
    t, mu = _cheb_basis_and_moments(s, r)
    n = torch.arange(2 * r - 1, dtype=torch.float64)
    direct = torch.cos(n[:, None, None] * torch.arccos(s)[None])  # T_n(s) = cos(n arccos s): (2r - 1, B, m)
    torch.testing.assert_close(t, direct[:r], rtol=0, atol=1e-12)
    torch.testing.assert_close(mu, direct.sum(-1).T, rtol=0, atol=1e-10)


def test_many_states_in_chunks_match_direct(monkeypatch):
    from deepsight.diagnostics import hsic

    monkeypatch.setattr(hsic, "LOW_RANK_CHUNK", 7)  # several chunks per rank, one shared workspace
    d = 96
    y = heavy((d,), 3.0, 11)
    states = heavy((40, d), 3.0, 12)
    est = HSICAnswer(y)
    got = est.mi(states)
    assert est.stats["low_rank"] == 40
    ref = hsic_direct(states, y)
    assert ((got - ref).abs() / ref.abs()).max().item() <= 1e-6
