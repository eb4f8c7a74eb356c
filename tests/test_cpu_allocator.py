"""glibc malloc thresholds (deepsight/models/cpu_allocator.py): freed tensor memory is reused, not page-faulted again.

Each measurement runs in a fresh interpreter: the setting is process-wide and cannot be undone.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from deepsight.models.cpu_allocator import user_chose_allocator

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")

# Transient activations whose size changes from batch to batch (prefill widths, a growing KV length): glibc's
# default serves each size above its dynamic mmap threshold (raised only to the last freed size) with fresh
# pages; with the thresholds fixed the freed heap is reused and only the growth is new memory.
_CHURN = """
import json, os, resource, sys, torch
tuned = None
if sys.argv[1] == "tuned":
    from deepsight.models.cpu_allocator import keep_freed_memory
    tuned = keep_freed_memory()
def layer(rows):
    a = torch.empty(rows, 1536); a.fill_(1.0)
    b = torch.empty(rows, 1536); b.fill_(2.0)
    c = torch.empty(rows, 1536); c.copy_(a).mul_(b)
    return float(c[-1, -1])
layer(600)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
total = sum(layer(700 + 10 * i) for i in range(30))
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": tuned, "faults": faults, "total": total}))
"""


def _churn(mode: str) -> dict:
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_freed_activations_are_reused_without_page_faults():
    tuned = _churn("tuned")
    assert tuned["tuned"] is True
    assert tuned["total"] == 30 * 2.0  # the product of the layer is unchanged
    pages = sum(3 * (700 + 10 * i) * 1536 * 4 // 4096 for i in range(30))  # every tensor in fresh memory
    assert tuned["faults"] < 0.1 * pages, tuned
    plain = _churn("plain")
    if plain["faults"] < 0.5 * pages:  # this glibc already keeps the memory: nothing to compare against
        pytest.skip(f"the default allocator kept the memory here too ({plain['faults']} faults)")
    assert tuned["faults"] < 0.1 * plain["faults"], (tuned, plain)


def test_users_allocator_choice_wins():
    assert user_chose_allocator({}) is None
    assert user_chose_allocator({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}) == "jemalloc is preloaded"
    assert user_chose_allocator({"MALLOC_TRIM_THRESHOLD_": "0"}) == "MALLOC_TRIM_THRESHOLD_ is set"
    assert user_chose_allocator({"LD_PRELOAD": "libfoo.so"}) is None


@glibc_only
def test_fast_paths_report_the_allocator_setting():
    import torch

    from deepsight.models.cpu_fast_paths import cpu_fast_paths

    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with cpu_fast_paths(model, enabled=False) as off:
        assert off["malloc_keeps_freed"] is False
    with cpu_fast_paths(model) as on:
        assert on["malloc_keeps_freed"] is (user_chose_allocator() is None)
