"""report.md shows model and data text as text: no live link, image, HTML or autolink (issue 15, point 6)."""

from __future__ import annotations

import re

import pytest
from report_helpers import make_run

from deepsight.report import write_report
from deepsight.report.markdown import md_cell

ATTACKS = [
    "![x](https://evil.example/pixel.png)",
    "[click](http://evil.example/a)",
    "[ref][1]",
    "[1]: https://evil.example/def",
    "<img src=https://evil.example/i.png>",
    "<https://evil.example/auto>",
    "see https://evil.example/bare and www.evil.example and mail me@evil.example",
    "<a href='https://evil.example'>x</a>",
    "&lt;script&gt;",
]


def _html(md: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").render(md)


def _gfm_autolinks(md: str) -> list[str]:
    """What GitHub's extended autolinks would link, outside code blocks (their trigger texts, unescaped)."""
    text = re.sub(r"^(`{3,}).*?^\1", "", md, flags=re.S | re.M)
    return re.findall(r"(?i)\b(?:https?|ftp)://|(?<![\w\\])www\.|[\w.+-]+@[\w-]+\.[\w.-]+", text)


@pytest.mark.parametrize("attack", ATTACKS)
def test_cell_is_inert(attack):
    cell = md_cell(attack)
    html = _html(f"| a |\n|---|\n| {cell} |\n\n- {cell}\n")
    assert "<a " not in html and "<img" not in html and "<script" not in html, html
    assert not _gfm_autolinks(cell), cell
    plain = re.sub(r"<[^>]+>", "", html)
    assert "evil.example" not in attack or "evil.example" in plain  # shown as text, not dropped


def test_report_md_has_no_live_link_from_model_or_data(tmp_path):
    run = tmp_path / "run"
    results = make_run(run)
    bench = results["evals"]["xstest"]
    hostile = " ".join(ATTACKS)
    bench["examples"][0]["response"] = hostile
    bench["examples"][0]["prompt"] = hostile
    bench["examples"][0]["meta"]["type"] = ATTACKS[0]
    bench["unknown"]["reason_examples"]["unparseable"] = ATTACKS[1]
    bench["breakdowns"]["type"] = {ATTACKS[0]: {"refusal_rate": bench["metrics"]["refusal_rate"]}}
    results["warnings"].append(hostile)
    results["scans"]["broken_scan"]["reason"] = ATTACKS[6]
    write_report(run, results)
    md = (run / "report.md").read_text()
    html = _html(md)
    assert "<a " not in html, re.findall(r"<a [^>]*>", html)
    srcs = re.findall(r"<img [^>]*src=\"([^\"]*)\"", html)
    assert srcs and all(s.startswith("figures/") for s in srcs), srcs  # only the run's own figures
    assert not _gfm_autolinks(md), _gfm_autolinks(md)
    assert "evil.example/pixel.png" in re.sub(r"\\", "", md)  # the text is still there to read
