"""Gram accumulation (upper tiles + mirror): Triton kernel and torch path against float64."""

from __future__ import annotations

import pytest
import torch
from _kernels_common import DTYPES, assert_close64, device, odd_size, poison_like, randn  # noqa: F401
from deepsight.kernels import dispatch
from deepsight.kernels.gram import gram_update_ref, gram_update_triton


def direct_gram(x, labels, K):
    """Float64 sums of outer products row by row."""
    xd = x.detach().cpu().double()
    N, D = xd.shape
    gram = torch.zeros(D, D, dtype=torch.float64)
    classes = torch.zeros(K, D, D, dtype=torch.float64)
    for n in range(N):
        outer = torch.outer(xd[n], xd[n])
        gram += outer
        if labels is not None and labels[n] >= 0:
            classes[labels[n]] += outer
    return gram, classes


def make_case(seed: int, dtype, dev):
    gen = torch.Generator().manual_seed(seed)
    N = odd_size(gen, 20, 70)
    D = odd_size(gen, 17, 40)
    K = 4  # labels from {-1, 0, 1, 2}: class 3 stays empty
    x = randn(gen, N, 2 * D, dtype=dtype, device=dev)[:, ::2]  # (N, D), strided columns
    labels = torch.randint(-1, 3, (N,), generator=gen).to(dev)
    return x, labels, K


@pytest.mark.parametrize("dtype", DTYPES + [torch.float16])
@pytest.mark.parametrize("seed", [1, 2])
def test_triton_matches_float64(device, dtype, seed):  # noqa: F811
    x, labels, K = make_case(seed, dtype, device)
    D = x.shape[1]
    gen = torch.Generator().manual_seed(seed + 50)
    gram = poison_like((D, D), torch.float32, device, gen)  # large values: the op must add, not overwrite
    gram = gram + gram.T  # a Gram accumulator is symmetric on entry (the split-K path mirrors its upper half)
    classes = poison_like((K, D, D), torch.float32, device, gen)
    classes = classes + classes.mT
    gram0, classes0 = gram.clone(), classes.clone()
    gram_update_triton(x, gram, labels, classes)
    exp_gram, exp_classes = direct_gram(x, labels.cpu(), K)
    assert_close64(gram - gram0, exp_gram, rel=1e-5, what="gram")
    assert_close64(classes - classes0, exp_classes, rel=1e-5, what="class grams")
    assert torch.equal(classes[3], classes0[3]), "the empty class was touched"


def test_result_is_exactly_symmetric(device):  # noqa: F811
    x, labels, K = make_case(3, torch.float32, device)
    D = x.shape[1]
    gram = torch.zeros(D, D, device=device)
    gram_update_triton(x, gram)
    gram_update_triton(x[:5], gram)  # two calls: a short batch too
    assert torch.equal(gram, gram.T), "mirrored tiles must equal the computed ones"
    exp, _ = direct_gram(torch.cat([x, x[:5]]), None, 1)
    assert_close64(gram, exp, rel=1e-5, what="gram")


@pytest.mark.parametrize("n_rows", [1, 16, 41])
def test_both_paths_are_exactly_symmetric_per_class(device, n_rows):  # noqa: F811
    """Bitwise symmetry holds by construction for the total and per-class Grams on both paths, any BLAS."""
    gen = torch.Generator().manual_seed(40 + n_rows)
    D = odd_size(gen, 17, 40)
    x = randn(gen, n_rows, D, dtype=torch.float32, device=device) * 1e3  # large values: rounding differs more
    labels = torch.randint(-1, 2, (n_rows,), generator=gen).to(device)
    for update in (gram_update_triton, gram_update_ref):
        gram = torch.zeros(D, D, device=device)
        classes = torch.zeros(2, D, D, device=device)
        update(x, gram, labels, classes)
        assert torch.equal(gram, gram.T), update.__name__
        assert torch.equal(classes, classes.mT), update.__name__
        exp_gram, exp_classes = direct_gram(x, labels.cpu(), 2)
        assert_close64(gram, exp_gram, rel=1e-5, what="gram")
        assert_close64(classes, exp_classes, rel=1e-5, what="class grams")


def test_fp64_accumulator_and_single_row(device):  # noqa: F811
    x, labels, K = make_case(4, torch.bfloat16, device)
    x1 = x[:1]
    D = x.shape[1]
    gram = torch.zeros(D, D, dtype=torch.float64, device=device)
    classes = torch.zeros(K, D, D, dtype=torch.float64, device=device)
    gram_update_triton(x1, gram, labels[:1], classes)
    exp_gram, exp_classes = direct_gram(x1, labels[:1].cpu(), K)
    assert_close64(gram, exp_gram, rel=1e-6, what="gram")
    assert_close64(classes, exp_classes, rel=1e-6, what="class grams")


@pytest.mark.parametrize("seed", [1, 2])
def test_torch_path_matches_float64(seed):
    x, labels, K = make_case(seed, torch.float64, "cpu")
    D = x.shape[1]
    gram = torch.zeros(D, D, dtype=torch.float64)
    classes = torch.zeros(K, D, D, dtype=torch.float64)
    gram_update_ref(x, gram, labels, classes)
    exp_gram, exp_classes = direct_gram(x, labels, K)
    assert_close64(gram, exp_gram, rel=1e-12, what="gram")
    assert_close64(classes, exp_classes, rel=1e-12, what="class grams")


def test_dispatch_torch_on_cpu_and_checks():
    x, labels, K = make_case(5, torch.bfloat16, "cpu")
    D = x.shape[1]
    gram = torch.zeros(D, D)
    with dispatch.use_backend("torch"):
        dispatch.gram_update_(x, gram, backend="auto")
    exp, _ = direct_gram(x, None, 1)
    assert_close64(gram, exp, rel=1e-5, what="gram")
    with pytest.raises(ValueError, match="together"):
        gram_update_ref(x, gram, labels, None)
    with pytest.raises(ValueError, match="gram"):
        gram_update_ref(x, torch.zeros(D + 1, D + 1), None, None)
    with pytest.raises(ValueError, match="largest label"):
        gram_update_ref(x, gram, torch.full((x.shape[0],), K), torch.zeros(K, D, D))


def test_backend_switch():
    assert dispatch.get_default_backend() == "auto"
    with dispatch.use_backend("torch"):
        assert dispatch.resolve_backend("auto", (torch.zeros(1),)) == "torch"
    assert dispatch.get_default_backend() == "auto"
    with pytest.raises(ValueError, match="kernel backend"):
        dispatch.set_default_backend("cuda")
    with pytest.raises(ValueError, match="kernel backend"):
        dispatch.resolve_backend("gpu", (torch.zeros(1),))


def test_out_of_range_labels_are_ignored_by_the_kernel(device, monkeypatch):  # noqa: F811
    """CUDA labels are not range-checked (that would sync): rows labelled >= K join no class Gram."""
    from deepsight.kernels import gram as gram_module

    monkeypatch.setattr(gram_module, "check_labels", lambda *args: None)  # what happens for CUDA labels
    x, labels, K = make_case(6, torch.float32, device)
    bad = labels.clone()
    bad[:3] = K + 2
    D = x.shape[1]
    g = torch.zeros(D, D, device=device)
    classes = torch.zeros(K, D, D, device=device)
    gram_update_triton(x, g, bad, classes)
    exp_gram, exp_classes = direct_gram(x, torch.where(bad.cpu() >= K, -1, bad.cpu()), K)
    assert_close64(g, exp_gram, rel=1e-5, what="gram")
    assert_close64(classes, exp_classes, rel=1e-5, what="class grams")
