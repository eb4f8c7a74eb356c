#!/usr/bin/env bash
# Install everything the tests need (idempotent), start the services they use, run the whole suite.
#   bash scripts/test.sh [pytest args]
# Services: a real vLLM OpenAI-compatible server (CPU build, own venv) on loopback for the
# `openai` backend tests (DEEPSIGHT_SKIP_VLLM=1 skips it), headless Chromium for the report test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/install.sh --dev

# Benchmark data lives beside the checkout in this workplace; elsewhere set DEEPSIGHT_DATA_DIR.
if [ -z "${DEEPSIGHT_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
    export DEEPSIGHT_DATA_DIR="$(cd ../shared/data && pwd)"
fi

if ! command -v chromium >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed: browser tests will skip"
fi

if [ "${DEEPSIGHT_SKIP_VLLM:-0}" != "1" ] && [ -f scripts/vllm_server.sh ]; then
    if exports=$(bash scripts/vllm_server.sh start); then
        eval "$exports"  # export DEEPSIGHT_VLLM_URL=http://127.0.0.1:PORT/v1
        trap 'bash scripts/vllm_server.sh stop || true' EXIT
    else
        echo "vLLM server did not start: vllm tests will skip" >&2
    fi
fi

set +e
"$PY" -m pytest -q "$@"
code=$?
set -e
[ "$code" = 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$code"
