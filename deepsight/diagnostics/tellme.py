"""TELLME: disentanglement of safe vs unsafe representations at one block's last token.

Paper: TELLME (AI45Lab); definitions in ../shared/spec/DIAGNOSTICS.md section 2. Each row is
[user: prompt, assistant: response + suffix], rendered without a generation prompt and tokenized
with the default special tokens. The state of block ``layer`` at each row's last real token is
gathered on the layer's device in one length-bucketed forward that stops after that block
(``deepsight.capture.Capture``, site ``block_output``, reduce ``last``).

Statistics kept: per-class Gram matrices (``deepsight.stats.GramMatrix``, d x d per class) for
the coding rates R_diff / R_same / R_gap, and the m x d last-token rows themselves (2000 x 576
floats = 4.6 MB for SmolLM2; m x d in general, a bounded statistic) because erank's row
normalisation and the pairwise distances cos_sim / pcc / L1 / L2 / hausdorff need the rows.

Padding: right padding with a last-valid-token gather by default. For a causal model the
real tokens' states do not depend on pad tokens after them, so this equals the reference's
left padding for RoPE models (a constant position shift cancels in RoPE attention; equal up to
rounding) and is the unshifted, correct state for absolute-position models. ``reference_compat``
switches to left padding and the reference's unstable ``torch.argsort`` row order.

Usage: ``deepsight scan=[tellme] scan.tellme.layer=20``.
"""

from __future__ import annotations

from typing import Any

import torch

from deepsight.capture import Capture, CaptureSpec, iter_batches
from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.capture.sharding import all_reduce_store, per_rank_name, rank_and_world, shard_by_length
from deepsight.config.plain import config_dict
from deepsight.data.labeled_chats import LabeledChat
from deepsight.data.tellme import load_tellme
from deepsight.diagnostics._chat_tokens import render_chats, tokenize
from deepsight.diagnostics._model_io import num_blocks
from deepsight.diagnostics.registry import ScanContext, register_scan
from deepsight.diagnostics.tellme_metrics import NAMES, coding_rates, distance_metrics, erank
from deepsight.errors import ConfigError
from deepsight.models.io import input_device, pad_id
from deepsight.stats import GramMatrix

NUM_CLASSES = 2  # 0 = unsafe, 1 = safe


def resolve_layer(layer: int | None, num_layers: int) -> int:
    """Block index: None -> max(0, floor(0.6666 L) - 1); negative counts from the end."""
    if layer is None:
        return max(0, int(num_layers * 0.6666) - 1)
    idx = layer + num_layers if layer < 0 else layer
    if not 0 <= idx < num_layers:
        raise ConfigError(f"scan.tellme.layer={layer} outside a model with {num_layers} blocks")
    return idx


def _max_length(tokenizer: Any, max_length: int | None) -> int | None:
    if max_length is not None:
        return int(max_length)
    mml = getattr(tokenizer, "model_max_length", None)
    return int(mml) if isinstance(mml, int) and 0 < mml < 10**7 else None


def new_last_token_store(store: dict[str, Any], n_rows: int, d: int, dtype: torch.dtype, device: torch.device,
                         stat_dtype: str = "float32") -> None:
    """``store["rows"]`` (n_rows, d) zeros (rows of other ranks stay zero) and an empty per-class Gram."""
    store["rows"] = torch.zeros(n_rows, d, dtype=dtype, device=device)
    store["gram"] = GramMatrix(d, NUM_CLASSES, dtype=stat_dtype, device=device)


def last_token_capture(layer: int, n_rows: int, stat_dtype: str = "float32") -> tuple[CaptureSpec, Any, dict]:
    """The scan's capture: (spec, sink, store); the sink fills ``store["rows"]`` (n_rows, d) in data order
    and ``store["gram"]`` (per-class ``GramMatrix``) from the metadata ``labels`` and ``index``."""
    store: dict[str, Any] = {}

    def sink(ev: Any) -> None:  # on the layer's device; ev.value (B, d) = last valid token of each row
        v = ev.value
        last = v if v.dtype == torch.float64 else v.float()  # rows kept in float32 (float64 for float64 models)
        if "rows" not in store:
            new_last_token_store(store, n_rows, last.shape[1], last.dtype, last.device, stat_dtype)
        store["rows"].index_copy_(0, ev.take("index"), last)
        store["gram"].update(last, ev.take("labels"))

    return CaptureSpec("block_output", [layer], reduce="last", name="tellme"), sink, store


