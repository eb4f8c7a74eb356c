"""The run report: ``write_report(run_dir, results)`` writes report.md and a self-contained report.html.

Modules: ``metrics`` (definitions, headline picks, formatting), ``content`` (the
sections as data), ``markdown`` and ``html`` (renderers), ``figures`` (PNG helpers
for scans), ``summary`` (console summary), ``compare`` (``deepsight-compare``).

    from deepsight.report import write_report, print_summary
    write_report(run_dir, results)      # run_dir/report.md, run_dir/report.html
    print_summary(results, run_dir)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsight.report.content import build_content
from deepsight.report.html import render_html
from deepsight.report.markdown import render_markdown
from deepsight.report.summary import print_summary
from deepsight.util.atomic import atomic_write_text
from deepsight.util.jsonable import to_jsonable
from deepsight.util.scrub import scrub_results


def write_report(run_dir: str | Path, results: dict[str, Any]) -> None:
    """Write ``report.md`` and ``report.html`` into ``run_dir`` from a results dict (results.json's shape)."""
    run_dir = Path(run_dir)
    results = scrub_results(to_jsonable(results))  # as in results.json: JSON values, no secrets
    content = build_content(run_dir, results)
    atomic_write_text(run_dir / "report.md", render_markdown(content))
    atomic_write_text(run_dir / "report.html", render_html(content))


__all__ = ["print_summary", "write_report"]
