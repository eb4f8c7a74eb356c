"""The report's sections as plain data, shared by the Markdown and HTML renderers.

``build_content(run_dir, results)`` returns a dict the templates read: headline rows,
per-scan figures (path, caption, whether the file exists), worst examples per
benchmark (truncated cells in a fixed column order), stage problems, warnings and
run metadata (model, versions, hardware, timings, the config with secrets scrubbed).
No text is escaped here: each renderer escapes for its own format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepsight.report.experts import experts_markdown
from deepsight.report.metrics import (
    all_warnings,
    as_list,
    eval_rows,
    fmt_value,
    model_name,
    ok_sections,
    primary_eval_rows,
    scan_rows,
    stage_problems,
    summary_scan_rows,
)
from deepsight.util.paths import inside
from deepsight.util.scrub import scrub_secrets

MAX_EXAMPLES = 10  # worst examples shown per benchmark
MAX_CELL = 400  # characters of one example field
# Example fields shown first, in this order; any other field follows.
_EXAMPLE_ORDER = ("failure", "id", "category", "meta", "prompt", "question", "behavior", "goal", "input", "context",
                  "response", "generation", "output", "completion", "answer", "verdicts", "verdict", "label",
                  "judgement", "score", "unknown", "reason")


def as_text(value: Any) -> str:
    """Readable text of an example field: dicts as ``key: value; ...`` (nested in parentheses), lists joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if v is None or v == "" or v == {}:
                continue
            inner = as_text(v)
            parts.append(f"{k}: ({inner})" if isinstance(v, dict) else f"{k}: {inner}")
        return "; ".join(parts)
    if isinstance(value, (list, tuple)):
        return ", ".join(as_text(v) for v in value)
    return fmt_value(value)


