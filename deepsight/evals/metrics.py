"""Rates with counts and 95% Wilson intervals, means with normal intervals, unknown-verdict summaries.

Every rate is ``{"value", "count", "n", "ci_low", "ci_high"}``. A rate's ``n`` counts the
items whose verdict is known; unknown verdicts are reported separately by
``unknown_summary`` (count, rate over all items, reasons) -- never folded into a rate.
An empty denominator gives ``nan`` value and interval (written as "nan" in results.json).

Wilson (1927): for k successes in n trials, p = k/n and z the normal quantile,
centre = (p + z^2/2n) / (1 + z^2/n), half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

Z95 = 1.959963984540054  # two-sided 95% standard-normal quantile
NAN = float("nan")


def wilson_interval(count: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (nan, nan when n == 0)."""
    if n < 0 or count < 0 or count > n:
        raise ValueError(f"wilson_interval: need 0 <= count <= n, got count={count}, n={n}")
    if n == 0:
        return NAN, NAN
    p = count / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if count == 0 else max(0.0, centre - half)  # exact ends: rounding leaves ~1e-17 otherwise
    hi = 1.0 if count == n else min(1.0, centre + half)
    return lo, hi


def rate(count: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(count, n)
    return {"value": count / n if n else NAN, "count": count, "n": n, "ci_low": lo, "ci_high": hi}


def flag_rate(flags: Iterable[bool | None]) -> dict[str, Any]:
    """Rate of True among the known (non-None) flags."""
    known = [f for f in flags if f is not None]
    return rate(sum(bool(f) for f in known), len(known))


def mean_summary(values: Iterable[float | None]) -> dict[str, Any]:
    """Mean of the known values with a normal-approximation 95% interval (count = n = known values)."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return {"value": NAN, "count": 0, "n": 0, "ci_low": NAN, "ci_high": NAN}
    m = sum(xs) / n
    if n < 2:
        return {"value": m, "count": n, "n": n, "ci_low": NAN, "ci_high": NAN}
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return {"value": m, "count": n, "n": n, "ci_low": m - half, "ci_high": m + half}


def unknown_summary(verdicts: Iterable[Any]) -> dict[str, Any]:
    """Count of unknown verdicts over all items, with reasons grouped by their kind (text before ':')."""
    vs = list(verdicts)
    reasons: Counter[str] = Counter()
    messages: dict[str, str] = {}
    for v in vs:
        if v.unknown:
            kind = (v.reason or "unspecified").split(":", 1)[0]
            reasons[kind] += 1
            messages.setdefault(kind, v.reason or "")
    count = sum(reasons.values())
    return {
        "count": count,
        "n": len(vs),
        "rate": count / len(vs) if vs else NAN,
        "reasons": dict(reasons),
        "reason_examples": {k: m[:300] for k, m in messages.items()},
    }


def breakdown(rows: list[Any], key: Callable[[Any], Any], metrics: Callable[[list[Any]], dict]) -> dict[str, dict]:
    """``{str(key(row)): metrics(rows with that key)}`` in sorted key order."""
    groups: dict[str, list[Any]] = {}
    for r in rows:
        groups.setdefault(str(key(r)), []).append(r)
    return {k: metrics(groups[k]) for k in sorted(groups)}


def binary_prf(pairs: Iterable[tuple[bool, bool]]) -> dict[str, float]:
    """Precision, recall, F1 of (gold, predicted) boolean pairs (positive = True)."""
    tp = fp = fn = 0
    for gold, pred in pairs:
        tp += gold and pred
        fp += (not gold) and pred
        fn += gold and not pred
    p = tp / (tp + fp) if tp + fp else NAN
    r = tp / (tp + fn) if tp + fn else NAN
    f1 = 2 * p * r / (p + r) if tp else (0.0 if (tp + fp) and (tp + fn) else NAN)
    return {"precision": p, "recall": r, "f1": f1}
