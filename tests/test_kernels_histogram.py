"""Joint histogram + plug-in MI: Triton kernel and torch path against direct counting."""

from __future__ import annotations

import math

import pytest
import torch
from _kernels_common import DTYPES, device, odd_size  # noqa: F401
from deepsight.kernels import dispatch
from deepsight.kernels.histogram import histogram_mutual_information, joint_histogram_ref, joint_histogram_triton


def direct_hist(x, y, bins, lo_x, hi_x, lo_y, hi_y):
    """Count pair by pair with the documented fp32 bin formula (clamped edges, degenerate range -> bin 0)."""
    xs = x.detach().cpu().float()
    S, D = xs.shape
    ys = y.detach().cpu().float().expand(S, D)
    counts = torch.zeros(S, bins, bins, dtype=torch.int64)

    def bin_of(v, lo, hi):
        lo32 = torch.tensor(lo, dtype=torch.float32)
        width = torch.tensor(hi, dtype=torch.float32) - lo32
        scale = (bins / width).to(torch.float32) if width > 0 else torch.tensor(0.0)
        f = math.floor(float((v - lo32) * scale))
        return min(max(f, 0), bins - 1)

    for s in range(S):
        for k in range(D):
            a = bin_of(xs[s, k], float(lo_x[s]), float(hi_x[s]))
            b = bin_of(ys[s, k], float(lo_y[s]), float(hi_y[s]))
            counts[s, a, b] += 1
    return counts


def make_case(seed: int, dtype, dev, y_rows: bool, S: int = 3):
    """S odd: each Triton program owns a whole row; S even: rows are split (atomics) in the interpreter."""
    gen = torch.Generator().manual_seed(seed)
    D = odd_size(gen, 20, 90)
    bins = int(torch.randint(3, 8, (1,), generator=gen))
    x = (torch.randn(S, D, generator=gen) * 2).to(dtype).to(dev)
    y = (torch.randn(S, D, generator=gen) if y_rows else torch.randn(D, generator=gen)).to(dtype).to(dev)
    lo_x = torch.full((S,), -1.5)
    hi_x = torch.full((S,), 1.5)
    lo_x[0], hi_x[0] = 0.3, 0.3  # degenerate range: everything in bin 0
    lo_y, hi_y = -1.0, 2.0  # scalar range for y; values outside land in the edge bins
    return x, y, bins, lo_x, hi_x, lo_y, hi_y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("y_rows", [False, True])
@pytest.mark.parametrize("count_dtype", [torch.int32, torch.float32])
def test_triton_matches_direct_counts(device, dtype, y_rows, count_dtype):  # noqa: F811
    x, y, bins, lo_x, hi_x, lo_y, hi_y = make_case(3 + y_rows, dtype, device, y_rows, S=3 + y_rows)
    S = x.shape[0]
    counts0 = torch.randint(0, 1000, (S, bins, bins)).to(count_dtype).to(device)  # poisoned: must add
    counts = counts0.clone()
    joint_histogram_triton(x, y, counts, lo_x.to(device), hi_x.to(device), lo_y, hi_y)
    exp = direct_hist(x, y, bins, lo_x, hi_x, [lo_y] * S, [hi_y] * S)
    assert torch.equal((counts - counts0).cpu().to(torch.int64), exp)
    assert int(exp[0, 1:, :].sum()) == 0, "degenerate x range must use bin 0 only"


def test_per_pair_atomic_fallback(device, monkeypatch):  # noqa: F811
    """The variant used where tl.histogram does not compile gives the same counts."""
    from deepsight.kernels import histogram

    monkeypatch.setattr(histogram, "_local_hist_ok", [False])
    x, y, bins, lo_x, hi_x, lo_y, hi_y = make_case(11, torch.bfloat16, device, True)
    S = x.shape[0]
    counts = torch.full((S, bins, bins), 7, dtype=torch.int32, device=device)
    joint_histogram_triton(x, y, counts, lo_x.to(device), hi_x.to(device), lo_y, hi_y)
    exp = direct_hist(x, y, bins, lo_x, hi_x, [lo_y] * S, [hi_y] * S)
    assert torch.equal((counts - 7).cpu().to(torch.int64), exp)


def test_torch_path_matches_direct_counts():
    x, y, bins, lo_x, hi_x, lo_y, hi_y = make_case(9, torch.float64, "cpu", True)
    S = x.shape[0]
    counts = torch.zeros(S, bins, bins, dtype=torch.int64)
    joint_histogram_ref(x, y, counts, lo_x, hi_x, lo_y, hi_y)
    assert torch.equal(counts, direct_hist(x, y, bins, lo_x, hi_x, [lo_y] * S, [hi_y] * S))
    counts2 = torch.zeros(S, bins, bins, dtype=torch.float64)
    dispatch.joint_histogram_(x, y, counts2, lo_x, hi_x, lo_y, hi_y)  # auto on CPU -> torch
    assert torch.equal(counts2.to(torch.int64), counts)


def direct_mi(c):
    """Float64 double loop over cells: sum p_ab ln(p_ab / (p_a p_b))."""
    c = c.double()
    n = float(c.sum())
    if n == 0:
        return 0.0
    pa = c.sum(1) / n
    pb = c.sum(0) / n
    mi = 0.0
    for a in range(c.shape[0]):
        for b in range(c.shape[1]):
            p = float(c[a, b]) / n
            if p > 0:
                mi += p * math.log(p / (float(pa[a]) * float(pb[b])))
    return mi


def test_mutual_information():
    gen = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 5, (4, 6, 6), generator=gen).to(torch.int32)
    counts[1] = 0  # empty row -> 0
    counts[2] = torch.diag(torch.tensor([3, 1, 4, 1, 5, 9], dtype=torch.int32))  # deterministic pairing
    counts[3] = torch.outer(torch.tensor([1, 2, 0, 3, 1, 1]), torch.tensor([2, 1, 1, 0, 4, 2])).to(torch.int32)
    mi = histogram_mutual_information(counts)
    assert mi.dtype == torch.float64 and mi.shape == (4,)
    for s in range(4):
        assert abs(float(mi[s]) - direct_mi(counts[s])) < 1e-12
    assert float(mi[1]) == 0.0
    p = torch.tensor([3, 1, 4, 1, 5, 9], dtype=torch.float64) / 23
    assert abs(float(mi[2]) - float(-(p * p.log()).sum())) < 1e-12  # MI of a bijection = entropy
    assert abs(float(mi[3])) < 1e-12  # independent (product) counts


def test_bad_shapes():
    x = torch.randn(3, 10)
    with pytest.raises(ValueError, match="y"):
        joint_histogram_ref(x, torch.randn(11), torch.zeros(3, 4, 4), 0.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="counts"):
        joint_histogram_ref(x, torch.randn(10), torch.zeros(3, 4, 5), 0.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="lo_x"):
        joint_histogram_ref(x, torch.randn(10), torch.zeros(3, 4, 4), torch.zeros(2), 1.0, 0.0, 1.0)
