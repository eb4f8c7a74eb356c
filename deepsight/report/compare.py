"""``deepsight-compare``: a leaderboard across runs and models (Markdown, CSV and HTML).

    deepsight-compare outputs/2026-11-28/10-00-00_llama outputs/2026-11-28/11-00-00_qwen
    deepsight-compare multirun/2026-11-28/10-00-00 -o leaderboard/ --all-metrics

Each argument is a run folder, a results.json file, or any folder above run folders
(a multirun sweep): every results.json under it is used. One row per run; columns
are the headline numbers (one per benchmark with its unknown rate, a few per scan),
or every numeric metric with ``--all-metrics``. Rates show with their 95% interval
in Markdown/HTML; the CSV has plain numbers with ``/ci_low`` and ``/ci_high`` columns.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsight.report.metrics import (
    eval_rows,
    fmt_rate,
    fmt_value,
    model_name,
    primary_eval_rows,
    scan_rows,
    stage_problems,
    summary_scan_rows,
)


@dataclass
class Cell:
    value: Any
    ci_low: Any = None
    ci_high: Any = None
    is_rate: bool = False

    def text(self) -> str:
        f = fmt_rate if self.is_rate else fmt_value
        s = f(self.value)
        if self.ci_low is not None and self.ci_high is not None:
            s += f" [{f(self.ci_low)}, {f(self.ci_high)}]"
        return s


def find_results(paths: list[str | Path]) -> list[Path]:
    """results.json files named by ``paths`` (files, run folders, or folders above them), without repeats."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            hits = [p]
        elif (p / "results.json").is_file():
            hits = [p / "results.json"]
        elif p.is_dir():
            hits = sorted(p.rglob("results.json"))
            if not hits:
                raise FileNotFoundError(f"no results.json under {p}")
        else:
            raise FileNotFoundError(f"{p} does not exist")
        found.extend(h.resolve() for h in hits if h.resolve() not in found)
    return found


def run_row(results: dict[str, Any], all_metrics: bool) -> dict[str, Cell]:
    """Column key -> cell for one run."""
    row: dict[str, Cell] = {}
    for r in eval_rows(results) if all_metrics else primary_eval_rows(results):
        row[f"eval/{r.benchmark}/{r.metric}"] = Cell(r.value, r.ci_low, r.ci_high, r.is_rate)
        if r.unknown_rate is not None:
            row[f"eval/{r.benchmark}/unknown_rate"] = Cell(r.unknown_rate, is_rate=True)
    for r in scan_rows(results) if all_metrics else summary_scan_rows(results):
        if not isinstance(r.value, (dict, list)):
            row[f"scan/{r.scan}/{r.metric}"] = Cell(r.value)
    return row


def build_leaderboard(files: list[Path], all_metrics: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """(metric column keys, one entry per run: {"model", "audit", "status", "run", "problems", "cells"})."""
    columns: list[str] = []
    runs = []
    for f in files:
        try:
            results = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            print(f"deepsight-compare: skipping {f}: {e}", file=sys.stderr)
            continue
        if not isinstance(results, dict):
            print(f"deepsight-compare: skipping {f}: not a results object", file=sys.stderr)
            continue
        cells = run_row(results, all_metrics)
        columns.extend(k for k in cells if k not in columns)
        runs.append({"model": model_name(results), "audit": str((results.get("config") or {}).get("audit_name", "")),
                     "status": str(results.get("status", "unknown")), "run": str(f.parent),
                     "problems": len(stage_problems(results)), "cells": cells})
    # benchmarks alphabetically, each with its metrics in result order and its unknown rate last
    evals = sorted((c for c in columns if c.startswith("eval/")),
                   key=lambda c: (c.split("/")[1], c.endswith("/unknown_rate"), columns.index(c)))
    scans = [c for c in columns if c.startswith("scan/")]
    return evals + scans, runs


_BASE = ("model", "audit", "status", "problems")


def _label(key: str) -> str:
    return key.split("/", 1)[1].replace("/", " ")


def to_markdown(columns: list[str], runs: list[dict[str, Any]]) -> str:
    def cell(s: str) -> str:
        return html.escape(s, quote=False).replace("|", "\\|").replace("\n", " ")

    header = [*_BASE, *(_label(c) for c in columns), "run"]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for r in runs:
        vals = [r["model"], r["audit"], r["status"], str(r["problems"])]
        vals += [r["cells"][c].text() if c in r["cells"] else "-" for c in columns] + [r["run"]]
        lines.append("| " + " | ".join(cell(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"


def to_csv(columns: list[str], runs: list[dict[str, Any]]) -> str:
    header = list(_BASE)
    for c in columns:
        header.append(c)
        if any(c in r["cells"] and r["cells"][c].ci_low is not None for r in runs):
            header += [f"{c}/ci_low", f"{c}/ci_high"]
    header.append("run")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in runs:
        out = []
        for h in header:
            if h in _BASE or h == "run":
                out.append(r[h])
                continue
            base, _, suffix = h.rpartition("/")
            if suffix in ("ci_low", "ci_high") and base in r["cells"]:
                out.append(_csv_value(getattr(r["cells"][base], suffix)))
            else:
                out.append(_csv_value(r["cells"][h].value) if h in r["cells"] else "")
        writer.writerow(out)
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    return ", ".join(map(str, v)) if isinstance(v, list) else v


def to_html(columns: list[str], runs: list[dict[str, Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in [*_BASE, *(_label(c) for c in columns), "run"])
    body = []
    for r in runs:
        vals = [r["model"], r["audit"], r["status"], str(r["problems"])]
        vals += [r["cells"][c].text() if c in r["cells"] else "-" for c in columns] + [r["run"]]
        body.append("<tr>" + "".join(f"<td>{e(v)}</td>" for v in vals) + "</tr>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>DeepSight leaderboard</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;font-size:.9rem}"
        "th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left}th{background:#f4f4f6}</style></head>"
        f"<body><h1>DeepSight leaderboard</h1><p>{len(runs)} runs.</p><table><tr>{head}</tr>\n"
        + "\n".join(body) + "\n</table></body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepsight-compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders, results.json files or sweep folders")
    parser.add_argument("-o", "--out", default=".", help="folder for leaderboard.{md,csv,html} (default: .)")
    parser.add_argument("--name", default="leaderboard", help="file name stem (default: leaderboard)")
    parser.add_argument("--all-metrics", action="store_true", help="every numeric metric, not only headlines")
    args = parser.parse_args(argv)
    try:
        files = find_results(args.runs)
    except FileNotFoundError as err:
        print(f"deepsight-compare: {err}", file=sys.stderr)
        return 2
    columns, runs = build_leaderboard(files, args.all_metrics)
    if not runs:
        print("deepsight-compare: no readable results.json", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(columns, runs)
    for suffix, text in (("md", md), ("csv", to_csv(columns, runs)), ("html", to_html(columns, runs))):
        (out / f"{args.name}.{suffix}").write_text(text, encoding="utf-8")
    print(md)
    print(f"Leaderboard of {len(runs)} runs: {out / args.name}.{{md,csv,html}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
