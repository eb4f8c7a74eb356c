"""The console summary printed at the end of every run: the few numbers that matter and where the report is.

A rich table when stdout is a terminal, plain aligned text otherwise (logs, CI)::

    from deepsight.report.summary import print_summary
    print_summary(results, run_dir)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from deepsight.report.metrics import (
    fmt_rate,
    fmt_value,
    model_name,
    primary_eval_rows,
    stage_problems,
    summary_scan_rows,
)


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, metric, value) lines: one headline rate per benchmark, a few numbers per scan, then problems."""
    rows = []
    for r in primary_eval_rows(results):
        value = r.value_text()
        if r.has_interval:
            value += " " + r.ci_text()
        if r.n is not None:
            value += f" n={fmt_value(r.n)}"
        if r.unknown_rate is not None:
            value += f", unknown {fmt_rate(r.unknown_rate)}"
        rows.append((f"eval {r.benchmark}", r.metric, value))
    for r in summary_scan_rows(results):
        value = fmt_value(r.value)
        rows.append((f"scan {r.scan}", r.metric, value if len(value) <= 80 else value[:79] + "…"))
    for p in stage_problems(results):
        reason = p.reason if len(p.reason) <= 100 else p.reason[:99] + "…"
        rows.append((f"{p.kind} {p.name}", p.status.upper(), reason))
    return rows


def print_summary(results: dict[str, Any], run_dir: str | Path, file: TextIO | None = None) -> None:
    """Print the summary to ``file`` (default stdout)."""
    from deepsight.util.jsonable import to_jsonable

    file = file or sys.stdout
    results = to_jsonable(results)
    run_dir = Path(run_dir)
    title = f"DeepSight {results.get('status', 'unknown')}: {model_name(results)}"
    rows = summary_rows(results)
    report = run_dir / "report.html"
    where = f"Report: {report}" if report.exists() else f"Results: {run_dir / 'results.json'}"
    if file.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, show_lines=False)
        for col in ("stage", "metric", "value"):
            table.add_column(col)
        for row in rows:
            style = "red" if row[1] in ("FAILED",) else "yellow" if row[1] == "SKIPPED" else None
            table.add_row(*(Text(cell) for cell in row), style=style)
        console = Console(file=file)
        console.print(table, markup=False)
        console.print(where, markup=False, highlight=False)
        return
    print(title, file=file)
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        for what, metric, value in rows:
            print(f"  {what.ljust(widths[0])}  {metric.ljust(widths[1])}  {value}", file=file)
    else:
        print("  (no results)", file=file)
    print(where, file=file)
