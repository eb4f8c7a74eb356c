"""Report pieces of the MoE expert scan: the layer x expert risk-difference heatmap, the top safety
experts with their intervals and stability, and the ablation table (masked / random / none).

The scan (``deepsight/diagnostics/experts.py``) draws its heatmap with ``report.figures.plot_risk_heatmap``;
``experts_markdown(results)`` renders the section that ``render_markdown`` appends (the full matrices stay
in results.json under ``scans.experts.details.matrices``)::

    lines = experts_markdown(results)      # [] when the scan did not run or was skipped
"""

from __future__ import annotations

import math
from typing import Any


def _f(v: Any, nd: int = 3) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{nd}f}"
    return "-" if v is None else str(v)


def experts_markdown(results: dict[str, Any]) -> list[str]:
    """Markdown lines of the MoE expert section ([] when there is no successful experts scan)."""
    res = (results.get("scans") or {}).get("experts")
    if not isinstance(res, dict) or res.get("status", "ok") != "ok":
        return []
    d, m = res.get("details") or {}, res.get("metrics") or {}
    a, b = (d.get("contrast") or ["a", "b"])[:2]
    out = ["## MoE safety experts", "",
           f"Risk difference = p(expert | {a}) - p(expert | {b}) over {d.get('rank_part', '?')} tokens "
           f"(95% Newcombe interval); stability of the top-{len(d.get('top_experts') or [])} list over two disjoint "
           f"halves of the data: {_f(m.get('top_expert_stability'))}.", ""]
    for f in res.get("figures") or []:
        out += [f"![risk difference per MoE block and expert](<{f}>)", ""]
    top = d.get("top_experts") or []
    if top:
        out += [f"| rank | block | expert | RD | 95% CI | p({a}) | p({b}) | gate {a} | gate {b} |",
                "|---|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(top, 1):
            out.append(f"| {i} | {r['layer']} | {r['expert']} | {_f(r['risk_difference'])} | "
                       f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}] | {_f(r['p_a'])} | {_f(r['p_b'])} | "
                       f"{_f(r['mean_gate_a'])} | {_f(r['mean_gate_b'])} |")
        out.append("")
    abl = d.get("ablation")
    if abl:
        out += ["Ablation (router logits of the masked experts set to -inf before the top-k; same prompts):", "",
                "| arm | masked experts | refusal rate | 95% CI | n | change vs none | 95% CI | flipped prompts |",
                "|---|---|---|---|---|---|---|---|"]
        for name, r in abl.items():
            out.append(f"| {name} | {r['masked_experts']} | {_f(r['refusal_rate'])} | [{_f(r['ci_low'])}, "
                       f"{_f(r['ci_high'])}] | {r['n']} | {_f(r['change_vs_none'])} | [{_f(r['change_ci_low'])}, "
                       f"{_f(r['change_ci_high'])}] | {r['flips_vs_none']} |")
        out.append("")
    return out
