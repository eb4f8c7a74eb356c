"""Image-text requests on the ``vllm`` backend with the real vLLM engine.

A tiny random-weight Idefics3 (the SmolVLM architecture: SigLIP-style vision tower, pixel-shuffle
connector, Llama text model) is built from transformers configs with the default model's
tokenizer and saved with its processor. ``VLLMGenerator`` runs it inside the vLLM venv
(``DEEPSIGHT_VLLM_PYTHON`` or ``<repo>/.venv-vllm``, made by ``scripts/vllm_server.sh install``;
vllm does not import in the main environment) and the answers are checked against the hf
backend's ``HFImageTextGenerator`` on the same files: the prompt token counts include the
expanded image placeholders and the greedy answers agree.

Why Idefics3 and not LLaVA: vLLM's ``llava`` module imports its Pixtral code, which imports
transformers' torchvision-only Pixtral image processor, and the vLLM venv has no torchvision
(scripts/vllm_server.sh removes PyPI's CUDA-built torchvision). vLLM's CPU attention also needs
a head size from 32 up, so the text model has heads of 32.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from _tiny_vlm import TEMPLATE, save_image, save_random_vlm

from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.images import user_turn

pytestmark = pytest.mark.vllm

REPO = Path(__file__).resolve().parent.parent
IMAGE_SEQ_LEN = 4  # (56 / 14)^2 patches, pixel-shuffled by scale_factor 2: 16 / 2^2
MAX_NEW_TOKENS = 8


def _vllm_python() -> Path | None:
    env = os.environ.get("DEEPSIGHT_VLLM_PYTHON")
    candidate = Path(env) if env else REPO / ".venv-vllm" / "bin" / "python"
    return candidate if candidate.is_file() else None


def build_tiny_idefics3(path: Path) -> Path:
    """A random-weight Idefics3 with heads of 32, one 56x56 tile per image (no splitting), 4 image tokens."""
    from transformers import (
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        LlamaConfig,
    )

    from deepsight.models.default_model import ensure_default_model_dir

    tok = AutoTokenizer.from_pretrained(str(ensure_default_model_dir()))
    tok.add_special_tokens({"additional_special_tokens": ["<fake_token_around_image>", "<image>",
                                                          "<end_of_utterance>", "<global-img>"]})
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 56},
                                                max_image_size={"longest_edge": 56})
    proc = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=IMAGE_SEQ_LEN,
                             chat_template=TEMPLATE)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                       tie_word_embeddings=False)
    vision = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 56, "patch_size": 14}
    cfg = Idefics3Config(vision_config=vision, text_config=text.to_dict(), scale_factor=2,
                         image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
                         pad_token_id=tok.pad_token_id)
    return save_random_vlm(Idefics3ForConditionalGeneration, cfg, "connector", proc, path)


ENGINE_SCRIPT = r"""
import json, sys
from deepsight.generation.base import GenerationRequest, SamplingParams
from deepsight.generation.vllm_engine import VLLMGenerator

def main():
    reqs = [GenerationRequest(**r) for r in json.loads(sys.argv[2])]
    gen = VLLMGenerator(sys.argv[1], dtype="float32", engine_args={
        "enforce_eager": True, "max_model_len": 512, "max_num_seqs": 8, "limit_mm_per_prompt": {"image": 2}})
    try:
        outs = gen.generate(reqs, SamplingParams(max_new_tokens=int(sys.argv[3])))
    finally:
        gen.close()
    print("RESULT " + json.dumps([o.__dict__ for o in outs]))

if __name__ == "__main__":
    main()
