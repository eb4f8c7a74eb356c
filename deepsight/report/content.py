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

from deepsight.logging.scrub import scrub_secrets
from deepsight.report.metrics import (
    all_warnings,
    eval_rows,
    fmt_value,
    model_name,
    ok_sections,
    scan_rows,
    stage_problems,
)

MAX_EXAMPLES = 10  # worst examples shown per benchmark
MAX_CELL = 400  # characters of one example field
# Example fields shown first, in this order; any other field follows.
_EXAMPLE_ORDER = ("id", "category", "meta", "prompt", "question", "behavior", "goal", "input", "context", "response",
                  "generation", "output", "completion", "answer", "verdicts", "verdict", "label", "judgement", "score",
                  "unknown", "reason")


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
        for rel in res.get("figures") or []:
            file = Path(rel) if Path(rel).is_absolute() else run_dir / rel
            figs.append({"path": str(rel), "file": file, "caption": _caption(str(rel)), "exists": file.is_file()})
        if figs:
            out[scan] = figs
    return out


def example_tables(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per benchmark with examples: {"columns": [...], "rows": [[cell, ...]], "total": n}."""
    out = {}
    for bench, res in ok_sections(results, "evals").items():
        examples = [e for e in res.get("examples") or [] if isinstance(e, dict)]
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


def timings(results: dict[str, Any]) -> list[tuple[str, str]]:
    items = (results.get("timings") or {}).items()
    return [(k, f"{fmt_value(v, 3)} s") for k, v in items]


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(obj, default=str)), sort_keys=False, allow_unicode=True)


def build_content(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Everything the report shows, computed once from ``results``."""
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
        "eval_rows": eval_rows(results),
        "unknown": {b: r["unknown"] for b, r in ok_sections(results, "evals").items()
                    if isinstance(r.get("unknown"), dict)},
        "scan_rows": scan_rows(results),
        "figures": scan_figures(run_dir, results),
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
