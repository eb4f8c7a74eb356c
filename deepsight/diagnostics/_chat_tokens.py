"""Render labelled chats with the model's chat template and tokenize them (X-Boundary, TELLME)."""

from __future__ import annotations

from typing import Any

from deepsight.data.labeled_chats import LabeledChat
from deepsight.errors import ConfigError, DataFormatError


def render_chats(tokenizer: Any, chats: list[LabeledChat]) -> list[str]:
    """Chat template text of each chat, no generation prompt (the assistant reply is part of the chat)."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError("the tokenizer has no chat template; set model.chat_template to a Jinja template")
    texts = []
    for c in chats:
        try:
            texts.append(tokenizer.apply_chat_template(c.messages, tokenize=False, add_generation_prompt=False))
        except Exception as e:  # a template that rejects the roles/order of this record
            raise DataFormatError(f"{c.source} record {c.row}: chat template failed: {e}") from e
    return texts


def tokenize(tokenizer: Any, texts: list[str], add_special_tokens: bool, max_length: int | None) -> list[list[int]]:
    """Token ids per text (no padding here: batches are padded by length bucket)."""
    enc = tokenizer(texts, add_special_tokens=add_special_tokens, truncation=max_length is not None,
                    max_length=max_length, padding=False)
    return [list(ids) for ids in enc["input_ids"]]
