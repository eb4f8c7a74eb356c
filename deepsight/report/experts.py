"""Report pieces of the MoE expert scan: the layer x expert risk-difference heatmap, the top safety
experts with their intervals and stability, and the ablation table (masked / random / none).

``plot_risk_heatmap`` is called by the scan (``deepsight/diagnostics/experts.py``) and writes the PNG;
``experts_markdown(results)`` renders the section that ``render_markdown`` appends (the full matrices stay
in results.json under ``scans.experts.details.matrices``)::

    lines = experts_markdown(results)      # [] when the scan did not run or was skipped
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def plot_risk_heatmap(rd: dict[int, list[float]], path: str | Path, title: str = "") -> Path:
    """Layer (rows) x expert (columns) heatmap of the risk difference; NaN cells grey; symmetric colour scale."""
    import numpy as np

    from deepsight.report.figures import _figure, _save

    layers = sorted(rd)
    width = max((len(v) for v in rd.values()), default=1)
    m = np.full((len(layers), width), np.nan)
    for i, layer in enumerate(layers):
        m[i, : len(rd[layer])] = rd[layer]
    finite = np.abs(m[np.isfinite(m)])
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig, ax = _figure(min(14.0, 3.0 + 0.12 * width), min(10.0, 1.5 + 0.3 * len(layers)))
    im = ax.imshow(np.ma.masked_invalid(m), aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                   interpolation="nearest")
    ax.set_xlabel("expert")
    ax.set_ylabel("MoE block")
    ax.set_yticks(range(len(layers)))
    ax.set_yticklabels([str(layer) for layer in layers])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="risk difference")
    return _save(fig, path)


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
