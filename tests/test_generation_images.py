"""Image-text requests on the hf backend (a tiny random-weight LLaVA built from transformers configs,
saved and reloaded through ``load_model``) and on the openai backend (a loopback server that
inspects the payload)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from _tiny_vlm import build_tiny_llava, save_image

from deepsight.config.schema import GenerationConfig, ModelConfig
from deepsight.errors import ConfigError
from deepsight.generation.base import GenerationRequest, SamplingParams
from deepsight.generation.factory import build_generator
from deepsight.generation.hf import HFGenerator
from deepsight.generation.hf_vlm import HFImageTextGenerator
from deepsight.generation.images import hf_messages, message_images, user_turn
from deepsight.generation.openai_server import OpenAIServerGenerator
from deepsight.models.loading import load_model


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="module")
def tiny_vlm(tiny_vlm_dir):
    return load_model(ModelConfig(path=str(tiny_vlm_dir), device="cpu"))


def greedy_reference(model, inputs: dict, n: int) -> list[int]:
    """Greedy decoding without a cache: the whole sequence through the model at every step."""
    ids = inputs["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           pixel_values=inputs.get("pixel_values")).logits
            tok = int(logits[0, -1].double().argmax())
            out.append(tok)
            ids = torch.cat([ids, torch.tensor([[tok]])], dim=1)
    return out


def test_load_model_detects_image_text(tiny_vlm):
    assert type(tiny_vlm.model).__name__ == "LlavaForConditionalGeneration"
    assert tiny_vlm.processor is not None and tiny_vlm.info["image_text"] is True
    gen = build_generator(GenerationConfig(backend="hf"), ModelConfig(), tiny_vlm)
    assert isinstance(gen, HFImageTextGenerator)


def test_hf_image_generation_matches_uncached_greedy(tiny_vlm, tmp_path):
    img = save_image(tmp_path / "a.png", 0)
    gen = HFImageTextGenerator(tiny_vlm.model, tiny_vlm.processor)
    gen.eos_ids = set()  # run the full length so every token is compared
    req = GenerationRequest("a", messages=[user_turn("What is in the picture?", [img])])
    inputs = gen.model_inputs(req)
    image_id = tiny_vlm.model.config.image_token_index
    assert int((inputs["input_ids"] == image_id).sum()) == 4  # (28 / 14)^2 patches
    assert inputs["pixel_values"].shape == (1, 3, 28, 28)
    out = gen.generate([req], SamplingParams(max_new_tokens=7))[0]
    expected = greedy_reference(tiny_vlm.model, inputs, 7)
    assert out.completion_tokens == 7 and out.finish_reason == "length"
    assert out.text == tiny_vlm.tokenizer.decode(expected, skip_special_tokens=True)


def test_hf_image_changes_the_answer_inputs(tiny_vlm, tmp_path):
    gen = HFImageTextGenerator(tiny_vlm.model, tiny_vlm.processor)
    a = gen.model_inputs(GenerationRequest("a", messages=[user_turn("Describe.", [save_image(tmp_path / "a.png", 1)])]))
    b = gen.model_inputs(GenerationRequest("b", messages=[user_turn("Describe.", [save_image(tmp_path / "b.png", 2)])]))
    assert torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        la = tiny_vlm.model(**a).logits[0, -1]
        lb = tiny_vlm.model(**b).logits[0, -1]
    assert (la - lb).abs().max() > 1e-4  # the pixels reach the language model


def test_hf_image_errors_and_text_only(tiny_vlm, tmp_path):
    gen = HFImageTextGenerator(tiny_vlm.model, tiny_vlm.processor)
    outs = gen.generate([GenerationRequest("miss", messages=[user_turn("x", [str(tmp_path / "nope.png")])]),
                         GenerationRequest("txt", messages=[user_turn("Hello", [])])],
                        SamplingParams(max_new_tokens=3))
    assert outs[0].failed and "nope.png" in outs[0].error
    assert not outs[1].failed and 1 <= outs[1].completion_tokens <= 3
    text_only = load_model(ModelConfig(path="default", device="cpu"))
    assert text_only.processor is None
    with pytest.raises(ConfigError, match="text-only"):
        HFGenerator(text_only.model, text_only.tokenizer).generate(
            [GenerationRequest("i", messages=[user_turn("x", [save_image(tmp_path / "c.png", 3)])])],
            SamplingParams(max_new_tokens=2))


def test_hf_messages_placeholders():
    msgs = [{"role": "system", "content": "be safe"}, user_turn("q", ["/x/1.png", "/x/2.jpg"])]
    hf, paths = hf_messages(msgs)
    assert paths == ["/x/1.png", "/x/2.jpg"] == message_images(msgs)
    assert hf[0]["content"] == [{"type": "text", "text": "be safe"}]
    assert hf[1]["content"] == [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "q"}]


class PayloadServer:
    """A loopback OpenAI-compatible server that records each chat body and answers 'ok'."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                raw = json.dumps({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_openai_sends_image_parts_as_data_urls(tmp_path):
    png = save_image(tmp_path / "p.png", 4)
    jpg = save_image(tmp_path / "j.jpeg", 5, fmt="JPEG")
    server = PayloadServer()
    try:
        gen = OpenAIServerGenerator(server.url, model="vlm", system_prompt="sys")
        outs = gen.generate([GenerationRequest("a", messages=[user_turn("What now?", [png, jpg])]),
                             GenerationRequest("t", messages=[user_turn("plain", [])]),
                             GenerationRequest("m", messages=[user_turn("x", [str(tmp_path / "gone.png")])])],
                            SamplingParams(max_new_tokens=5))
    finally:
        server.close()
    assert [o.failed for o in outs] == [False, False, True] and "gone.png" in outs[2].error
    assert len(server.bodies) == 2  # the request with a missing file never left the machine
    by_text = {json.dumps(b["messages"][-1]["content"])[:40]: b for b in server.bodies}
    image_body = next(b for b in server.bodies if isinstance(b["messages"][-1]["content"], list))
    plain_body = next(b for b in server.bodies if b is not image_body)
    assert len(by_text) == 2
    assert image_body["messages"][0] == {"role": "system", "content": "sys"}
    parts = image_body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"] and parts[2]["text"] == "What now?"
    for part, path, mime in zip(parts[:2], (png, jpg), ("image/png", "image/jpeg")):
        head, data = part["image_url"]["url"].split(",", 1)
        assert head == f"data:{mime};base64"
        assert base64.b64decode(data) == open(path, "rb").read()  # the file's own bytes, unchanged
    assert plain_body["messages"][-1] == {"role": "user", "content": "plain"}