def truncate(text: Any, limit: int = MAX_CELL) -> str:
    s = as_text(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _caption(path: str) -> str:
    return Path(path).stem.replace("_", " ")


def scan_figures(run_dir: Path, results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per scan with figures: [{"path", "file", "caption", "exists"}] (paths relative to the run dir)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for scan, res in ok_sections(results, "scans").items():
        figs = []
        for rel in as_list(res.get("figures")):
            file = inside(run_dir, rel)  # None for an absolute path or one leaving the run folder: never inlined
            figs.append({"path": str(rel), "file": file, "caption": _caption(str(rel)),
                         "exists": file is not None and file.is_file()})
        if figs:
            out[scan] = figs
    return out


def example_tables(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per benchmark with failures: {"columns": [...], "rows": [[cell, ...]], "total": n} (report/worst.py)."""
    from deepsight.report.worst import worst_examples

    out = {}
    for bench, res in ok_sections(results, "evals").items():
        examples = worst_examples(bench, res)
        if not examples:
            continue
        keys: list[str] = []
        for e in examples[:MAX_EXAMPLES]:
            keys.extend(k for k in e if k not in keys)
        columns = [k for k in _EXAMPLE_ORDER if k in keys] + [k for k in keys if k not in _EXAMPLE_ORDER]
        rows = [[truncate(e[c]) if c in e else "" for c in columns] for e in examples[:MAX_EXAMPLES]]
        out[bench] = {"columns": columns, "rows": rows, "total": len(examples),
                      "generations_file": res.get("generations_file")}
    return out


MAX_DETAIL_ROWS = 200  # rows of one per-layer / breakdown table


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _rows_table(rows: list[tuple[str, dict[str, Any]]], first: str) -> dict[str, Any] | None:
    """[(row name, {column: scalar})] -> {"columns", "rows"}; non-scalar cells are left out."""
    columns: list[str] = []
    for _, r in rows:
        columns.extend(k for k, v in r.items() if _is_scalar(v) and k not in columns and k != first)
    if not columns:
        return None
    body = [[name, *(fmt_value(r.get(c)) if c in r else "" for c in columns)] for name, r in rows[:MAX_DETAIL_ROWS]]
    return {"columns": [first, *columns], "rows": body, "total": len(rows)}


def detail_tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per scan, its per-layer details as tables: dicts of dicts (``per_layer``) and lists of dicts (``layers``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for scan, res in ok_sections(results, "scans").items():
        details = res.get("details")
        for key, value in (details if isinstance(details, dict) else {}).items():
            if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                table = _rows_table([(str(k), v) for k, v in value.items()], "key")
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                first = next((k for k in ("layer", "name", "module", "id") if k in value[0]), None)
                table = _rows_table([(fmt_value(v.get(first, i)) if first else str(i), v)
                                     for i, v in enumerate(value)], first or "#")
            else:
                continue
            if table:
                out.setdefault(scan, []).append({"name": key, **table})
    return out


def breakdown_tables(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per benchmark, its breakdowns ``{field: {value: {metric: rate}}}`` as one long table."""
    from deepsight.report.metrics import EvalRow, flatten, is_rate_dict

    out = {}
    for bench, res in ok_sections(results, "evals").items():
        rows = []
        breakdowns = res.get("breakdowns")
        for field_name, groups in (breakdowns if isinstance(breakdowns, dict) else {}).items():
            if not isinstance(groups, dict):
                continue
            for group, metrics in groups.items():
                for metric, v in flatten(metrics if isinstance(metrics, dict) else {"value": metrics}).items():
                    r = (EvalRow(bench, metric, v.get("value"), v.get("ci_low"), v.get("ci_high"), v.get("count"),
                                 v.get("n")) if is_rate_dict(v) else EvalRow(bench, metric, v))
                    rows.append([field_name, str(group), metric, r.value_text(), r.ci_text(), r.counts_text()])
        if rows:
            out[bench] = {"columns": ["field", "group", "metric", "value", "95% CI", "count/n"],
                          "rows": rows[:MAX_DETAIL_ROWS], "total": len(rows)}
    return out


def timings(results: dict[str, Any]) -> list[tuple[str, str]]:
    items = (results.get("timings") or {}).items()
    return [(k, f"{fmt_value(v, 3)} s") for k, v in items]


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(obj, default=str)), sort_keys=False, allow_unicode=True)


def _with_direction(rows: list[Any], section: str) -> list[Any]:
    """Rows whose definition starts with the metric's direction (report/directions.py)."""
    from dataclasses import replace

    from deepsight.report.directions import direction

    out = []
    for r in rows:
        d = direction(section, r.benchmark if section == "evals" else r.scan, r.metric)
        out.append(replace(r, definition=d.label() + (f". {r.definition}" if r.definition else "")))
    return out


def build_content(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Everything the report shows, computed once from ``results``."""
    from deepsight.report.overview import overview

    run_dir = Path(run_dir)
    config = scrub_secrets(results.get("config") or {})
    evals = results.get("evals") or {}
    return {
        "title": f"DeepSight audit: {model_name(results)}",
        "model_name": model_name(results),
        "status": results.get("status", "unknown"),
        "audit_name": config.get("audit_name", "custom") if isinstance(config, dict) else "custom",
        "started_at": results.get("started_at"),
        "finished_at": results.get("finished_at"),
        "run_dir": str(run_dir),
        "overview": overview(run_dir, results),
        "headline_evals": _with_direction(primary_eval_rows(results), "evals"),
        "headline_scans": _with_direction(summary_scan_rows(results), "scans"),
        "eval_rows": _with_direction(eval_rows(results), "evals"),
        "unknown": {b: r["unknown"] for b, r in ok_sections(results, "evals").items()
                    if isinstance(r.get("unknown"), dict)},
        "scan_rows": _with_direction(scan_rows(results), "scans"),
        "figures": scan_figures(run_dir, results),
        "details": detail_tables(results),
        "experts": experts_markdown(results),  # MoE expert section (deepsight/report/experts.py)
        "breakdowns": breakdown_tables(results),
        "examples": example_tables(results),
        "problems": stage_problems(results),
        "warnings": all_warnings(results),
        "model": scrub_secrets(results.get("model") or {}),
        "versions": results.get("versions") or {},
        "hardware": results.get("hardware") or {},
        "timings": timings(results),
        "config_yaml": _yaml(config),
        "n_scans": len(results.get("scans") or {}),
        "n_evals": len(evals),
    }
