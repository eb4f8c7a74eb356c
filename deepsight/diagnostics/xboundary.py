"""X-Boundary: how far apart harmful, safe and boundary-safe chats sit in representation space.

Paper: X-Boundary (arXiv 2502.09990); definitions in ../shared/spec/DIAGNOSTICS.md section 1.
Every chat (with its assistant reply) is rendered with the chat template, tokenized without
special tokens and truncated to ``max_length``. At each chosen ``hidden_states`` index (engine
site ``hidden_states`` of ``deepsight.capture.Capture``) the valid tokens are mean-pooled and only
per-class moments are kept (``deepsight.stats.ClassCentroids`` with ``spread=True``: on CUDA the fused
pooling kernel reads the block output in place). The cost is one length-bucketed forward (right
padding: with causal attention the real tokens' states are exactly those of the reference's
pad-to-1024 batches) that stops after the deepest index needed; ``layers="all"`` gets every
index 0..L in the same single pass.

Layer indices are ``hidden_states`` indices: 0 = embeddings, i = output of block i-1, L = the
final norm's output (as transformers returns it). Pooled rows (N x d) are kept only for the
layers that get a 2-D projection picture (PCA by default, t-SNE perplexity 30 / seed 42 as in
the reference).

Usage: ``deepsight scan=[xboundary] scan.xboundary.layers=all``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from deepsight.capture import Capture, CaptureSpec, iter_batches
from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.capture.reduce import masked_mean
from deepsight.capture.sharding import all_reduce_store, per_rank_name, rank_and_world, shard_by_length
from deepsight.config.plain import config_dict
from deepsight.data.labeled_chats import LabeledChat
from deepsight.data.xboundary import CLASS_NAMES, load_xboundary
from deepsight.diagnostics._chat_tokens import render_chats, tokenize
from deepsight.diagnostics._model_io import num_blocks
from deepsight.diagnostics.registry import ScanContext, register_scan
from deepsight.diagnostics.xboundary_metrics import NUM_CLASSES, layer_metrics, summarize_layers
from deepsight.errors import ConfigError
from deepsight.models.io import input_device, pad_id
from deepsight.stats import ClassCentroids


def _as_list(value: Any) -> list | None:
    if isinstance(value, str):
        return [int(x) for x in value.split(",") if x.strip()] if any(ch.isdigit() for ch in value) else None
    if isinstance(value, int):
        return [value]
    try:
        return [int(x) for x in value]
    except TypeError:
        return None


def resolve_layers(spec: Any, num_layers: int, key: str = "scan.xboundary.layers") -> list[int]:
    """``default`` -> [floor(L/3), floor(2L/3)]; ``all`` -> 0..L; ints (negative from the end, -1 = L)."""
    default = sorted({num_layers // 3, (2 * num_layers) // 3})
    if spec is None or spec == "default":
        return default
    if spec == "all":
        return list(range(num_layers + 1))
    if spec in ("none", ""):
        return []
    items = _as_list(spec)
    if items is None:
        raise ConfigError(f"{key}={spec!r}: expected 'default', 'all' or a list of hidden_states indices")
    out = []
    for i in items:
        j = i + num_layers + 1 if i < 0 else i
        if not 0 <= j <= num_layers:
            raise ConfigError(f"{key}: index {i} outside 0..{num_layers} (hidden_states of a {num_layers}-block model)")
        out.append(j)
    return sorted(set(out))


def pooled_moments_capture(layers: list[int], n_rows: int, keep_rows: set[int] | frozenset = frozenset()
                           ) -> tuple[CaptureSpec, Any, dict[int, ClassCentroids], dict[int, torch.Tensor]]:
    """The scan's capture: (spec, sink, per-layer float64 ``ClassCentroids`` with spread, the (n_rows, d)
    float32 pooled rows of the ``keep_rows`` layers); both dicts fill as the sink runs. The sink reads the
    per-row metadata ``labels`` and ``index`` (each batch row's position in the data)."""
    moments: dict[int, ClassCentroids] = {}
    rows: dict[int, torch.Tensor] = {}

    def sink(ev: Any) -> None:  # on the layer's device; reduce="none": ev.hidden (B, T, d), ev.mask (B, T)
        idx, h = ev.layer, ev.hidden
        if idx not in moments:
            moments[idx] = ClassCentroids(NUM_CLASSES, h.shape[-1], dtype="float64", device=h.device, spread=True)
        moments[idx].update(h, ev.take("labels"), mask=ev.mask, pooling="mean")  # pooled inside the kernel
        if idx in keep_rows:  # the 2-D pictures need the rows themselves
            pooled = masked_mean(h, ev.mask)  # (B, d) float32
            if idx not in rows:
                rows[idx] = torch.zeros(n_rows, pooled.shape[1], dtype=torch.float32, device=pooled.device)
            rows[idx].index_copy_(0, ev.take("index"), pooled)

    return CaptureSpec("hidden_states", layers, reduce="none", name="xboundary"), sink, moments, rows


@torch.no_grad()
def collect_pooled_moments(
    model: Any, tokenizer: Any, anatomy: Any, chats: list[LabeledChat], layers: list[int], *,
    max_length: int = 1024, max_batch_size: int | None = 16, max_batch_tokens: int = 16384,
    keep_rows: set[int] | frozenset = frozenset(), share_prefix: bool = True, info: dict | None = None,
    causal_right_padding: bool = True, checkpoint: ScanCheckpoint | None = None,
) -> tuple[dict[int, ClassCentroids], dict[int, torch.Tensor]]:
    """One pass over ``chats``: per-layer class moments (float64 ``ClassCentroids``, spread kept) and, for
    ``keep_rows`` layers, the (N, d) float32 pooled rows.

    With ``share_prefix`` the tokens every chat starts with (the chat template's system prompt) run
    once; ``info["shared_prefix_tokens"]`` says how many. ``causal_right_padding``: the right-padded
    batches run without the padding mask (``Capture``'s option; causal models). Under torch.distributed each rank
    takes its share of the chats (``deepsight.capture.sharding``) and the moments and rows are summed over ranks.
    ``checkpoint``: save the moments and rows every N batches and resume from a saved position."""
    ids = tokenize(tokenizer, render_chats(tokenizer, chats), add_special_tokens=False, max_length=max_length)
    labels = torch.tensor([c.label for c in chats], dtype=torch.long)
    spec, sink, moments, rows = pooled_moments_capture(layers, len(chats), keep_rows)
    device = input_device(model, anatomy)
    mine = torch.tensor(shard_by_length([len(x) for x in ids]), dtype=torch.long)  # this rank's chats
    local = [ids[i] for i in mine.tolist()]
    checkpoint = checkpoint or ScanCheckpoint(None)
    saved: dict[str, Any] = {}
    checkpoint.restore(saved, {"ids": ids, "labels": labels.tolist(), "layers": list(layers), "rank": rank_and_world(),
                               "keep_rows": sorted(keep_rows), "batching": [max_batch_tokens, max_batch_size,
                                                                            share_prefix, causal_right_padding],
                               "model": [type(model).__name__, str(getattr(model, "dtype", "")),
                                         getattr(model.config, "_name_or_path", "")]})
    moments.update(saved.get("moments", {}))  # the live dicts the sink fills
    rows.update(saved.get("rows", {}))
    store = {"moments": moments, "rows": rows}
    with Capture(model, [spec], sink, anatomy=anatomy, causal_right_padding=causal_right_padding) as cap:
        if rank_and_world()[1] > 1 and not moments:  # every rank takes part in the sums, with rows or without
            for idx in layers:
                dev = cap.layer_device(idx, site="hidden_states")
                moments[idx] = ClassCentroids(NUM_CLASSES, anatomy.hidden_size, dtype="float64", device=dev,
                                              spread=True)
                if idx in keep_rows:
                    rows[idx] = torch.zeros(len(chats), anatomy.hidden_size, dtype=torch.float32, device=dev)
        prefix = cap.shared_prefix(local) if share_prefix and local else None
        if info is not None:
            info["shared_prefix_tokens"] = 0 if prefix is None else prefix.length
        batches = iter_batches(local, max_batch_tokens=max_batch_tokens, pad_id=pad_id(tokenizer), side="right",
                               max_batch_size=max_batch_size, device=device)
        for batch in checkpoint.batches(batches, store):
            index = mine[batch.index]  # chats of the full list
            cap.forward(batch.input_ids, batch.attention_mask, prefix=prefix, labels=labels[index], index=index)
    all_reduce_store({f"{i}.moments": m for i, m in moments.items()}
                     | {f"{i}.rows": t for i, t in rows.items()})  # in place: the live accumulators
    return moments, rows




def project_2d(rows: torch.Tensor, method: str, seed: int = 42, perplexity: float = 30.0) -> torch.Tensor:
    """(N, d) -> (N, 2): PCA (float64 SVD of the centred rows) or t-SNE (scikit-learn)."""
    x = rows.detach().to("cpu", torch.float64)
    if method == "pca":
        xc = x - x.mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(xc, full_matrices=False)
        return xc @ vh[:2].T  # (N, 2)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = min(perplexity, max(1.0, (x.shape[0] - 1) / 3))
        return torch.from_numpy(TSNE(n_components=2, random_state=seed, perplexity=perp).fit_transform(x.numpy()))
    raise ConfigError(f"scan.xboundary.projection={method!r} must be pca, tsne or none")


def _figures(ctx: ScanContext, per_layer: dict[int, dict], rows: dict[int, torch.Tensor], labels: list[int],
             method: str, seed: int) -> tuple[list[str], list[str]]:
    try:
        from deepsight.report.figures import plot_per_layer, plot_projection_2d
    except ImportError as e:  # the report package is optional for the numbers
        return [], [f"figures skipped: {e}"]
    figs = []
    series = {"separation_score": {l: v["separation_score"] for l, v in per_layer.items()},
              "boundary_ratio": {l: v["boundary_ratio"] for l, v in per_layer.items()}}
    for name, values in series.items():
        p = plot_per_layer(values, f"X-Boundary {name} per hidden_states index",
                           ctx.figures_dir / f"xboundary_{name}.png", ylabel=name)
        figs.append(str(p.relative_to(ctx.run_dir)))
    names = {k: v for k, v in CLASS_NAMES.items()}
    for layer, r in sorted(rows.items()):
        pts = project_2d(r, method, seed)
        p = plot_projection_2d(pts.numpy(), labels, ctx.figures_dir / f"xboundary_{method}_layer{layer}.png",
                               title=f"X-Boundary {method.upper()} of pooled states, hidden_states[{layer}]",
                               label_names=names)
        figs.append(str(p.relative_to(ctx.run_dir)))
    return figs, []


def xboundary_from_chats(ctx: ScanContext, cfg: Any, chats: list[LabeledChat], warnings: list[str]) -> dict:
    num_layers = num_blocks(ctx.anatomy, ctx.model)
    layers = resolve_layers(cfg.layers, num_layers)
    if not layers:
        raise ConfigError("scan.xboundary.layers selects no layer")
    method = str(cfg.projection).lower()
    proj_spec = cfg.projection_layers
    if method == "none":
        proj = []
    elif proj_spec == "default":
        proj = resolve_layers("default", num_layers)
    else:
        proj = resolve_layers(proj_spec, num_layers, "scan.xboundary.projection_layers")
    hw = ctx.hardware
    info: dict = {}
    moments, rows = collect_pooled_moments(
        ctx.model, ctx.tokenizer, ctx.anatomy, chats, sorted(set(layers) | set(proj)),
        max_length=cfg.max_length, max_batch_size=cfg.batch_size,
        max_batch_tokens=hw.max_batch_tokens, keep_rows=set(proj), share_prefix=hw.share_prefix, info=info,
        causal_right_padding=hw.causal_right_padding,
        checkpoint=ScanCheckpoint.for_scan(ctx.run_dir, per_rank_name("xboundary"), hw.checkpoint_every))
    per_layer = {}
    for idx in layers:
        vals, w = layer_metrics(moments[idx])
        per_layer[idx] = vals
        warnings += [f"hidden_states[{idx}]: {x}" for x in w]
    metrics = summarize_layers(per_layer)
    for k in ("separation_score", "boundary_ratio", "scaled_separation"):
        metrics.setdefault(k, math.nan)
    figures, w = _figures(ctx, per_layer, rows, [c.label for c in chats], method, cfg.seed)
    warnings += w
    return {
        "metrics": metrics,
        "details": {
            "per_layer": {str(k): v for k, v in per_layer.items()},
            "layers": layers,
            "projection_layers": proj,
            "num_blocks": num_layers,
            "layer_convention": "hidden_states index: 0 = embeddings, i = block i-1 output, L = final-norm output",
            "counts": {CLASS_NAMES[k]: sum(c.label == k for c in chats) for k in CLASS_NAMES},
            "padding": "right, length-bucketed (equal to the reference's pad-to-max_length for causal models)",
            "shared_prefix_tokens": info.get("shared_prefix_tokens", 0),
        },
        "figures": figures,
        "warnings": warnings,
    }


@register_scan("xboundary")
def run_xboundary(ctx: ScanContext, cfg: Any) -> dict:
    chats, warnings = load_xboundary(
        ctx.data_path(cfg.harmful_path, "scan.xboundary.harmful_path"),
        ctx.data_path(cfg.safe_path, "scan.xboundary.safe_path"),
        ctx.data_path(cfg.boundary_path, "scan.xboundary.boundary_path"),
        n_per_class=cfg.n_per_class, seed=cfg.seed, sampling=cfg.sampling,
        harmful_with_context=cfg.harmful_with_context,
    )
    result = xboundary_from_chats(ctx, cfg, chats, warnings)
    result["details"]["selection"] = (f"first {cfg.n_per_class} records per class (reference compat)"
                                      if cfg.sampling == "first" else
                                      f"{cfg.n_per_class} random records per class, seed {cfg.seed}, file order")
    result["config"] = config_dict(cfg)
    return result
