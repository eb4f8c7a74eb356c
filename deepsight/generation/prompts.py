"""Turn a ``GenerationRequest`` into the exact prompt a model sees.

Shared by the in-process backends (hf, vllm) so both feed identical token ids:

- a raw ``prompt`` is used as is (tokenized with the tokenizer's special tokens, e.g. BOS);
- ``messages`` go through the tokenizer's chat template with the generation prompt, and are
  then tokenized without adding special tokens again (the template writes BOS where it wants it);
- the system prompt (the request's own, else the backend's default) becomes a leading system
  message; when the conversation already starts with one, the two are joined (ours first).
  Templates that reject a system role (Gemma-style "System role not supported") get the system
  text prepended to the first user turn, separated by a blank line.

The openai backend sends ``chat_messages`` to the server, which applies its own template.
Requests with image parts (images.py) need an image-text path: ``encode_request`` refuses them.
"""

from __future__ import annotations

from deepsight.errors import ConfigError
from deepsight.generation.base import GenerationRequest
from deepsight.generation.images import require_text_only


def chat_messages(request: GenerationRequest, default_system: str | None = None) -> list[dict[str, str]]:
    """The request's conversation with the system prompt in place (a new list; the request is untouched)."""
    if not request.messages:
        raise ConfigError(f"generation request {request.id!r} has neither `messages` nor `prompt`")
    messages = [dict(m) for m in request.messages]
    for i, m in enumerate(messages):
        if "role" not in m or "content" not in m:
            raise ConfigError(f"generation request {request.id!r}: message {i} needs `role` and `content`, got {m!r}")
    system = request.system_prompt if request.system_prompt is not None else default_system
    if system:
        if messages[0]["role"] == "system":
            messages[0]["content"] = f"{system}\n\n{messages[0]['content']}"
        else:
            messages.insert(0, {"role": "system", "content": system})
    return messages


def fold_system_into_user(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """For templates without a system role: prepend the system text to the first user turn."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def render_chat(tokenizer, messages: list[dict[str, str]]) -> str:
    """Apply the chat template with the generation prompt; fall back to no system role when it is rejected."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError(
            "the tokenizer has no chat template, so chat messages cannot be rendered: set `model.chat_template` "
            "or send raw `prompt` requests"
        )
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja2 TemplateError raised by the template's own raise_exception()
        if messages and messages[0]["role"] == "system" and "system" in str(exc).lower():
            return tokenizer.apply_chat_template(
                fold_system_into_user(messages), add_generation_prompt=True, tokenize=False
            )
        raise


def encode_request(tokenizer, request: GenerationRequest, default_system: str | None = None) -> list[int]:
    """Token ids of the prompt of ``request`` (see the module docstring for the rules)."""
    if request.prompt is not None:
        return list(tokenizer(request.prompt, add_special_tokens=True)["input_ids"])
    messages = chat_messages(request, default_system)
    require_text_only(messages, request.id, "tokenizer-only")
    text = render_chat(tokenizer, messages)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