"""


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    python = _vllm_python()
    if python is None:
        pytest.skip("no vLLM venv (scripts/vllm_server.sh install, or set DEEPSIGHT_VLLM_PYTHON)")
    return python


@pytest.fixture(scope="module")
def case(vllm_python, tmp_path_factory):
    """The tiny model, the requests, and the vllm backend's answers (one engine start for the module)."""
    root = tmp_path_factory.mktemp("vllm_idefics3")
    model_dir = build_tiny_idefics3(root / "model")
    a = save_image(root / "a.png", 1)
    b = save_image(root / "b.jpg", 2, size=(50, 41), fmt="JPEG")
    question = "What is in the picture?"
    reqs = [
        GenerationRequest("a", messages=[user_turn(question, [a])]),
        GenerationRequest("text", messages=[user_turn("Name a primary colour.")]),
        GenerationRequest("b", messages=[user_turn(question, [b])]),
        GenerationRequest("missing", messages=[user_turn(question, [str(root / "no-such.png")])]),
        GenerationRequest("two", messages=[user_turn("Compare the two pictures.", [a, b])], system_prompt="Be brief."),
    ]
    # In-process engine core (no second process): the multi-modal processing is the same, the start faster.
    env = dict(os.environ, PYTHONPATH=str(REPO), VLLM_CPU_KVCACHE_SPACE="1", VLLM_TARGET_DEVICE="cpu",
               VLLM_ENABLE_V1_MULTIPROCESSING="0")
    proc = subprocess.run(
        [str(vllm_python), "-c", ENGINE_SCRIPT, str(model_dir), json.dumps([r.__dict__ for r in reqs]),
         str(MAX_NEW_TOKENS)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    outs = [Generation(**d) for d in json.loads(lines[-1][len("RESULT "):])]
    return {"model_dir": model_dir, "requests": reqs, "vllm": outs}


@pytest.fixture(scope="module")
def hf_side(case):
    from deepsight.config.schema import ModelConfig
    from deepsight.generation.hf_vlm import HFImageTextGenerator
    from deepsight.models.loading import load_model

    loaded = load_model(ModelConfig(path=str(case["model_dir"]), device="cpu", dtype="float32"))
    assert type(loaded.model).__name__ == "Idefics3ForConditionalGeneration"
    gen = HFImageTextGenerator(loaded.model, loaded.processor)
    return loaded, gen


def test_vllm_answers_every_request_in_order(case):
    outs = case["vllm"]
    assert [o.id for o in outs] == [r.id for r in case["requests"]]
    by_id = {o.id: o for o in outs}
    missing = by_id.pop("missing")
    assert missing.failed and "no-such.png" in missing.error and missing.text == ""
    for o in by_id.values():
        assert not o.failed, (o.id, o.error)
        assert o.text.strip() and o.prompt_tokens > 0 and 0 < o.completion_tokens <= MAX_NEW_TOKENS
        assert o.finish_reason in ("stop", "length")


def test_vllm_prompts_carry_the_image_tokens(case, hf_side):
    """vLLM's prompt of each image request is the processor's: the text and 4 image tokens per image
    between their markers. A dropped image would leave the prompt 7 tokens (per image) shorter."""
    loaded, gen = hf_side
    image_id = loaded.model.config.image_token_id
    by_id = {o.id: o for o in case["vllm"]}
    for r in case["requests"]:
        if r.id == "missing":
            continue
        ids = gen.model_inputs(r)["input_ids"][0]
        n_images = sum(isinstance(m["content"], list) and sum(p["type"] == "image" for p in m["content"])
                       for m in r.messages)
        assert int((ids == image_id).sum()) == IMAGE_SEQ_LEN * n_images, r.id
        assert by_id[r.id].prompt_tokens == len(ids), (r.id, by_id[r.id].prompt_tokens, len(ids))
    assert by_id["two"].prompt_tokens > by_id["a"].prompt_tokens + IMAGE_SEQ_LEN


def test_vllm_greedy_answers_match_hf(case, hf_side):
    """Same weights, same pixels, same prompt: vLLM's greedy tokens are the hf backend's (the first ones
    always; whole answers for most requests, near-ties of a random model may split later tokens)."""
    loaded, gen = hf_side
    reqs = [r for r in case["requests"] if r.id != "missing"]
    ours = {o.id: o for o in gen.generate(reqs, SamplingParams(max_new_tokens=MAX_NEW_TOKENS))}
    theirs = {o.id: o for o in case["vllm"]}
    tok = loaded.tokenizer
    identical = 0
    for r in reqs:
        a, b = ours[r.id], theirs[r.id]
        assert not a.failed, a.error
        assert a.prompt_tokens == b.prompt_tokens, r.id
        ta = tok(a.text, add_special_tokens=False)["input_ids"][:3]
        tb = tok(b.text, add_special_tokens=False)["input_ids"][:3]
        assert ta == tb, (r.id, a.text, b.text)
        identical += a.text == b.text
    assert identical >= len(reqs) - 1, [(ours[r.id].text, theirs[r.id].text) for r in reqs]


def test_different_images_give_different_answers(case, hf_side):
    """The image reaches the model: the same question about two images is answered differently by
    vLLM, as by the hf backend (whose image features the last test matched)."""
    loaded, gen = hf_side
    theirs = {o.id: o for o in case["vllm"]}
    reqs = {r.id: r for r in case["requests"]}
    with torch.no_grad():
        la = loaded.model(**gen.model_inputs(reqs["a"])).logits[0, -1]
        lb = loaded.model(**gen.model_inputs(reqs["b"])).logits[0, -1]
    assert (la - lb).abs().max() > 1e-3  # the reference model itself tells the images apart
    assert theirs["a"].text != theirs["b"].text, theirs["a"].text
