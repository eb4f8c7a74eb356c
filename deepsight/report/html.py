"""report.html: one self-contained page (inline CSS, images as base64 data URIs, no script, no network).

    from deepsight.report.html import render_html
    (run_dir / "report.html").write_text(render_html(build_content(run_dir, results)))

The Jinja2 template autoescapes every value, so model output, prompts and reasons
show as text. A figure whose file is missing or is not a PNG/JPEG/GIF/SVG image is
listed as missing instead of leaving a broken image.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from deepsight.report.metrics import as_number, fmt_rate, fmt_value
from deepsight.report.overview import overview_html

_TEMPLATES = Path(__file__).parent / "templates"
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))


def image_mime(data: bytes) -> str | None:
    """The MIME type from an image's first bytes (PNG, JPEG, GIF, SVG), or None."""
    for sig, mime in _SIGNATURES:
        if data.startswith(sig):
            return mime
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048].lower()):
        return "image/svg+xml"
    return None


def data_uri(file: Path) -> str | None:
    """``data:<mime>;base64,...`` of an image file, or None if it is missing or not an image."""
    try:
        data = Path(file).read_bytes()
    except OSError:
        return None
    mime = image_mime(data)
    if mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)[:300]
    return fmt_value(value)


def _value_class(value: Any) -> str:
    """CSS class of a value cell: right-aligned numbers, wrapped text for anything else (token lists)."""
    return "num" if as_number(value) is not None else "text"


def render_html(content: dict[str, Any]) -> str:
    """The whole report.html from ``build_content``'s dict (figures are read and inlined here)."""
    import jinja2
    import markupsafe

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    figures = {scan: [dict(f, data_uri=data_uri(f["file"]) if f["exists"] else None) for f in figs]
               for scan, figs in content["figures"].items()}
    unknown = {b: {"count": u.get("count"), "reasons": u.get("reasons") or {},
                   "examples": {k: str(v)[:150] for k, v in (u.get("reason_examples") or {}).items()}}
               for b, u in content["unknown"].items()}
    sections = list(dict.fromkeys([*figures, *content["details"]]))
    c = dict(content, figures=figures, unknown=unknown, scan_sections=sections,
             overview_html=markupsafe.Markup(overview_html(content["overview"])))  # escaped in report/overview.py
    return env.get_template("report.html.j2").render(c=c, fmt_rate=fmt_rate, fmt_value=fmt_value, short=_short,
                                                     vclass=_value_class)
