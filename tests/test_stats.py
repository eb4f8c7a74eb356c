"""Streaming statistics against float64 references, on one batch and on the data split in pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepsight.stats import ClassCentroids, GradAbsSum, GramMatrix, JointHistogram


def _pool_ref(h, mask, pooling):
    h, m = h.double(), mask.double()
    if pooling == "sum":
        return (h * m[..., None]).sum(1)
    if pooling == "mean":
        return (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)
    last = torch.tensor([int(np.nonzero(r.numpy())[0][-1]) for r in mask])
    return h[torch.arange(h.shape[0]), last]


@pytest.mark.parametrize("pooling", ["mean", "last", "sum"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_centroids_pooled_tokens(pooling, side):
    b, t, d, k = 9, 7, 13, 3
    h = torch.randn(b, t, d)
    lengths = torch.randint(1, t + 1, (b,))
    pos = torch.arange(t)[None]
    mask = pos < lengths[:, None] if side == "right" else pos >= (t - lengths)[:, None]
    labels = torch.tensor([0, 1, 0, 0, 1, 0, 1, 1, 0])  # class 2 empty
    c = ClassCentroids(k, d).update(h, labels, mask=mask.long(), pooling=pooling)
    pooled = _pool_ref(h, mask, pooling)
    for j in range(2):
        torch.testing.assert_close(c.centroids[j], pooled[labels == j].mean(0), rtol=1e-5, atol=1e-5)
    assert torch.isnan(c.centroids[2]).all()
    assert c.class_counts.tolist() == [5.0, 4.0, 0.0]


def test_centroids_bf16_and_float64_option():
    x = torch.randn(50, 6).to(torch.bfloat16)
    labels = torch.randint(0, 2, (50,))
    c32 = ClassCentroids(2, 6).update(x, labels)
    c64 = ClassCentroids(2, 6, dtype="float64").update(x, labels)
    assert c32.sums.dtype == torch.float32 and c64.sums.dtype == torch.float64
    ref = torch.stack([x.double()[labels == j].mean(0) for j in range(2)])
    torch.testing.assert_close(c64.centroids, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(c32.centroids, ref, rtol=1e-5, atol=1e-6)


def test_centroids_merge_state_dict_and_errors():
    x, labels = torch.randn(40, 5), torch.randint(0, 3, (40,))
    whole = ClassCentroids(3, 5).update(x, labels)
    a = ClassCentroids(3, 5).update(x[:17], labels[:17])
    b = ClassCentroids(3, 5).update(x[17:], labels[17:])
    torch.testing.assert_close(a.merge(b).centroids, whole.centroids, rtol=1e-6, atol=1e-6)
    fresh = ClassCentroids(3, 5).load_state_dict(whole.state_dict())
    assert torch.equal(fresh.sums, whole.sums) and torch.equal(fresh.counts, whole.counts)
    assert ClassCentroids(3, 5).update(x, 1).class_counts.tolist() == [0.0, 40.0, 0.0]
    with pytest.raises(ValueError, match="labels must lie"):
        ClassCentroids(3, 5).update(x, torch.full((40,), 3))
    with pytest.raises(ValueError, match="settings"):
        ClassCentroids(3, 5).merge(ClassCentroids(2, 5))
    with pytest.raises(ValueError):
        ClassCentroids(3, 6).update(x, labels)
    assert ClassCentroids(3, 5).update(x[:0], labels[:0]).class_counts.sum() == 0


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_centroids_spread_pooled_merge_and_state(backend):
    if backend == "triton":
        pytest.importorskip("triton")
    b, t, d, k = 11, 9, 21, 3
    h = torch.randn(b, t, d) + 3.0  # a common offset: the spread subtracts nearly equal numbers
    mask = torch.arange(t)[None] < torch.randint(1, t + 1, (b,))[:, None]
    mask[4] = False  # no valid token: not counted
    labels = torch.arange(b) % k
    c = ClassCentroids(k, d, dtype="float64", spread=True, backend=backend)
    c.update(h[:6], labels[:6], mask=mask[:6].long()).update(h[6:], labels[6:], mask=mask[6:].long())
    pooled = _pool_ref(h, mask, "mean")
    keep = mask.any(1)
    for j in range(k):
        rows = pooled[keep & (labels == j)]
        torch.testing.assert_close(c.centroids[j], rows.mean(0), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(c.within_class_ss[j], ((rows - rows.mean(0)) ** 2).sum(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c.sq_norm_sums[j], (rows * rows).sum(), rtol=1e-6, atol=1e-6)
    assert c.class_counts.tolist() == [float((keep & (labels == j)).sum()) for j in range(k)]
    restored = ClassCentroids(k, d, dtype="float64", spread=True).load_state_dict(c.state_dict())
    torch.testing.assert_close(restored.within_class_ss, c.within_class_ss, rtol=0, atol=0)
    merged = ClassCentroids(k, d, dtype="float64", spread=True).merge(c).merge(c)
    torch.testing.assert_close(merged.sq_norm_sums, 2 * c.sq_norm_sums, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="settings"):
        merged.merge(ClassCentroids(k, d, dtype="float64"))
    with pytest.raises(ValueError, match="spread=True"):
        _ = ClassCentroids(k, d).within_class_ss


def test_gram_against_float64():
    n, d = 61, 11
    x = torch.randn(n, d) * 3 + 1
    labels = torch.randint(0, 2, (n,))
    g = GramMatrix(d, num_classes=2).update(x, labels)
    xd = x.double()
    torch.testing.assert_close(g.gram, xd.T @ xd, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(g.mean, xd.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g.covariance, torch.from_numpy(np.cov(xd.numpy().T)), rtol=1e-4, atol=1e-4)
    for k in range(2):
        xk = xd[labels == k]
        torch.testing.assert_close(g.class_gram(k), xk.T @ xk, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(g.class_covariance(k), torch.from_numpy(np.cov(xk.numpy().T)), rtol=1e-4, atol=1e-4)
        assert g.class_count(k) == float((labels == k).sum())


@pytest.mark.parametrize("k", [3, 11])  # masked batched product / labelled kernel route
def test_gram_class_routes(k):
    x, labels = torch.randn(40, 7), torch.randint(0, k, (40,))
    g = GramMatrix(7, num_classes=k).update(x[:25], labels[:25]).update(x[25:], labels[25:])
    for j in range(k):
        xj = x.double()[labels == j]
        torch.testing.assert_close(g.class_gram(j), xj.T @ xj, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g.gram, x.double().T @ x.double(), rtol=1e-5, atol=1e-5)


def test_gram_merge_unlabelled_and_degenerate():
    x = torch.randn(30, 4, dtype=torch.float16)
    whole = GramMatrix(4, dtype="float64").update(x)
    parts = [GramMatrix(4, dtype="float64").update(p) for p in x.split(7)]
    for p in parts[1:]:
        parts[0].merge(p)
    torch.testing.assert_close(parts[0].gram, whole.gram, rtol=1e-12, atol=1e-12)
    assert parts[0].count == 30
    one = GramMatrix(4).update(torch.randn(1, 4))
    assert torch.isnan(one.covariance).all()
    with pytest.raises(ValueError, match="labels"):
        GramMatrix(4).update(torch.randn(2, 4), torch.tensor([0, 1]))


def _hist_ref(x, y, bins, rx, ry):
    out = []
    for s in range(x.shape[0]):
        yy = y if y.dim() == 1 else y[s]
        ix = np.clip(np.floor((x[s].double().numpy() - rx[0]) / (rx[1] - rx[0]) * bins), 0, bins - 1).astype(int)
        iy = np.clip(np.floor((yy.double().numpy() - ry[0]) / (ry[1] - ry[0]) * bins), 0, bins - 1).astype(int)
        c = np.zeros((bins, bins))
        np.add.at(c, (ix, iy), 1)
        out.append(c)
    return np.stack(out)


def _mi_ref(c):
    p = c / c.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())


def test_joint_histogram_and_mi():
    s, d, bins = 5, 301, 8
    y = torch.randn(d)
    x = 0.7 * y + 0.5 * torch.randn(s, d)  # correlated, some values outside the range (clamped)
    h = JointHistogram(bins, (-2, 2), (-2.5, 2.5)).update(x, y)
    ref = _hist_ref(x, y, bins, (-2, 2), (-2.5, 2.5))
    np.testing.assert_array_equal(h.counts.numpy(), ref)
    np.testing.assert_allclose(h.mutual_information.numpy(), [_mi_ref(c) for c in ref], rtol=1e-10)
    indep = JointHistogram(bins, (-2, 2), (-2, 2)).update(torch.randn(1, d), torch.randn(d))
    assert indep.mutual_information[0] < h.mutual_information.min()


def test_joint_histogram_steps_grow_and_merge():
    d, bins = 40, 4
    y = torch.randn(d)
    xs = torch.randn(7, d)
    whole = JointHistogram(bins, (-1, 1), (-1, 1)).update(xs, y)
    a = JointHistogram(bins, (-1, 1), (-1, 1))
    for s in range(3):  # step by step, as in generation
        a.update(xs[s], y, step=s)
    b = JointHistogram(bins, (-1, 1), (-1, 1)).update(xs[3:], y, step=3)
    assert a.num_steps == 3 and b.num_steps == 7
    a.merge(b)
    assert torch.equal(a.counts, whole.counts)
    # per-step y, and merge of a longer into a shorter histogram accumulates
    y2 = torch.randn(7, d)
    c = JointHistogram(bins, (-1, 1), (-1, 1)).update(xs, y2)
    np.testing.assert_array_equal(c.counts.numpy(), _hist_ref(xs, y2, bins, (-1, 1), (-1, 1)))
    restored = JointHistogram(bins, (-1, 1), (-1, 1)).load_state_dict(c.state_dict())
    assert torch.equal(restored.counts, c.counts)
    empty = JointHistogram(bins, (-1, 1), (-1, 1), num_steps=2)
    assert torch.isnan(empty.mutual_information).all()
    with pytest.raises(ValueError):
        JointHistogram(bins, (1, -1), (-1, 1))


def test_joint_histogram_data_ranges():
    s, d, bins = 6, 97, 5
    x = torch.randn(s, d) * torch.linspace(0.5, 3, s)[:, None] + 1  # every row its own spread
    y = torch.randn(d) * 2
    h = JointHistogram(bins, None, None).update(x, y)
    y_range = (float(y.min()), float(y.max()))
    for r in range(s):
        ref = _hist_ref(x[r : r + 1], y, bins, (float(x[r].min()), float(x[r].max())), y_range)
        np.testing.assert_array_equal(h.counts[r].numpy(), ref[0])
        assert h.counts[r, -1].sum() >= 1 and h.counts[r, :, -1].sum() >= 1  # each maximum lands in the last bin
    y2 = torch.randn(s, d)  # per-row y: its own row ranges
    h2 = JointHistogram(bins, (-4, 4), None).update(x, y2)
    for r in range(s):
        ref = _hist_ref(x[r : r + 1], y2[r : r + 1], bins, (-4, 4), (float(y2[r].min()), float(y2[r].max())))
        np.testing.assert_array_equal(h2.counts[r].numpy(), ref[0])
    assert JointHistogram(bins, None, None).merge(h).counts.sum() == s * d


def _per_sample_abs_grad(delta, x, mask):
    acc = torch.zeros(delta.shape[-1], x.shape[-1], dtype=torch.float64)
    for s in range(delta.shape[0]):
        w = torch.zeros(delta.shape[-1], x.shape[-1], dtype=torch.float64, requires_grad=True)
        keep = mask[s].bool()
        y = x[s][keep].double() @ w.T  # (T_s, O)
        (y * delta[s][keep].double()).sum().backward()  # dL_s/dW for an output gradient delta
        acc += w.grad.abs()
    return acc


def test_grad_abs_sum_matches_per_sample_autograd():
    s, t, o, i = 4, 6, 9, 7
    delta, x = torch.randn(s, t, o), torch.randn(s, t, i)
    mask = torch.ones(s, t, dtype=torch.long)
    mask[1, 4:] = 0
    mask[3, :2] = 0
    g = GradAbsSum((o, i)).update(delta, x, mask)
    ref = _per_sample_abs_grad(delta, x, mask)
    torch.testing.assert_close(g.total, ref, rtol=1e-5, atol=1e-5)
    assert float(g.samples) == s
    one_by_one = GradAbsSum((o, i))
    for k in range(s):
        one_by_one.update(delta[k], x[k], mask[k])
    torch.testing.assert_close(one_by_one.total, g.total, rtol=1e-6, atol=1e-6)
    # importance and top-k
    w = torch.randn(o, i)
    imp = w.double().abs() * g.total
    vals, idx = g.topk(w, 5)
    ref_vals, _ = torch.topk(imp.flatten(), 5)
    torch.testing.assert_close(vals, ref_vals, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(imp.flatten()[idx], vals, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g.importance(w), imp)


def test_grad_abs_sum_wide_weight_stored_transposed():
    """O < I on a CPU: the sums live in an (I, O) array (faster BLAS products) behind the same (O, I) API."""
    s, t, o, i = 3, 5, 4, 11
    delta, x = torch.randn(s, t, o), torch.randn(s, t, i)
    mask = torch.ones(s, t, dtype=torch.long)
    mask[0, 3:] = 0
    g = GradAbsSum((o, i)).update(delta, x, mask)
    assert g.acc.shape == (o, i) and not g.acc.is_contiguous() and g.acc.T.is_contiguous()
    ref = _per_sample_abs_grad(delta, x, mask)
    torch.testing.assert_close(g.total, ref, rtol=1e-5, atol=1e-5)
    w = torch.randn(o, i)
    vals, idx = g.topk(w, 6)  # flat indices over the (O, I) matrix, whatever the storage
    torch.testing.assert_close((w.double().abs() * ref).flatten()[idx], vals, rtol=1e-5, atol=1e-6)
    # merge, state dicts and full gradients across layouts
    plain = GradAbsSum((o, i))
    plain.acc = plain.acc.contiguous()
    plain.update(delta[:1], x[:1], mask[:1]).update_grad(torch.randn(o, i))
    both = ref + plain.total
    torch.testing.assert_close(g.merge(plain).total, both, rtol=1e-5, atol=1e-5)
    restored = GradAbsSum((o, i)).load_state_dict(g.state_dict())
    torch.testing.assert_close(restored.total, g.total, rtol=0, atol=0)
    plain.update(delta, x, mask)  # a contiguous accumulator keeps the plain orientation
    assert plain.acc.is_contiguous()


def test_grad_abs_sum_edges_merge_and_fused_shape():
    g = GradAbsSum((3, 4))
    assert g.topk(torch.randn(3, 4), 2)[1].numel() == 0  # no gradient seen
    g.update(torch.randn(2, 5, 3), torch.randn(2, 5, 4))
    assert g.topk(torch.randn(3, 4), 0)[1].numel() == 0
    h = GradAbsSum((3, 4)).update(torch.randn(1, 2, 3), torch.randn(1, 2, 4))
    total = g.total + h.total
    torch.testing.assert_close(g.merge(h).total, total)
    assert float(g.samples) == 3
    fused = GradAbsSum((2, 3, 4))
    grads = torch.randn(3, 2, 3, 4)
    for gr in grads:
        fused.update_grad(gr)
    torch.testing.assert_close(fused.total, grads.double().abs().sum(0), rtol=1e-6, atol=1e-6)
    w = torch.randn(2, 3, 4)
    vals, idx = fused.topk(w, 4)
    torch.testing.assert_close(vals, torch.topk((w.double().abs() * fused.total).flatten(), 4).values,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        fused.update(torch.randn(1, 2, 3), torch.randn(1, 2, 4))