def test_vllm_engine_sends_images_through_chat(tmp_path, monkeypatch):
    """vLLM is not installed here: a stand-in module records what the backend hands to ``vllm.LLM``."""
    import sys
    import types

    calls = {}

    class Out:
        def __init__(self, text):
            self.outputs = [types.SimpleNamespace(text=text, token_ids=[1, 2], finish_reason="stop")]
            self.prompt_token_ids = [5, 6, 7]

    class LLM:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def get_tokenizer(self):
            return load_model(ModelConfig(path="default", device="cpu")).tokenizer

        def generate(self, prompts, sampling, use_tqdm=False):
            calls["generate"] = prompts
            return [Out("text") for _ in prompts]

        def chat(self, conversations, sampling, use_tqdm=False, add_generation_prompt=True):
            calls["chat"] = conversations
            return [Out("image") for _ in conversations]

    fake = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from deepsight.generation.vllm_engine import VLLMGenerator

    img = save_image(tmp_path / "v.png", 6)
    gen = VLLMGenerator("some/vlm")
    outs = gen.generate([GenerationRequest("t", messages=[user_turn("hi", [])]),
                         GenerationRequest("i", messages=[user_turn("look", [img])]),
                         GenerationRequest("m", messages=[user_turn("look", [str(tmp_path / "no.png")])])],
                        SamplingParams(max_new_tokens=4))
    assert [o.text for o in outs[:2]] == ["text", "image"] and outs[2].failed and "no.png" in outs[2].error
    assert len(calls["generate"]) == 1 and "prompt_token_ids" in calls["generate"][0]
    (conv,) = calls["chat"]
    parts = conv[-1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1]) == open(img, "rb").read()
    assert parts[1] == {"type": "text", "text": "look"}
