#!/usr/bin/env bash
# The engine at real model size on one H100/H200, in under 8 minutes: Qwen3-30B-A3B's dimensions with random
# bf16 weights built on the GPU (12 of its 48 blocks by default), synthetic batches of 128..1024 tokens;
# X-Boundary + TELLME captures against the bare truncated forward (overhead) and the reference procedure
# (speed-up), SPIN for one layer group, MI-Peaks generation, the experts capture when present; tokens/s and
# peak memory of each; the device's measured matmul rate and bandwidth for `deepsight plan`.
# Usage: bash benchmarks/gpu_scale.sh [--layers N] [...]       (PYTHON=... picks the interpreter)
#        bash benchmarks/gpu_scale.sh --tiny                    (the same on CPU with tiny dimensions: CI)
# Results: the RESULT line (JSON); record GPU numbers in benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
unset TRITON_INTERPRET
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 470 "$PY" benchmarks/gpu_scale.py "$@"
