"""The report's first screen: verdict per area, and the leaderboard of the other runs in the output folder.

Role: what a person reads in ten seconds at the top of report.md / report.html. ``overview(run_dir,
results)`` finds the other runs beside this one (the output folder: ``$DEEPSIGHT_OUTPUT_DIR``, or the
``outputs`` / ``multirun`` folder above the run, else the run's parent), computes the area verdicts
(``verdicts.py``) with those runs as references, and embeds the ``deepsight-compare`` leaderboard
(``compare.build_leaderboard``) with this run marked. ``overview_markdown`` and ``overview_html`` render
it; every value that comes from results (model names, paths, reasons) is escaped here.

    ov = overview(run_dir, results)
    lines = overview_markdown(ov); page_part = overview_html(ov)
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from deepsight.report.compare import build_leaderboard, run_row
from deepsight.report.metrics import model_name
from deepsight.report.verdicts import GOOD, POOR, WIDE, AreaVerdict, area_verdicts

MAX_RUNS = 50  # runs read from the output folder (newest first)
_ROOT_NAMES = ("outputs", "multirun")


def output_root(run_dir: Path) -> Path:
    """The folder whose runs are this run's references."""
    run_dir = Path(run_dir).resolve()
    env = os.environ.get("DEEPSIGHT_OUTPUT_DIR")
    for up in list(run_dir.parents)[:3]:
        if (env and up == Path(env).expanduser().resolve()) or up.name in _ROOT_NAMES:
            return up
    return run_dir.parent


def other_runs(run_dir: Path) -> list[Path]:
    """results.json files of the other runs under the output folder (at most 3 levels down, newest first)."""
    root, here = output_root(run_dir), (Path(run_dir).resolve() / "results.json")
    found: list[Path] = []
    for pattern in ("*/results.json", "*/*/results.json", "*/*/*/results.json"):
        found += [p.resolve() for p in root.glob(pattern)]
    found = [p for p in dict.fromkeys(found) if p != here]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:MAX_RUNS]


def _label(results: dict[str, Any], path: Path) -> str:
    return f"{model_name(results)} ({path.parent.name})"


def overview(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    others = []
    files = other_runs(run_dir)
    for f in files:
        try:
            r = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(r, dict):
            others.append((_label(r, f), r))
    verdicts = area_verdicts(results, others)
    board = None
    if others:
        columns, runs = build_leaderboard(files)
        cells = run_row(results, False)  # this run from memory (its results.json may be older)
        columns = [c for c in cells if c not in columns] + columns
        runs.insert(0, {"model": model_name(results), "status": str(results.get("status", "unknown")),
                        "cells": cells, "this": True})
        board = {"columns": columns, "runs": runs, "root": str(output_root(run_dir))}
    return {"verdicts": verdicts, "leaderboard": board, "n_references": len(others)}


_RULE = (f"Rates: good = the whole 95% interval on the safe side is at least {GOOD:.0%}, poor = all below "
         f"{POOR:.0%}, fair = in between with an interval narrower than {WIDE:.0%}, uncertain = too wide to say. "
         "Diagnostics have no pass mark: they are ranked against the other runs in the output folder.")


def _column(key: str) -> str:
    """A leaderboard column label with its direction arrow (``xstest over_refusal_rate ↓``)."""
    from deepsight.report.compare import _label
    from deepsight.report.directions import direction

    kind, name, metric = (key.split("/", 2) + ["", ""])[:3]
    d = direction("evals" if kind == "eval" else "scans", name, metric)
    return f"{_label(key)} {d.arrow}"


def _source_text(v: AreaVerdict) -> str:
    if v.source == "-":
        return v.note
    return v.source + (f" ({v.note})" if v.note else "")


def _ref_text(v: AreaVerdict) -> str:
    shown = "; ".join(f"{label}: {text}" for label, text in v.references[:3]) or "-"
    more = len(v.references) - 3
    return shown + (f"; {more} more in the leaderboard" if more > 0 else "")


def overview_markdown(ov: dict[str, Any]) -> list[str]:
    from deepsight.report.markdown import md_cell

    out = ["## At a glance", "", "| area | verdict | value | interval | direction | source row | other runs |",
           "|---|---|---|---|---|---|---|"]
    for v in ov["verdicts"]:
        cells = [v.area, f"**{v.verdict}**", v.value, v.interval, v.direction or "-",
                 _source_text(v), _ref_text(v)]
        out.append("| " + " | ".join(c if c.startswith("**") else md_cell(c) for c in cells) + " |")
    out += ["", _RULE + " Arrows: ↑ higher is safer/better, ↓ lower is, · no safer direction.", ""]
    board = ov["leaderboard"]
    if board:
        out += [f"### Leaderboard of the runs in `{md_cell(board['root'])}`", ""]
        header = ["model", "status", *(_column(c) for c in board["columns"])]
        out += ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
        for r in board["runs"]:
            name = r["model"] + (" (this run)" if r.get("this") else "")
            vals = [name, r["status"], *(r["cells"][c].text() if c in r["cells"] else "-" for c in board["columns"])]
            out.append("| " + " | ".join(md_cell(x) for x in vals) + " |")
        out.append("")
    else:
        out += ["No other runs in the output folder to compare with: run other models into the same "
                "`outputs/` folder (or `deepsight-compare`) to give these numbers a reference.", ""]
    return out


def overview_html(ov: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for v in ov["verdicts"]:
        cls = v.verdict.split()[0].replace(" ", "-")
        rows.append(
            f'<tr><th>{e(v.area)}</th><td class="verdict v-{e(cls)}">{e(v.verdict)}</td>'
            f'<td class="num">{e(v.value)}</td><td class="num">{e(v.interval)}</td><td>{e(v.direction or "-")}</td>'
            f'<td class="text">{e(_source_text(v))}</td>'
            f'<td class="text">{e(_ref_text(v))}</td></tr>')
    parts = ['<section id="at-a-glance"><h2>At a glance</h2>',
             "<table><tr><th>area</th><th>verdict</th><th>value</th><th>interval</th><th>direction</th>"
             "<th>source row</th><th>other runs</th></tr>", *rows, "</table>",
             f'<p class="muted">{e(_RULE)} Arrows: ↑ higher is safer/better, ↓ lower is, · no safer direction.</p>']
    board = ov["leaderboard"]
    if board:
        head = "".join(f"<th>{e(h)}</th>" for h in ["model", "status", *(_column(c) for c in board["columns"])])
        body = []
        for r in board["runs"]:
            vals = [r["model"] + (" (this run)" if r.get("this") else ""), r["status"],
                    *(r["cells"][c].text() if c in r["cells"] else "-" for c in board["columns"])]
            style = ' class="this-run"' if r.get("this") else ""
            body.append(f"<tr{style}>" + "".join(f"<td>{e(x)}</td>" for x in vals) + "</tr>")
        parts += [f'<details open><summary>Leaderboard of the runs in <code>{e(board["root"])}</code> '
                  f'({len(board["runs"])} runs)</summary><div class="scroll"><table><tr>{head}</tr>',
                  *body, "</table></div></details>"]
    else:
        parts.append('<p class="muted">No other runs in the output folder to compare with: run other models into '
                     "the same <code>outputs/</code> folder to give these numbers a reference.</p>")
    parts.append("</section>")
    return "\n".join(parts)
