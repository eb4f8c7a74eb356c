"""A tiny random-weight LLaVA (CLIP vision tower + Llama text model) built from transformers configs,
with a processor around the default model's tokenizer, and generated test images."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from deepsight.models.default_model import ensure_default_model_dir

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def save_image(path, seed: int, size=(37, 23), fmt=None):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8")).save(path, format=fmt)
    return str(path)


def build_tiny_llava(path):
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = AutoTokenizer.from_pretrained(str(ensure_default_model_dir()))
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", image_token="<image>",
        chat_template=TEMPLATE, num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=28, patch_size=14, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-1)
    return save_random_vlm(LlavaForConditionalGeneration, cfg, "multi_modal_projector", proc, path)


def save_random_vlm(model_class, cfg, connector: str, proc, path):
    """Build ``model_class(cfg)`` with seeded random weights, scale its image connector
    (``model.model.<connector>``) so the image moves the logits visibly, and save it with ``proc`` at ``path``."""
    torch.manual_seed(1234)
    model = model_class(cfg).eval()
    with torch.no_grad():
        for p in getattr(model.model, connector).parameters():
            p.mul_(8.0)
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path
