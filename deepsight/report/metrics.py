"""What the report says about each number: definitions of known metrics, headline picks, formatting.

Everything here reads the plain results dict (docs/ARCHITECTURE.md, results.json)
and works for any scan or benchmark: unknown metric names are shown as they are,
known ones (../shared/spec/DIAGNOSTICS.md, BENCHMARKS.md) get a short definition.
Non-finite values arrive as the strings "nan", "inf", "-inf" and are shown as such.

    from deepsight.report.metrics import eval_rows, scan_rows, stage_problems
    for row in scan_rows(results): print(row.scan, row.metric, fmt_value(row.value), row.definition)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# Short definitions shown beside headline numbers. Keys are matched against whole
# name components (``separation_score``, ``layer_4.separation_score``, ``mean_R_gap``).
DEFINITIONS: dict[str, str] = {
    # X-Boundary
    "separation_score": "||C_safe - C_harmful||_2 between class centroids of mean-pooled hidden states; "
    "higher = harmful and safe more separated (raw activation scale, not comparable across models)",
    "boundary_ratio": "||C_boundary - C_safe|| / ||C_boundary - C_harmful||; lower = boundary-safe prompts sit "
    "nearer the safe ones (inf if the denominator is ~0)",
    "dist_bound_safe": "||C_boundary - C_safe||_2",
    "dist_bound_harmful": "||C_boundary - C_harmful||_2",
    "scaled_separation": "separation_score / pooled within-class spread of safe and harmful; scale-free, "
    "comparable across models",
    "within_class_spread": "pooled standard deviation of safe and harmful vectors around their centroids",
    "best_separation_layer": "hidden_states index with the largest separation_score",
    "best_boundary_layer": "hidden_states index with the smallest boundary_ratio",
    # TELLME
    "R_diff": "coding rate of all representations, (d ln d)/2 + 1/2 logdet(I/d + Z^T Z/(m eps))",
    "R_same": "size-weighted mean coding rate within each class (safe, unsafe)",
    "R_gap": "R_diff - R_same; higher = safe and unsafe representations more disentangled",
    "erank": "effective rank exp(entropy of normalised singular values) of the centred, row-normalised "
    "representations",
    "cos_sim": "angle in degrees of the mean cosine between paired unsafe/safe rows; larger = more different",
    "pcc": "Pearson-style correlation of the centred, column-normalised unsafe and safe blocks",
    "L1": "mean L1 distance over all unsafe/safe row pairs",
    "L2": "mean L2 distance over all unsafe/safe row pairs",
    "hausdorff": "Hausdorff distance (L2) between the unsafe and safe row sets",
    # SPIN
    "coupled": "weights among the top-q most important for both objectives (privacy and fairness)",
    "coupling_ratio": "coupled weights / all weights considered",
    "coupled_ratio": "coupled weights / all weights considered",
    "coupled_rate_vs_candidate_mean": "coupled / mean number of candidates of the two objectives",
    "candidate_dataset1": "top-q important weights for objective 1 (privacy)",
    "candidate_dataset2": "top-q important weights for objective 2 (fairness)",
    "total_neurons": "weights considered (sum of numel of the selected matrices)",
    # MI-Peaks
    "mean_trajectory": "mean over samples of MI(reasoning state at step t, answer state) (HSIC estimator)",
    "mean_mi": "MI(reasoning state, answer state) averaged over steps and samples (HSIC estimator)",
    "max_mi": "largest MI of the mean trajectory",
    "thinking_tokens": "most frequent alphabetic tokens at the per-sample MI peaks",
    "spearman": "Spearman correlation of the HSIC and histogram MI trajectories",
    "histogram_mi": "plug-in MI of a joint 2-D histogram of (state, answer) coordinates",
    "histogram_mean_mi": "plug-in MI of a joint 2-D histogram of (state, answer) coordinates, averaged over steps "
    "and samples",
    "histogram_mean_trajectory": "mean over samples of the histogram MI at step t",
    # benchmarks
    "asr": "attack success rate: share of harmful requests answered harmfully (lower is safer)",
    "attack_success_rate": "share of harmful requests answered harmfully (lower is safer)",
    "refusal_rate": "share of prompts refused",
    "refusal": "share of prompts refused",
    "compliance_rate": "share of prompts fully complied with",
    "compliance": "share of prompts fully complied with",
    "partial": "share of partial refusals",
    "over_refusal_rate": "share of safe prompts refused (over-refusal; lower is better)",
    "safe_refusal_rate": "share of safe prompts refused (over-refusal; lower is better)",
    "unsafe_compliance_rate": "share of unsafe prompts complied with (lower is safer)",
    "unsafe_refusal_rate": "share of unsafe prompts refused (higher is safer)",
    "safe_compliance_rate": "share of safe prompts complied with (higher is better)",
    "string_refusal_rate": "share of replies matching a refusal phrase (string match judge)",
    "harmful_rate": "share of responses judged harmful (lower is safer)",
    "flagged_rate": "share of responses flagged unsafe by the judge (lower is safer)",
    "safety_rate": "share of responses judged safe (higher is safer)",
    "mean_score": "mean judge score with a normal 95% interval (StrongREJECT: 0 = refused or useless, "
    "1 = specific and convincing harmful help)",
    "accuracy_all": "accuracy counting unparseable answers as wrong",
    "mean_abs_error": "mean |achieved accuracy - requested accuracy| (sandbagging; lower = better control)",
    "safe_rate": "share of responses judged safe",
    "unsafe_rate": "share of responses judged unsafe",
    "harmless_rate": "share of responses judged harmless",
    "fulfilment_rate": "share of unsafe requests fulfilled (lower is safer)",
    "attack_rate": "share of judged answers to image-borne harmful requests the judge calls unsafe (lower is safer)",
    "attack_rate_all": "unsafe answers / all items, judge failures counted as not attacked (DeepSafe's attack_rate)",
    "safe_with_refusal_rate": "share of responses refusing the image-text request outright (VLSBench: safe)",
    "safe_with_warning_rate": "share of responses naming the image-text risk and answering safely (VLSBench: safe)",
    "chat_safe_acc": "share of requests in a safe situation answered (MSSBench class 2/3; higher is more helpful)",
    "embodied_safe_acc": "share of tasks in a safe situation planned (MSSBench class 2/3; higher is more helpful)",
    "chat_unsafe_acc": "share of requests in an unsafe situation refused or flagged (MSSBench class 0/1; higher is "
    "safer)",
    "embodied_unsafe_acc": "share of tasks in an unsafe situation refused or flagged (MSSBench class 0/1; higher is "
    "safer)",
    "chat_total_acc": "safe and unsafe situations pooled (MSSBench; higher is better)",
    "embodied_total_acc": "safe and unsafe situations pooled (MSSBench; higher is better)",
    "score": "benchmark score (see the benchmark's README)",
    "accuracy": "share of answers correct (strict parse)",
    "mc1": "TruthfulQA MC1: probability mass on the single true option is the highest",
    "mc2": "TruthfulQA MC2: normalised probability mass on the true options",
    "unknown": "share of items whose verdict could not be obtained or parsed (never scored safe or unsafe)",
}

# Per scan, the few metrics worth a line in the console summary (first that exist).
SUMMARY_PICKS: dict[str, tuple[str, ...]] = {
    "xboundary": ("separation_score", "scaled_separation", "boundary_ratio"),
    "tellme": ("R_gap", "erank"),
    "spin": ("coupled", "coupling_ratio", "coupled_ratio"),
    "mi_peaks": ("mean_mi", "thinking_tokens"),
}
# Per benchmark, the metrics worth a line in the console summary and a leaderboard column.
EVAL_PICKS: dict[str, tuple[str, ...]] = {
    "xstest": ("over_refusal_rate", "unsafe_compliance_rate"),
    "strongreject": ("mean_score", "refusal_rate"),
    "truthfulqa": ("mc1", "mc2"),
    "sandbagging": ("mean_abs_error",),
    "mm_safetybench": ("attack_rate",),
    "mssbench": ("chat_total_acc", "embodied_total_acc"),
}
# Otherwise the first of these present is the benchmark's one headline number (else its first metric).
EVAL_PRIMARY = ("asr", "attack_success_rate", "harmful_rate", "unsafe_rate", "flagged_rate", "fulfilment_rate",
                "mean_score", "score", "safety_rate", "safe_rate", "harmless_rate", "refusal_rate", "accuracy", "mc1")
# Metric names that are means (shown as numbers, not percentages) even with count/n/interval fields.
_MEAN_HINTS = ("mean", "score", "mc2", "error")

_SPLIT = re.compile(r"[./:\-\s]+")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


def definition_of(name: str) -> str | None:
    """The definition of a metric name, matching a known name as a whole component of it."""
    if name in DEFINITIONS:
        return DEFINITIONS[name]
    parts = [p for p in _SPLIT.split(name) if p]
    for known in sorted(DEFINITIONS, key=len, reverse=True):  # longest first: coupled_ratio before coupled
        for part in parts:
            if part == known or part.startswith(known + "_") or part.endswith("_" + known) or f"_{known}_" in part:
                return DEFINITIONS[known]
    return None


def as_list(value: Any) -> list[Any]:
    """A list field of a result (figures, warnings): a single value becomes a one-item list, None an empty one."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def as_number(value: Any) -> float | None:
    """A float for numbers and the non-finite strings; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in _NONFINITE:
        return _NONFINITE[value.strip().lower()]
    return None


def fmt_value(value: Any, digits: int = 4) -> str:
    """Numbers with ``digits`` significant digits (ints as ints), non-finite as nan/inf, lists joined."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    x = as_number(value)
    if x is not None:
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{digits}g}"
    if isinstance(value, dict):
        if "token" in value:  # MI-Peaks thinking tokens: {"token", "count"}
            return f"{value['token']} ({fmt_value(value.get('count'))})" if "count" in value else str(value["token"])
        return " ".join(f"{k}={fmt_value(v, digits)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        shown = ", ".join(fmt_value(v, digits) for v in value[:15])
        return shown + (f", ... ({len(value)} in all)" if len(value) > 15 else "")
    return str(value)


def fmt_rate(value: Any) -> str:
    """A rate in [0, 1] as a percentage with one decimal."""
    x = as_number(value)
    if x is None or not math.isfinite(x):
        return fmt_value(value)
    return f"{100 * x:.1f}%"


def is_rate_dict(value: Any) -> bool:
    return isinstance(value, dict) and "value" in value and ("n" in value or "ci_low" in value)


def flatten(metrics: Any, prefix: str = "", max_depth: int = 3) -> dict[str, Any]:
    """Nested metric dicts as ``a.b.c`` keys; rate dicts and lists stay whole (a non-dict is one ``value``)."""
    if not isinstance(metrics, dict):
        return {prefix or "value": metrics}
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and not is_rate_dict(value) and max_depth > 1:
            out.update(flatten(value, name, max_depth - 1))
        else:
            out[name] = value
    return out


@dataclass
class EvalRow:
    benchmark: str
    metric: str
    value: Any
    ci_low: Any = None
    ci_high: Any = None
    count: Any = None
    n: Any = None
    unknown_rate: Any = None
    definition: str | None = None

    @property
    def is_rate(self) -> bool:
        """A share in [0, 1] shown as a percentage: count/n fields, value = count / n, not a mean by name."""
        if self.n is None or any(h in self.metric.lower() for h in _MEAN_HINTS):
            return False
        n, count, value = as_number(self.n), as_number(self.count), as_number(self.value)
        if n is None or count is None or value is None or n <= 0:
            return True  # an empty rate ("nan" value) still reads as a rate
        return abs(value - count / n) <= 1e-9 * max(1.0, abs(value))

    @property
    def has_interval(self) -> bool:
        return self.ci_low is not None or self.ci_high is not None

    def value_text(self) -> str:
        return fmt_rate(self.value) if self.is_rate else fmt_value(self.value)

    def ci_text(self) -> str:
        if not self.has_interval:
            return "-"
        f = fmt_rate if self.is_rate else fmt_value
        return f"[{f(self.ci_low)}, {f(self.ci_high)}]"

    def counts_text(self) -> str:
        if self.n is None:
            return "-"
        return f"{fmt_value(self.count)}/{fmt_value(self.n)}" if self.is_rate else f"n={fmt_value(self.n)}"


@dataclass
class ScanRow:
    scan: str
    metric: str
    value: Any
    definition: str | None = None


def ok_sections(results: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """The scans or evals of a results dict that finished (status ok or missing)."""
    items = results.get(section) or {}
    return {k: v for k, v in items.items() if isinstance(v, dict) and v.get("status", "ok") == "ok"}


def eval_rows(results: dict[str, Any]) -> list[EvalRow]:
    """One row per benchmark metric, with its interval, counts and the benchmark's unknown rate."""
    rows = []
    for bench, res in ok_sections(results, "evals").items():
        unknown = res["unknown"].get("rate") if isinstance(res.get("unknown"), dict) else None
        for metric, value in flatten(res.get("metrics") or {}).items():
            if is_rate_dict(value):
                rows.append(EvalRow(bench, metric, value.get("value"), value.get("ci_low"), value.get("ci_high"),
                                    value.get("count"), value.get("n"), unknown, definition_of(metric)))
            else:
                rows.append(EvalRow(bench, metric, value, unknown_rate=unknown, definition=definition_of(metric)))
    return rows


def scan_rows(results: dict[str, Any]) -> list[ScanRow]:
    """One row per headline metric of every finished scan (nested metrics flattened)."""
    rows = []
    for scan, res in ok_sections(results, "scans").items():
        for metric, value in flatten(res.get("metrics") or {}).items():
            rows.append(ScanRow(scan, metric, value, definition_of(metric)))
    return rows


def primary_eval_rows(results: dict[str, Any]) -> list[EvalRow]:
    """Headline metrics per benchmark: its EVAL_PICKS present, else the first of EVAL_PRIMARY, else its first."""
    by_bench: dict[str, list[EvalRow]] = {}
    for row in eval_rows(results):
        by_bench.setdefault(row.benchmark, []).append(row)
    picked = []
    for bench, rows in by_bench.items():
        names = {r.metric: r for r in rows}
        chosen = [names[m] for m in EVAL_PICKS.get(bench, ()) if m in names]
        picked.extend(chosen or [next((names[m] for m in EVAL_PRIMARY if m in names), rows[0])])
    return picked


def summary_scan_rows(results: dict[str, Any], per_scan: int = 3) -> list[ScanRow]:
    """A few metrics per scan: the SUMMARY_PICKS present, else the first scalar ones."""
    by_scan: dict[str, list[ScanRow]] = {}
    for row in scan_rows(results):
        by_scan.setdefault(row.scan, []).append(row)
    picked = []
    for scan, rows in by_scan.items():
        names = {r.metric: r for r in rows}
        chosen = [names[m] for m in SUMMARY_PICKS.get(scan, ()) if m in names]
        if not chosen:
            chosen = [r for r in rows if as_number(r.value) is not None]
        picked.extend(chosen[:per_scan])
    return picked


@dataclass
class StageProblem:
    kind: str  # scan | eval
    name: str
    status: str  # skipped | failed
    reason: str
    traceback_file: str | None = None


def stage_problems(results: dict[str, Any]) -> list[StageProblem]:
    """Every scan or benchmark that did not finish, with the recorded reason."""
    out = []
    for section, kind in (("scans", "scan"), ("evals", "eval")):
        for name, res in (results.get(section) or {}).items():
            if not isinstance(res, dict):
                out.append(StageProblem(kind, name, "failed", f"malformed result: {res!r}"))
            elif res.get("status", "ok") != "ok":
                out.append(StageProblem(kind, name, str(res.get("status")), str(res.get("reason", "(no reason given)")),
                                        res.get("traceback_file")))
    return out


def all_warnings(results: dict[str, Any]) -> list[str]:
    """Run-level warnings, then each scan's and benchmark's, prefixed with its name."""
    out = [str(w) for w in as_list(results.get("warnings"))]
    for section, kind in (("scans", "scan"), ("evals", "eval")):
        for name, res in (results.get(section) or {}).items():
            if isinstance(res, dict):
                out.extend(f"{kind} {name}: {w}" for w in as_list(res.get("warnings")))
    return out


def model_name(results: dict[str, Any]) -> str:
    model = results.get("model") or {}
    cfg_model = (results.get("config") or {}).get("model") or {}
    return str(model.get("name") or cfg_model.get("name") or model.get("path") or cfg_model.get("path") or "unknown")


def flat_metrics(results: dict[str, Any], with_intervals: bool = True) -> dict[str, float]:
    """Every numeric headline as ``eval/<bench>/<metric>`` (plus ``/ci_low``, ``/ci_high``),
    ``eval/<bench>/unknown_rate`` and ``scan/<scan>/<metric>``; non-finite strings become floats."""
    out: dict[str, float] = {}
    for r in eval_rows(results):
        key = f"eval/{r.benchmark}/{r.metric}"
        for suffix, value in (("", r.value), ("/ci_low", r.ci_low), ("/ci_high", r.ci_high)):
            if (suffix == "" or with_intervals) and as_number(value) is not None:
                out[key + suffix] = as_number(value)
        if as_number(r.unknown_rate) is not None:
            out[f"eval/{r.benchmark}/unknown_rate"] = as_number(r.unknown_rate)
    for r in scan_rows(results):
        if as_number(r.value) is not None:
            out[f"scan/{r.scan}/{r.metric}"] = as_number(r.value)
    return out
