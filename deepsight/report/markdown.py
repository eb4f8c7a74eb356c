"""report.md: the run's headline tables, figures (linked, relative to the run dir), examples and metadata.

    from deepsight.report.markdown import render_markdown
    (run_dir / "report.md").write_text(render_markdown(build_content(run_dir, results)))

Model and user text is neutralised so a viewer that renders Markdown shows it as text and
fetches nothing: HTML special characters become entities (no raw HTML, no <https://...>
autolink); backslashes, backticks and table pipes are backslash-escaped; a closing bracket
that would end a link's text (before an opening parenthesis or bracket, or a colon) is
escaped (no [a](http://...) link, no ![x](https://...) image, no reference link or
definition); the triggers of GFM's extended autolinks ("://", "www.", "@") get an escape
that renders invisibly; newlines become spaces.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from deepsight.report.metrics import fmt_rate, fmt_value
from deepsight.report.overview import overview_markdown

_MD_ESCAPE = str.maketrans({c: "\\" + c for c in "\\|`"})
# "](" (inline link or image), "][" (reference link), "]:" (link definition); GFM autolink triggers
_LINKS = re.compile(r"\](?=[(\[:])|(?<=[A-Za-z0-9]):(?=//)|(?<![A-Za-z0-9])(www)\.|@", re.IGNORECASE)


def _break_link(m: re.Match) -> str:
    if m.group(0) == "]":
        return "\\]"  # an escaped bracket closes no link text: no link, no image
    if m.group(0) == ":":
        return ":\\"  # "https://" -> "https:\//" (an escaped slash): the text no longer reads as a URL
    return m.group(1) + "\\." if m.group(1) else "\\@"


def md_cell(text: Any) -> str:
    """One table cell or inline text, neutralised (see the module doc); newlines as spaces."""
    s = html.escape(text if isinstance(text, str) else fmt_value(text), quote=False)
    s = s.translate(_MD_ESCAPE).replace("\r", " ").replace("\n", " ")
    return _LINKS.sub(_break_link, s)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(c: dict[str, Any]) -> str:
    """The whole report.md from ``build_content``'s dict."""
    out = [f"# {md_cell(c['title'])}", ""]
    out += [f"Status: **{md_cell(c['status'])}**, audit preset `{md_cell(c['audit_name'])}`, "
            f"{c['n_scans']} scans, {c['n_evals']} benchmarks. Started {md_cell(c['started_at'])}, "
            f"finished {md_cell(c['finished_at'])}.", ""]
    out += overview_markdown(c["overview"])  # first screen: verdict per area, leaderboard (report/overview.py)
    if c["headline_evals"] or c["headline_scans"]:
        out += ["## Headline", ""]
        rows = [[f"eval {r.benchmark}", r.metric, r.value_text(), r.ci_text(), fmt_rate(r.unknown_rate),
                 r.definition or ""] for r in c["headline_evals"]]
        rows += [[f"scan {r.scan}", r.metric, fmt_value(r.value), "-", "-", r.definition or ""]
                 for r in c["headline_scans"]]
        out += _table(["stage", "metric", "value", "95% CI", "unknown", "definition"], rows)
    if c["problems"]:
        out += ["## Skipped or failed stages", ""]
        out += _table(["stage", "status", "reason", "traceback"],
                      [[f"{p.kind}/{p.name}", p.status, p.reason, p.traceback_file or "-"] for p in c["problems"]])
    out += ["## Safety benchmarks: all metrics", ""]
    if c["eval_rows"]:
        rows = []
        for r in c["eval_rows"]:
            rows.append([r.benchmark, r.metric, r.value_text(), r.ci_text(), r.counts_text(), fmt_rate(r.unknown_rate),
                         r.definition or ""])
        out += _table(["benchmark", "metric", "value", "95% CI", "count/n", "unknown", "definition"], rows)
        for bench, unk in c["unknown"].items():
            reasons = unk.get("reasons") or {}
            if reasons:
                examples = unk.get("reason_examples") or {}
                listed = ", ".join(f"{k}: {fmt_value(v)}" + (f' (e.g. "{str(examples[k])[:150]}")' if k in examples
                                                            else "") for k, v in reasons.items())
                out += [f"- {md_cell(bench)} unknown verdicts ({fmt_value(unk.get('count'))}): {md_cell(listed)}"]
        out += [""] if c["unknown"] else []
    else:
        out += ["No benchmark results.", ""]
    out += ["## White-box diagnostics: all metrics", ""]
    if c["scan_rows"]:
        out += _table(["scan", "metric", "value", "definition"],
                      [[r.scan, r.metric, fmt_value(r.value), r.definition or ""] for r in c["scan_rows"]])
    else:
        out += ["No diagnostic results.", ""]
    for scan in dict.fromkeys([*c["figures"], *c["details"]]):
        out += [f"### {md_cell(scan)}", ""]
        for f in c["figures"].get(scan, []):
            if f["exists"]:
                out += [f"![{md_cell(f['caption'])}](<{f['path']}>)", ""]
            else:
                out += [f"(figure missing: `{md_cell(f['path'])}`)", ""]
        for t in c["details"].get(scan, []):
            more = f", first {len(t['rows'])} of {t['total']}" if t["total"] > len(t["rows"]) else ""
            out += [f"Details `{md_cell(t['name'])}`{more}:", ""] + _table(t["columns"], t["rows"])
    out += c.get("experts") or []
    if c["breakdowns"]:
        out += ["## Breakdowns", ""]
        for bench, t in c["breakdowns"].items():
            more = f" (first {len(t['rows'])} of {t['total']} rows)" if t["total"] > len(t["rows"]) else ""
            out += [f"### {md_cell(bench)}{more}", ""] + _table(t["columns"], t["rows"])
    if c["examples"]:
        out += ["## Worst examples", ""]
        for bench, t in c["examples"].items():
            shown = len(t["rows"])
            src = f"; all generations in `{md_cell(t['generations_file'])}`" if t.get("generations_file") else ""
            out += [f"### {md_cell(bench)} ({shown} of {t['total']} shown{src})", ""]
            out += _table(t["columns"], t["rows"])
    if c["warnings"]:
        out += ["## Warnings", ""] + [f"- {md_cell(w)}" for w in c["warnings"]] + [""]
    out += ["## Run metadata", ""]
    out += ["### Model", ""] + _table(["key", "value"], [[k, _short(v)] for k, v in c["model"].items()])
    out += ["### Timings", ""] + _table(["stage", "seconds"], [list(t) for t in c["timings"]])
    out += ["### Versions", ""] + _table(["package", "version"], [[k, v] for k, v in c["versions"].items()])
    out += ["### Hardware", ""] + _table(["key", "value"], [[k, _short(v)] for k, v in c["hardware"].items()])
    fence = "`" * max(3, _longest_backtick_run(c["config_yaml"]) + 1)
    out += ["### Config", "", fence + "yaml", c["config_yaml"].rstrip(), fence, ""]
    return "\n".join(out)


def _longest_backtick_run(text: str) -> int:
    runs = re.findall(r"`+", text)
    return max((len(r) for r in runs), default=0)


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)[:300]
    return fmt_value(value)