@torch.no_grad()
def collect_last_token(
    model: Any, tokenizer: Any, anatomy: Any, chats: list[LabeledChat], layer: int, *,
    max_length: int | None = None, max_batch_size: int | None = 16, max_batch_tokens: int = 16384,
    padding_side: str = "right", stat_dtype: str = "float32", share_prefix: bool = True, info: dict | None = None,
    causal_right_padding: bool = True, checkpoint: ScanCheckpoint | None = None,
) -> tuple[torch.Tensor, GramMatrix]:
    """(m, d) float32 last-token rows of block ``layer`` in data order, and the per-class Gram statistic.

    With ``share_prefix`` (right padding) the tokens every row starts with (the chat template's system
    prompt) run once; ``info["shared_prefix_tokens"]`` says how many. ``causal_right_padding``: right-padded
    batches run without the padding mask (``Capture``'s option; causal models). ``checkpoint``: save the
    statistics every N batches and resume from a saved position (``deepsight.capture.checkpoint``). Under
    torch.distributed each rank takes its share of the rows (``deepsight.capture.sharding``) and the
    statistics are summed over the ranks at the end."""
    ids = tokenize(tokenizer, render_chats(tokenizer, chats), add_special_tokens=True,
                   max_length=_max_length(tokenizer, max_length))
    labels = torch.tensor([c.label for c in chats], dtype=torch.long)
    if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ConfigError("TELLME labels must be 0 (unsafe) or 1 (safe)")
    spec, sink, store = last_token_capture(layer, len(chats), stat_dtype)
    rank, world = rank_and_world()
    mine = torch.tensor(shard_by_length([len(x) for x in ids]), dtype=torch.long)  # this rank's rows
    checkpoint = checkpoint or ScanCheckpoint(None)
    checkpoint.restore(store, {"ids": ids, "labels": labels.tolist(), "layer": layer, "stat_dtype": str(stat_dtype),
                               "rank": [rank, world],
                               "batching": [max_batch_tokens, max_batch_size, padding_side, share_prefix,
                                            causal_right_padding],
                               "model": [type(model).__name__, str(getattr(model, "dtype", "")),
                                         getattr(model.config, "_name_or_path", "")]})
    device = input_device(model, anatomy)
    no_mask = causal_right_padding and padding_side == "right"
    with Capture(model, [spec], sink, anatomy=anatomy, causal_right_padding=no_mask) as cap:
        if world > 1 and "rows" not in store:  # every rank takes part in the sums, with rows or without
            is64 = next(model.parameters()).dtype == torch.float64
            new_last_token_store(store, len(chats), anatomy.hidden_size, torch.float64 if is64 else torch.float32,
                                 cap.layer_device(layer), stat_dtype)
        local = [ids[i] for i in mine.tolist()]
        prefix = cap.shared_prefix(local) if share_prefix and padding_side == "right" and local else None
        if info is not None:
            info["shared_prefix_tokens"] = 0 if prefix is None else prefix.length
        batches = iter_batches(local, max_batch_tokens=max_batch_tokens, pad_id=pad_id(tokenizer), side=padding_side,
                               max_batch_size=max_batch_size, device=device)
        for batch in checkpoint.batches(batches, store):
            index = mine[batch.index]  # rows of the full list
            cap.forward(batch.input_ids, batch.attention_mask, prefix=prefix, labels=labels[index], index=index)
    all_reduce_store(store)
    return store["rows"], store["gram"]


def tellme_from_rows(rows: torch.Tensor, labels: torch.Tensor, gram: GramMatrix, eps: float,
                     reference_order: bool = False) -> dict[str, float]:
    """The nine metrics from the kept rows (erank, distances) and the per-class Grams (coding rates)."""
    lab = labels.cpu()
    order = torch.argsort(lab) if reference_order else torch.sort(lab, stable=True).indices
    rows_sorted = rows[order.to(rows.device)]
    present = [k for k in range(NUM_CLASSES) if gram.class_count(k) > 0]
    out = coding_rates({k: gram.class_gram(k) for k in present}, {k: int(gram.class_count(k)) for k in present}, eps)
    out["erank"] = erank(rows_sorted)
    out.update(distance_metrics(rows_sorted, len(present)))
    return {k: out[k] for k in NAMES}




def tellme_from_chats(ctx: ScanContext, cfg: Any, chats: list[LabeledChat]) -> dict:
    num_layers = num_blocks(ctx.anatomy, ctx.model)
    layer = resolve_layer(cfg.layer, num_layers)
    hw = ctx.hardware
    info: dict = {}
    rows, gram = collect_last_token(
        ctx.model, ctx.tokenizer, ctx.anatomy, chats, layer, max_length=cfg.max_length,
        max_batch_size=cfg.batch_size, max_batch_tokens=hw.max_batch_tokens,
        padding_side="left" if cfg.reference_compat else "right", stat_dtype=hw.stat_dtype,
        share_prefix=hw.share_prefix, info=info, causal_right_padding=hw.causal_right_padding,
        checkpoint=ScanCheckpoint.for_scan(ctx.run_dir, per_rank_name("tellme"), hw.checkpoint_every))
    labels = torch.tensor([c.label for c in chats], dtype=torch.long)
    metrics = tellme_from_rows(rows, labels, gram, cfg.eps, reference_order=cfg.reference_compat)
    warnings = []
    counts = {"unsafe": int((labels == 0).sum()), "safe": int((labels == 1).sum())}
    if min(counts.values()) == 0:
        warnings.append(f"only one class present {counts}: distance metrics are NaN")
    figures = []
    try:
        from deepsight.report.figures import plot_metric_bars

        p = plot_metric_bars(metrics, f"TELLME metrics, block {layer}", ctx.figures_dir / "tellme_metrics.png")
        figures.append(str(p.relative_to(ctx.run_dir)))
    except ImportError as e:
        warnings.append(f"figures skipped: {e}")
    return {
        "metrics": metrics,
        "details": {
            "layer": layer,
            "layer_convention": "block output index (0-based), the hidden state leaving that block",
            "num_blocks": num_layers,
            "num_samples": len(chats),
            "counts": counts,
            "dim": int(rows.shape[1]),
            "padding_side": "left" if cfg.reference_compat else "right",
            "shared_prefix_tokens": info.get("shared_prefix_tokens", 0),
            "row_order": "torch.argsort (reference)" if cfg.reference_compat else "stable sort by label",
        },
        "figures": figures,
        "warnings": warnings,
    }


@register_scan("tellme")
def run_tellme(ctx: ScanContext, cfg: Any) -> dict:

    chats = load_tellme(ctx.data_path(cfg.data_path, "scan.tellme.data_path"), limit=cfg.limit, suffix=cfg.suffix,
                        balanced=not cfg.reference_compat)
    result = tellme_from_chats(ctx, cfg, chats)
    result["config"] = config_dict(cfg)
    return result
