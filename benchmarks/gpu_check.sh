#!/usr/bin/env bash
# GPU check of the Triton kernels, for a lent CUDA machine (H100/H200), in well under 8 minutes:
#   1. tests/test_kernels_*.py and tests/test_capture_gpu.py natively on CUDA (TRITON_INTERPRET unset;
#      bf16 operands reach tl.dot)
#   2. benchmarks/kernels.py --quick --sweep (Triton vs torch, GB/s vs the measured D2D copy, TFLOP/s;
#      then each kernel's CUDA_LAUNCH alternatives, fastest first); with cupy installed (pip install cupy-cuda13x
#      or the "gpu" extra) the joint histogram's CUDA kernel with shared-memory atomics too (row cuda-smem,
#      target >= 0.6 of copy) and its exact-count test tests/test_kernels_histogram_cuda.py
#   3. benchmarks/capture_overhead.py --quick
# then a short table of each step's status and time (step limits 180 + 200 + 100 s: < 8 min in all).
# Exit status: non-zero if a step failed.
# Usage (from anywhere): bash benchmarks/gpu_check.sh     (PYTHON=... to pick the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$(command -v python3 || command -v python)}
unset TRITON_INTERPRET
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export DEEPSIGHT_BENCH_QUICK=1

# deepsight.kernels is the folder kernels/ mapped by setup.py; without an install, link it in for this run.
LINKED=""
if ! "$PY" -c "import deepsight.kernels.dispatch" 2>/dev/null; then
    if [ ! -e deepsight/kernels ]; then
        ln -s ../kernels deepsight/kernels && LINKED=deepsight/kernels
        trap '[ -n "$LINKED" ] && rm -f "$LINKED"' EXIT
    fi
fi

"$PY" - <<'EOF'
import torch, triton
p = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None
print(f"torch {torch.__version__}  triton {triton.__version__}  device: {p.name if p else 'NO CUDA'}"
      + (f" ({p.multi_processor_count} SMs)" if p else ""))
try:
    import cupy
    print(f"cupy {cupy.__version__}: joint histogram through the CUDA shared-memory kernel")
except Exception as e:
    print(f"no cupy ({type(e).__name__}): joint histogram through Triton; pip install cupy-cuda13x to time cuda-smem")
EOF

names=(); codes=(); secs=()
step() {  # step NAME TIMEOUT_S CMD...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "=== $name"
    timeout "$limit" "$@"
    local rc=$?
    names+=("$name"); codes+=("$rc"); secs+=($((SECONDS - t0)))
}

# Kernel compilation dominates the test time: spread the tests over a few processes when xdist is there.
XDIST=()
if "$PY" -c "import xdist" 2>/dev/null; then XDIST=(-n 8); fi
step "kernel tests" 180 "$PY" -m pytest tests/test_kernels_*.py tests/test_capture_gpu.py -q -p no:cacheprovider \
    -rfE "${XDIST[@]}"
step "kernel benchmarks" 200 "$PY" benchmarks/kernels.py --quick --sweep
step "capture overhead" 100 "$PY" benchmarks/capture_overhead.py --quick
step "expert routing kernel" 60 "$PY" benchmarks/experts_overhead.py --kernel --quick

echo
printf '%-24s %-8s %s\n' step status seconds
status=0
for i in "${!names[@]}"; do
    if [ "${codes[$i]}" = 0 ]; then s=ok; else s="FAIL(${codes[$i]})"; status=1; fi
    printf '%-24s %-8s %s\n' "${names[$i]}" "$s" "${secs[$i]}"
done
printf '%-24s %-8s %s\n' total "" "$SECONDS"
exit $status
