"""In-process Hugging Face backend for image-text models (``AutoModelForImageTextToText``).

Each request is rendered by the processor's chat template with ``{"type": "image"}`` parts
(images.py), its image files are read as RGB PIL images and the processor builds the model
inputs (token ids with the image placeholders expanded, pixel values); ``model.generate`` then
decodes greedily (or samples with a per-request seed). Requests run one at a time: image inputs
differ in size from model to model and request to request, and image-text benchmarks are
small. Text-only requests go through the same template. A request whose image is missing or
unreadable becomes an error ``Generation`` naming the file.

    loaded = load_model(ModelConfig(path="/models/Qwen2-VL-2B-Instruct"))   # loaded.processor is set
    gen = HFImageTextGenerator(loaded.model, loaded.processor)
    gen.generate([GenerationRequest("a", messages=[user_turn("What is shown?", ["cat.png"])])],
                 SamplingParams(max_new_tokens=64))
"""

from __future__ import annotations

import torch

from deepsight.errors import DeepSightError
from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.hf import _free_accelerator_memory, eos_token_ids, request_seed
from deepsight.generation.images import hf_messages, load_image
from deepsight.generation.prompts import chat_messages
from deepsight.models.io import pad_id


class HFImageTextGenerator:
    """The ``hf`` backend over a loaded image-text model and its processor."""

    name = "hf"

    def __init__(self, model, processor, *, system_prompt: str | None = None):
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.system_prompt = system_prompt
        self.eos_ids = eos_token_ids(model, self.tokenizer)
        self.pad_id = pad_id(self.tokenizer, self.eos_ids)

    def generate(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Generation]:
        was_training = getattr(self.model, "training", False)
        if was_training:
            self.model.eval()
        try:
            out = []
            for r in requests:
                try:
                    out.append(self._one(r, params))
                except DeepSightError as exc:
                    out.append(Generation(id=r.id, text="", finish_reason="error", error=str(exc)))
            return out
        finally:
            if was_training:
                self.model.train()

    def model_inputs(self, request: GenerationRequest) -> dict:
        """The processor's tensors for one request (on the model's device, pixels in the model's dtype)."""
        if request.prompt is not None:
            inputs = self.processor(text=[request.prompt], return_tensors="pt")
        else:
            messages, paths = hf_messages(chat_messages(request, self.system_prompt))
            template_owner = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer
            if getattr(template_owner, "chat_template", None) is None:
                raise DeepSightError("the image-text model's processor has no chat template: set model.chat_template")
            text = template_owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            images = [load_image(p) for p in paths]
            kwargs = {"images": images} if images else {}
            inputs = self.processor(text=[text], return_tensors="pt", add_special_tokens=False, **kwargs)
        device = self.model.device
        dtype = self.model.dtype
        return {k: (v.to(device, dtype) if torch.is_floating_point(v) else v.to(device)) if torch.is_tensor(v) else v
                for k, v in inputs.items()}

    @torch.inference_mode()
    def _one(self, request: GenerationRequest, params: SamplingParams) -> Generation:
        inputs = self.model_inputs(request)
        width = inputs["input_ids"].shape[1]
        sample = params.temperature > 0
        kwargs = {"do_sample": sample, "max_new_tokens": params.max_new_tokens, "pad_token_id": self.pad_id,
                  "eos_token_id": sorted(self.eos_ids) or None}
        if sample:
            torch.manual_seed(request_seed(params.seed, request.id))
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        seq = self.model.generate(**inputs, **kwargs)
        new = seq[0, width:].tolist()
        finish = "length"
        for k, t in enumerate(new):
            if t in self.eos_ids:
                new, finish = new[: k + 1], "stop"
                break
        body = new[:-1] if finish == "stop" else new
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        if params.stop:
            cuts = [text.find(s) for s in params.stop if s and s in text]
            if cuts:
                text, finish = text[: min(cuts)], "stop"
        return Generation(id=request.id, text=text, prompt_tokens=width, completion_tokens=len(new),
                          finish_reason=finish)

    def close(self) -> None:
        """The model belongs to the caller: only drop references."""
        self.model = None
        self.processor = None
        self.tokenizer = None
        _free_accelerator_memory()
