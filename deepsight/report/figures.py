"""Small PNG pictures for scans to save under ``run_dir/figures`` (matplotlib, Agg, no pyplot state).

Each helper writes one PNG and returns its path; a scan lists the path relative to
the run dir in its result's ``"figures"`` and the report embeds it::

    from deepsight.report.figures import plot_per_layer, plot_projection_2d, plot_trajectory, plot_metric_bars

    p = plot_per_layer({10: 3.2, 20: 5.1}, "X-Boundary separation per layer", ctx.figures_dir / "xboundary_sep.png",
                       ylabel="separation_score")
    result["figures"].append(str(p.relative_to(ctx.run_dir)))

- ``plot_per_layer(values_by_layer, title, path, ylabel="", kind="line")``: ``{layer: value}``, or
  ``{series: {layer: value}}`` for several lines; non-finite values are left out and noted.
  ``kind="bar"`` for counts (SPIN coupled weights per layer).
- ``plot_projection_2d(points, labels, path, title="", label_names=None)``: (N, 2) points coloured by label
  (X-Boundary harmful / safe / boundary).
- ``plot_trajectory(mean, peaks, path, title="", peak_labels=None, ylabel="MI")``: a (T,) trajectory with
  the peak steps marked and optionally labelled with their tokens (MI-Peaks).
- ``plot_metric_bars(metrics, title, path)``: one bar per named scalar (TELLME metrics), each in its own
  panel on its own axis (unrelated scales never share an axis).
- ``plot_risk_heatmap(rd, path, title="")``: ``{layer: [value per expert]}`` as a layer x expert heatmap
  (MoE experts scan's risk difference), symmetric colour scale, NaN cells grey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_DPI = 100


def _figure(width: float = 6.4, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _layer_key(layer: Any) -> tuple[int, float | str]:
    try:
        return (0, float(layer))
    except (TypeError, ValueError):
        return (1, str(layer))


def plot_per_layer(values_by_layer: Mapping[Any, Any], title: str, path: str | Path, ylabel: str = "",
                   kind: str = "line") -> Path:
    """One line (or bars) of a value per layer; a mapping of mappings draws one series each."""
    if kind not in ("line", "bar"):
        raise ValueError(f"kind must be 'line' or 'bar', got {kind!r}")
    series = values_by_layer
    if not series or not all(isinstance(v, Mapping) for v in series.values()):
        series = {"": values_by_layer}
    fig, ax = _figure()
    dropped = 0
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        layers = sorted(values, key=_layer_key)
        pts = [(str(layer), _finite(values[layer])) for layer in layers]
        dropped += sum(v is None for _, v in pts)
        xs = [k for k, (_, v) in enumerate(pts) if v is not None]
        ys = [v for _, v in pts if v is not None]
        if kind == "bar":
            ax.bar([x + i * width for x in xs], ys, width=width, label=str(name) or None)
        else:
            ax.plot(xs, ys, marker="o", label=str(name) or None)
        ax.set_xticks(range(len(pts)), [k for k, _ in pts], rotation=90 if len(pts) > 16 else 0, fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" ({dropped} non-finite left out)" if dropped else ""), fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_projection_2d(points: Any, labels: Sequence[Any], path: str | Path, title: str = "",
                       label_names: Mapping[Any, str] | None = None) -> Path:
    """Scatter of (N, 2) points, one colour per label value."""
    import numpy as np

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    labs = list(labels)
    if len(labs) != pts.shape[0]:
        raise ValueError(f"{pts.shape[0]} points but {len(labs)} labels")
    fig, ax = _figure(5.2, 4.4)
    for lab in sorted(set(labs), key=_layer_key):
        mask = np.array([x == lab for x in labs])
        name = (label_names or {}).get(lab, str(lab))
        ax.scatter(pts[mask, 0], pts[mask, 1], s=10, alpha=0.7, label=name)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if labs:
        ax.legend(fontsize=8, markerscale=1.5)
    return _save(fig, path)


def plot_trajectory(mean: Sequence[Any], peaks: Sequence[int], path: str | Path, title: str = "",
                    peak_labels: Sequence[str] | None = None, ylabel: str = "MI") -> Path:
    """A trajectory over steps with its peak steps marked (and labelled, e.g. with the decoded tokens)."""
    ys = [_finite(v) for v in mean]
    fig, ax = _figure(7.2, 3.6)
    ax.plot(range(len(ys)), [math.nan if v is None else v for v in ys], linewidth=1)
    if peak_labels is not None and len(peak_labels) != len(peaks):
        raise ValueError(f"{len(peaks)} peaks but {len(peak_labels)} peak labels")
    for j, step in enumerate(peaks):
        if 0 <= int(step) < len(ys) and ys[int(step)] is not None:
            ax.plot([int(step)], [ys[int(step)]], "o", color="tab:red", markersize=4)
            if peak_labels is not None:
                ax.annotate(str(peak_labels[j])[:16], (int(step), ys[int(step)]), fontsize=7,
                            xytext=(0, 4), textcoords="offset points", ha="center")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def metric_bars_figure(metrics: Mapping[str, Any], title: str):
    """The figure of ``plot_metric_bars``: one panel per metric, each on its own axis, since named scalars
    (TELLME's L1 ~ 1e2 beside pcc ~ 1e-2) have unrelated scales and one shared axis would hide the small ones."""
    names = list(metrics) or ["(no metrics)"]
    vals = [_finite(metrics[k]) if k in metrics else None for k in names]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 0.6 + 0.55 * len(names)), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name, v in zip(axes, names, vals):
        ax.barh([0], [0.0 if v is None else v], height=0.6)
        ax.set_yticks([0], [f"{name} (non-finite)" if v is None and name in metrics else name], fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        if v is not None:
            ax.set_xlim(min(0.0, v) * 1.15, max(0.0, v) * 1.15 or 1.0)
            ax.text(v, 0, f" {v:.4g}", va="center", ha="left" if v >= 0 else "right", fontsize=7)
        else:
            ax.set_xticks([])
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title + " (each metric on its own scale)", fontsize=10)
    return fig


def plot_metric_bars(metrics: Mapping[str, Any], title: str, path: str | Path) -> Path:
    """One bar per named scalar, each in its own panel with its own axis; non-finite values are marked."""
    return _save(metric_bars_figure(metrics, title), path)


def plot_risk_heatmap(rd: dict[int, list[float]], path: str | Path, title: str = "") -> Path:
    """Layer (rows) x expert (columns) heatmap of the risk difference; NaN cells grey; symmetric colour scale."""
    import numpy as np

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
