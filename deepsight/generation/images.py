"""Image parts of chat requests: one message format for every backend.

A user turn with images carries a list of content parts, images first as most vision-language
chat templates expect, each image naming a local file of the benchmark:

    {"role": "user", "content": [{"type": "image", "path": "/data/siuo/images/1.png"},
                                 {"type": "text", "text": "What should I do here?"}]}

(``user_turn(text, images)`` builds it). The path, never the pixels, is what a run stores and
hashes. Each backend turns the parts into its own input at generation time:

- hf: ``hf_messages`` gives the processor's chat template ``{"type": "image"}`` placeholders
  and the PIL images in order (``load_image``);
- openai: ``openai_messages`` inlines each file as a base64 ``data:`` URL in an ``image_url``
  part, so an image leaves the machine only in the request to the configured server;
- vllm: the rendered prompt plus ``multi_modal_data={"image": [...]}``.

Text-only models get a clear error for a request with images (``require_text_only``).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from deepsight.errors import ConfigError, DataFormatError

_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp"}


def image_part(path: str | Path) -> dict[str, str]:
    return {"type": "image", "path": str(path)}


def user_turn(text: str, images: list[str | Path] | tuple = ()) -> dict[str, Any]:
    """A user message: plain text content without images, else the image parts then the text part."""
    if not images:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [*(image_part(p) for p in images), {"type": "text", "text": text}]}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return content
    raise ConfigError(f"message content must be a string or a list of parts, got {type(content).__name__}")


def message_images(messages: list[dict[str, Any]]) -> list[str]:
    """The image file paths of a conversation, in order."""
    paths = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image":
                    if not part.get("path"):
                        raise ConfigError(f"image part without a `path`: {part!r}")
                    paths.append(str(part["path"]))
    return paths


def message_text(content: Any) -> str:
    """The text of a message content (the text parts joined by newlines)."""
    return "\n".join(p.get("text", "") for p in _parts(content) if p.get("type") == "text")


def require_text_only(messages: list[dict[str, Any]], request_id: str, backend: str) -> None:
    if message_images(messages):
        raise ConfigError(
            f"generation request {request_id!r} has images but the {backend} model is text-only "
            "(load an image-text model, or leave image-text benchmarks out for this model)"
        )


def load_image(path: str | Path):
    """The image at ``path`` as an RGB PIL image; a missing or unreadable file is an error naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataFormatError(f"image file not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataFormatError(f"image file {path} is not a readable image: {exc}") from exc


def data_url(path: str | Path) -> str:
    """``data:<mime>;base64,...`` of the file's own bytes (formats servers do not take are sent as PNG)."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = Path(path).read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            fmt = im.format or ""
            if fmt not in _MIME:
                buf = io.BytesIO()
                im.convert("RGB").save(buf, format="PNG")
                raw, fmt = buf.getvalue(), "PNG"
    except FileNotFoundError as exc:
        raise DataFormatError(f"image file not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataFormatError(f"image file {path} is not a readable image: {exc}") from exc
    return f"data:{_MIME[fmt]};base64,{base64.b64encode(raw).decode('ascii')}"


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with each image part as an OpenAI ``image_url`` part carrying a data URL."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "image":
                    parts.append({"type": "image_url", "image_url": {"url": data_url(p["path"])}})
                else:
                    parts.append(p)
            m = dict(m, content=parts)
        out.append(m)
    return out


def hf_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(messages for a processor's chat template, image paths in order): every content becomes a part
    list, each image part an ``{"type": "image"}`` placeholder."""
    out = []
    paths = []
    for m in messages:
        parts = []
        for p in _parts(m.get("content")):
            if p.get("type") == "image":
                parts.append({"type": "image"})
                paths.append(str(p["path"]))
            else:
                parts.append({"type": "text", "text": p.get("text", "")})
        out.append(dict(m, content=parts))
    return out, paths
