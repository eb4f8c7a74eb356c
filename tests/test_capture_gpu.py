"""The engine on CUDA (Triton statistics kernels, bf16 activations) against the CPU torch path."""

from __future__ import annotations

import pytest
import torch
from _engine_models import random_seqs, tiny_llama
from torch import nn

from deepsight.capture import Capture, CaptureSpec, iter_batches, pad_batch
from deepsight.capture.gradients import GradCapture
from deepsight.stats import ClassCentroids, GradAbsSum, GramMatrix, JointHistogram

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _scan(model, seqs, labels, device):
    stats = {}

    def sink(ev):
        if ev.spec.name == "pool":
            c = stats.setdefault(("pool", ev.layer), ClassCentroids(3, ev.hidden.shape[-1], dtype="float64",
                                                                     device=ev.device, spread=True))  # X-Boundary's
            c.update(ev.hidden, ev.take("labels"), mask=ev.mask, pooling="mean")
        else:
            g = stats.setdefault(("gram", ev.layer), GramMatrix(ev.value.shape[-1], num_classes=3, device=ev.device))
            g.update(ev.value, ev.take("labels"))
            h = stats.setdefault(("hist", ev.layer), JointHistogram(16, (-3, 3), (-3, 3), device=ev.device))
            h.update(ev.value.float(), ev.value[0].float())

    specs = [CaptureSpec("block_output", [0, 2], "none", name="pool"), CaptureSpec("block_output", [1], "last")]
    with Capture(model, specs, sink) as cap:
        for b in iter_batches(seqs, max_batch_tokens=64, pad_id=0, device=device):
            cap.forward(b.input_ids, b.attention_mask, labels=labels[b.index].to(device))
    return stats


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_scan_matches_cpu(dtype):
    seqs = random_seqs([5, 17, 9, 30, 2, 11, 23, 8], 101)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    cpu = _scan(tiny_llama(), seqs, labels, torch.device("cpu"))
    gpu_model = tiny_llama().to("cuda", dtype)
    gpu = _scan(gpu_model, seqs, labels, torch.device("cuda"))
    tol = dict(rtol=1e-3, atol=1e-3) if dtype == torch.float32 else dict(rtol=5e-2, atol=5e-2)
    for key in cpu:
        assert gpu[key].device.type == "cuda"
        if key[0] == "pool":
            torch.testing.assert_close(gpu[key].centroids.cpu(), cpu[key].centroids, **tol)
            scale = cpu[key].sq_norm_sums.max()  # squared norms from the same fused kernel (fp64 accumulators)
            torch.testing.assert_close(gpu[key].sq_norm_sums.cpu() / scale, cpu[key].sq_norm_sums / scale, **tol)
        elif key[0] == "gram":
            scale = cpu[key].gram.abs().max()
            torch.testing.assert_close(gpu[key].gram.cpu() / scale, cpu[key].gram / scale, **tol)
        elif dtype == torch.float32:  # bin edges may flip under bf16 rounding
            assert (gpu[key].counts.cpu() - cpu[key].counts).abs().sum() <= 4


def test_cuda_grad_capture_matches_cpu():
    seqs = random_seqs([6, 9, 4], 101)
    results = []
    for device in ("cpu", "cuda"):
        model = tiny_llama(layers=2, hidden=32).to(device)
        mods = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and "layers.1.mlp" in n}
        stats = {n: GradAbsSum(m.weight.shape, device=device) for n, m in mods.items()}
        ids, mask = pad_batch(seqs, 0)
        ids, mask = ids.to(device), mask.to(device)
        with GradCapture(model, mods, stats) as gc:
            gc.token_mask = mask
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            ce = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
            ((ce * mask[:, 1:]).sum(1) / mask[:, 1:].sum(1)).sum().backward()
        results.append({n: s.total.cpu() for n, s in stats.items()})
    for n in results[0]:
        torch.testing.assert_close(results[1][n], results[0][n], rtol=1e-3, atol=1e-5)
