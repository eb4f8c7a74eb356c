"""The CuPy joint-histogram kernel (shared-memory atomics): nvcc compile check of every variant where
nvcc exists (no GPU needed), and on a GPU with cupy the exact counts of the torch reference."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from deepsight.kernels import dispatch, histogram_cuda
from deepsight.kernels.histogram import joint_histogram_ref


def _nvcc() -> str | None:
    for cand in (shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).exists():
            return cand
    return None


# every input dtype and every count dtype at least once (each nvcc call takes seconds)
VARIANTS = [(torch.float32, torch.int64), (torch.float16, torch.float64), (torch.bfloat16, torch.int32),
            (torch.bfloat16, torch.float32)]


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not installed")
def test_cuda_source_compiles_for_sm90(tmp_path):
    assert {i for i, _ in VARIANTS} == set(histogram_cuda.INPUT_TYPES)
    assert {c for _, c in VARIANTS} == set(histogram_cuda.COUNT_TYPES)
    for input_dtype, count_dtype in VARIANTS:
        src = tmp_path / "joint_histogram.cu"
        src.write_text(histogram_cuda.cuda_source(input_dtype, count_dtype))
        out = tmp_path / "joint_histogram.ptx"
        proc = subprocess.run([_nvcc(), "-arch=sm_90", "--ptx", "-o", str(out), str(src)], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"{input_dtype}/{count_dtype}:\n{proc.stderr[-3000:]}"
        assert ".entry joint_histogram_smem" in out.read_text()


def test_unavailable_without_cupy_or_cuda_falls_back():
    if not histogram_cuda.available():
        x = torch.randn(3, 50)
        counts = torch.zeros(3, 4, 4)
        assert not histogram_cuda.supports(x, x[0], counts)  # CPU tensors: never this kernel
        dispatch.joint_histogram_(x, x[0], counts, -1.0, 1.0, -1.0, 1.0)  # the torch path
        assert counts.sum() == 150


needs_gpu = pytest.mark.skipif(not histogram_cuda.available(), reason="needs CUDA and cupy")


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("count_dtype", [torch.int32, torch.int64, torch.float32, torch.float64])
@pytest.mark.parametrize("S,D,bins", [(1, 5000, 32), (7, 1001, 8), (300, 577, 32), (2, 3, 1), (5, 40000, 50)])
def test_matches_torch_reference(dtype, count_dtype, S, D, bins):
    g = torch.Generator().manual_seed(S * 1000 + D + bins)
    x = (torch.randn(S, D, generator=g) * 2).to(dtype).cuda()
    y = torch.randn(D, generator=g).to(dtype).cuda()
    lo_x, hi_x = x.float().amin(1), x.float().amax(1)
    init = torch.randint(0, 5, (S, bins, bins), generator=g).to(count_dtype)
    got, ref = init.cuda(), init.clone()
    histogram_cuda.joint_histogram_cuda(x, y, got, lo_x, hi_x, -2.5, 2.5)
    joint_histogram_ref(x.cpu(), y.cpu(), ref, lo_x.cpu(), hi_x.cpu(), -2.5, 2.5)
    assert torch.equal(got.cpu(), ref)
    # per-row y with strides (a transposed view) and split rows
    y2 = torch.randn(D, S, generator=g).to(dtype).cuda().T
    got2, ref2 = torch.zeros(S, bins, bins, dtype=count_dtype, device="cuda"), torch.zeros(S, bins, bins,
                                                                                          dtype=count_dtype)
    histogram_cuda.joint_histogram_cuda(x, y2, got2, -3.0, 3.0, -1.0, 1.0)
    joint_histogram_ref(x.cpu(), y2.cpu(), ref2, -3.0, 3.0, -1.0, 1.0)
    assert torch.equal(got2.cpu(), ref2)


@needs_gpu
@pytest.mark.gpu
def test_dispatch_takes_the_cuda_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(histogram_cuda, "joint_histogram_cuda", lambda *a: calls.append(1))
    x = torch.randn(4, 100, device="cuda")
    dispatch.joint_histogram_(x, x[0], torch.zeros(4, 8, 8, device="cuda"), -1.0, 1.0, -1.0, 1.0)
    assert calls == [1]
