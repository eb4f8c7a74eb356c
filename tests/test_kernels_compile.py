"""Every Triton kernel variant compiles for Hopper (sm_90) with the real compiler, no GPU needed.

The CPU interpreter runs kernels as numpy code and would not notice what only the compiler
rejects (types, layouts, unsupported ops); tests/_kernels_aot.py compiles each variant in a
separate process, because the interpreter mode is fixed when triton is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton")


def _has_ptxas() -> bool:
    return (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists()


@pytest.mark.skipif(not _has_ptxas(), reason="this triton build ships no ptxas")
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the other kernel tests compile natively")
def test_all_kernels_compile_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # silence triton 3.9's default-change warning
    script = Path(__file__).with_name("_kernels_aot.py")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"compile failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert proc.stdout.count("ok ") >= 15, proc.stdout
