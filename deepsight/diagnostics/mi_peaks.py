"""MI-Peaks scan: mutual information between reasoning states and the answer (spec section 4).

MI-Peaks (Qian et al., reference ChnQ/MI-Peaks and DeepScan): greedy generation from the raw
problem text records the block-l output at the last position of every forward call (r_0 at
prefill, r_i after feeding back generated token g_i); one forward over the raw solution gives
the answer state y. MI(r_i, y) uses the HSIC normalised-CCA estimator (``hsic.py``); the per-
sample top-k MI steps give decoded tokens, the most frequent alphabetic ones are the
"thinking tokens". A histogram MI estimator (``mi_histogram.py``) runs beside it.

Fast path: generation is the project's batched decoder (``generation/decode.py``: left padding,
mask-aware position ids, KV cache; a row that emits EOS leaves the batch and the cache) and the
capture engine's generation mode (``CaptureSpec(..., reduce="step")``) keeps each forward call's
last-position state on the device, attributed to its prompt by ``decode_batch``'s ``step_callback``;
the answer states come from one early-exit ``Capture.forward`` per batch. MI runs batched on the
device with R_y prepared once per sample. The reference generates one
sample at a time with all hidden states, copies every step to the host and inverts two d x d
matrices per token.

Alignment (``alignment``): "generated" (default) reports MI of r_i against token g_i for
i >= 1 (r_0 dropped), as DeepScan reports it; "emitted" pairs state i with the token emitted
from it (g_{i+1}), as the paper's notebook does. Tokens are decoded one id at a time (the
reference's flat batch_decode returns one joined string in transformers 5 and loses them).
Generation is plain argmax (no repetition penalty or other processors).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from typing import Any

import torch

from deepsight.capture import Capture, CaptureSpec, iter_batches
from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.capture.sharding import per_rank_name
from deepsight.config.plain import config_dict
from deepsight.config.schema import HardwareConfig
from deepsight.data.mi_peaks import load_mi_peaks_items
from deepsight.diagnostics.hsic import HSICAnswer
from deepsight.diagnostics.mi_histogram import histogram_mi, spearman
from deepsight.diagnostics.registry import ScanContext, register_scan
from deepsight.generation.decode import decode_batch
from deepsight.models.io import input_device, pad_id

log = logging.getLogger("deepsight")
ALPHA = re.compile(r"^[a-zA-Z]+$")


def _eos_ids(model, tokenizer) -> set[int]:
    """The generation config's EOS id(s) (what the reference's ``generate`` stops on), else the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if ids is None:
        ids = getattr(tokenizer, "eos_token_id", None)
    if ids is None:
        return set()
    return {int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])}


@torch.no_grad()
def generate_with_states(model, anatomy, layer: int, tokenizer, prompts: list[str], *, max_new_tokens: int,
                         batch_size: int, eos: set[int] | None = None, wrap=None,
                         on_batch=None) -> list[tuple[torch.Tensor, list[int]] | None]:
    """Greedy generation recording block ``layer``'s last-position output at every forward call.

    Returns per prompt (states (N, D) on the block's device, generated ids [g_1..g_N]); state i is the
    last-position output of forward call i (0 = prefill), g_{i+1} the token emitted from it. A row stops
    after emitting an EOS id (kept as its last token) or after max_new_tokens tokens. Prompts of similar
    length share a batch of at most ``batch_size``.

    ``wrap`` runs the batch plan (lists of prompt indices) through a ``ScanCheckpoint.batches``;
    ``on_batch({prompt index: (states, ids)})`` takes each finished batch's results, which are then not kept
    (their entries stay None).
    """
    eos = _eos_ids(model, tokenizer) if eos is None else eos
    encoded = [list(tokenizer(p)["input_ids"]) for p in prompts]
    out: list[tuple[torch.Tensor, list[int]] | None] = [None] * len(prompts)
    states: list[list[torch.Tensor]] = [[] for _ in prompts]  # per prompt: (D,) per forward call
    pending: list[torch.Tensor] = []  # the state rows of the forward call in progress

    def sink(ev) -> None:  # reduce="step": (R, D) last position of every row of this call
        pending.append(ev.value)

    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    spec = CaptureSpec("block_output", [layer], reduce="step", name="mi_peaks")
    plan = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    with Capture(model, [spec], sink, anatomy=anatomy, early_exit=False) as cap:
        for rows in plan if wrap is None else wrap(plan):

            def on_step(step: int, live: list[int], rows: list[int] = rows) -> None:
                assert len(pending) == 1, f"block hook fired {len(pending)} times in one forward"
                value = pending.pop()
                for slot, r in enumerate(live):  # live: positions in this batch of the rows in the call
                    states[rows[r]].append(value[slot])

            cap.begin_generation()
            try:
                res = decode_batch(model, [encoded[i] for i in rows], max_new_tokens=max_new_tokens, eos_ids=eos,
                                   pad_id=pad_id(tokenizer), step_callback=on_step)
            finally:
                cap.end_generation()
                pending.clear()
            for r, i in enumerate(rows):
                out[i] = (torch.stack(states[i]), res.tokens[r])
                states[i] = []
            if on_batch is not None:
                on_batch({i: out[i] for i in rows})
                for i in rows:
                    out[i] = None
    return out  # type: ignore[return-value]


@torch.no_grad()
def answer_states(model, anatomy, layer: int, tokenizer, texts: list[str], *, batch_size: int,
                  hardware: HardwareConfig | None = None) -> list[torch.Tensor]:
    """Block ``layer``'s output at the last token of one forward over each raw text (right padding, length-
    bucketed batches of at most ``batch_size`` rows and ``hardware.max_batch_tokens`` tokens, early exit)."""
    hw = hardware if hardware is not None else HardwareConfig()
    encoded = [list(tokenizer(t)["input_ids"]) for t in texts]
    out: list[torch.Tensor | None] = [None] * len(texts)

    def sink(ev) -> None:  # reduce="last": (B, D) last valid token of each row
        for r, i in enumerate(ev.take("index").tolist()):
            out[i] = ev.value[r]

    spec = CaptureSpec("block_output", [layer], reduce="last", name="mi_peaks_answer")
    with Capture(model, [spec], sink, anatomy=anatomy, causal_right_padding=hw.causal_right_padding) as cap:
        for b in iter_batches(encoded, max_batch_tokens=hw.max_batch_tokens, pad_id=pad_id(tokenizer), side="right",
                              max_batch_size=batch_size, device=input_device(model, anatomy)):
            cap.forward(b.input_ids, b.attention_mask, index=b.index)
    return out  # type: ignore[return-value]


def ragged_mean(seqs: list[list[float]]) -> list[float]:
    """Step t averages the sequences longer than t."""
    n = max((len(s) for s in seqs), default=0)
    return [sum(s[t] for s in seqs if len(s) > t) / sum(1 for s in seqs if len(s) > t) for t in range(n)]


def top_peaks(values: list[float], k: int) -> list[int]:
    """Indices of the k largest values, largest first, earlier index first among equals."""
    return sorted(range(len(values)), key=lambda i: values[i], reverse=True)[:k]


def thinking_tokens(tokenizer, trajectories: list[list[float]], token_ids: list[list[int]], top_k: int,
                    n_tokens: int) -> tuple[list[dict], list[list[str]]]:
    """Most frequent alphabetic tokens at the per-sample top_k MI steps (each id decoded on its own)."""
    found: list[str] = []
    per_sample: list[list[str]] = []
    for traj, ids in zip(trajectories, token_ids):
        usable = min(len(traj), len(ids))
        words = []
        for i in top_peaks(traj[:usable], top_k):
            tok = str(tokenizer.decode([int(ids[i])], skip_special_tokens=False)).strip()
            words.append(tok)
            if ALPHA.match(tok):
                found.append(tok)
        per_sample.append(words)
    return [{"token": t, "count": c} for t, c in Counter(found).most_common(n_tokens)], per_sample


def align(mi_all: list[float], hist_all: list[float], gen: list[int], alignment: str):
    """(HSIC trajectory, histogram trajectory, tokens) for the chosen alignment."""
    if alignment == "generated":  # r_i with g_i, i >= 1
        return mi_all[1:], hist_all[1:], gen[: max(0, len(mi_all) - 1)]
    if alignment == "emitted":  # r_i with g_{i+1}, i >= 0
        return mi_all, hist_all, gen[: len(mi_all)]
    raise ValueError(f"scan.mi_peaks.alignment={alignment!r}; expected 'generated' or 'emitted'")


def _sample_result(states: torch.Tensor, gen: list[int], y: torch.Tensor, cfg) -> tuple:
    """(HSIC trajectory, histogram trajectory, tokens, number generated, estimator routes) of one sample."""
    est = HSICAnswer(y.to(states.device), sigma=float(cfg.sigma), eps=float(cfg.eps))
    mi_all = est.mi(states).tolist()
    hist_all = histogram_mi(states, y.to(states.device), int(cfg.histogram_bins)).tolist()
    return (*align(mi_all, hist_all, gen, cfg.alignment), len(gen), dict(est.stats))


def run_mi_peaks(model, tokenizer, anatomy, items: list[tuple[str, str]], cfg,
                 hardware: HardwareConfig | None = None, checkpoint: ScanCheckpoint | None = None) -> dict[str, Any]:
    """MI-Peaks on (problem, solution) pairs; the scan's result dict (without figures). Under torch.distributed
    each rank generates its share of the problems and the per-sample results are gathered on every rank.

    The answer states come first (one cheap forward per solution); each generation batch's samples are then
    reduced to their MI results at once. ``checkpoint``: those per-sample results are saved every N generation
    batches; a rerun restores them and generates only the batches not done."""
    from deepsight.capture.sharding import gather_by_index, rank_and_world, shard_by_length

    hw = hardware if hardware is not None else HardwareConfig()
    layer = anatomy.layer_index(int(cfg.layer))
    mine = shard_by_length([len(p) + int(cfg.max_new_tokens) for p, _ in items])  # this rank's samples
    problems, solutions = [items[i][0] for i in mine], [items[i][1] for i in mine]
    checkpoint = checkpoint or ScanCheckpoint(None)
    store: dict[str, Any] = {}
    keys = ("layer", "max_new_tokens", "batch_size", "sigma", "eps", "histogram_bins", "alignment")
    checkpoint.restore(store, {
        "items": items, "rank": list(rank_and_world()), "layer": layer,
        "cfg": {k: str(getattr(cfg, k)) for k in keys}, "eos": sorted(_eos_ids(model, tokenizer)),
        "hardware": [int(hw.max_batch_tokens), bool(hw.causal_right_padding)],
        "model": [type(model).__name__, str(getattr(model, "dtype", "")),
                  getattr(getattr(model, "config", None), "_name_or_path", "")]})
    done: dict[int, tuple] = store.setdefault("per_sample", {})  # local sample index -> its result
    ys = answer_states(model, anatomy, layer, tokenizer, solutions, batch_size=int(cfg.batch_size), hardware=hw)

    def reduce(batch: dict[int, tuple[torch.Tensor, list[int]]]) -> None:
        for i, (states, gen) in batch.items():
            done[i] = _sample_result(states, gen, ys[i], cfg)

    generate_with_states(model, anatomy, layer, tokenizer, problems, max_new_tokens=int(cfg.max_new_tokens),
                         batch_size=int(cfg.batch_size), wrap=lambda plan: checkpoint.batches(plan, store),
                         on_batch=reduce)
    per_sample = gather_by_index([done[i] for i in range(len(problems))], mine, len(items))  # data order
    trajs, hists, toks = [p[0] for p in per_sample], [p[1] for p in per_sample], [p[2] for p in per_sample]
    stats = {k: sum(p[4][k] for p in per_sample) for k in ("low_rank", "direct")}
    mean = ragged_mean(trajs)
    hist_mean = ragged_mean(hists)
    thinking, per_sample_tokens = thinking_tokens(tokenizer, trajs, toks, int(cfg.top_k), int(cfg.n_thinking_tokens))
    all_vals = [v for t in trajs for v in t]
    all_hist = [v for h in hists for v in h]
    warnings = []
    if not all_vals:
        warnings.append("no reasoning steps (every generation ended at its first token)")
    metrics = {
        "mean_mi": sum(all_vals) / len(all_vals) if all_vals else math.nan,
        "max_mi": max(mean) if mean else math.nan,
        "histogram_mean_mi": sum(all_hist) / len(all_hist) if all_hist else math.nan,
        "spearman": spearman(mean, hist_mean),
        "thinking_tokens": thinking,
        "mean_trajectory": mean,
    }
    details = {
        "layer": layer,
        "histogram_mean_trajectory": hist_mean,
        "trajectories": trajs,
        "histogram_trajectories": hists,
        "spearman_per_sample": [spearman(t, h) for t, h in zip(trajs, hists)],
        "peaks": [top_peaks(t, int(cfg.top_k)) for t in trajs],
        "peak_tokens": per_sample_tokens,
        "generated_tokens": [p[3] for p in per_sample],
        "estimator_routes": stats,
        "notes": (f"alignment={cfg.alignment} (generated: MI of r_i vs token g_i, i >= 1, as DeepScan reports; "
                  "emitted: state i vs the token emitted from it, as the paper's notebook); tokens decoded one id "
                  "at a time (the reference's flat batch_decode loses them in transformers 5); greedy argmax "
                  "generation without logits processors"),
    }
    return {"metrics": metrics, "details": details, "warnings": warnings}




@register_scan("mi_peaks")
def mi_peaks_scan(ctx: ScanContext, cfg) -> dict[str, Any]:
    from deepsight.report.figures import plot_trajectory

    path = ctx.data_path(cfg.data_path, "scan.mi_peaks.data_path")
    items = [(it.problem, it.solution) for it in load_mi_peaks_items(path, int(cfg.n_samples))]
    model = ctx.model
    was_training = model.training
    model.eval()
    try:
        res = run_mi_peaks(model, ctx.tokenizer, ctx.anatomy, items, cfg, hardware=ctx.hardware,
                           checkpoint=ScanCheckpoint.for_scan(ctx.run_dir, per_rank_name("mi_peaks"),
                                                              ctx.hardware.checkpoint_every))
    finally:
        model.train(was_training)
    mean = res["metrics"]["mean_trajectory"]
    peaks = top_peaks(mean, int(cfg.top_k))
    fig = plot_trajectory(mean, peaks, ctx.figures_dir / "mi_peaks_mean_trajectory.png",
                          title=f"MI-Peaks: mean MI per step (block {res['details']['layer']}, n={len(items)})",
                          ylabel="HSIC MI")
    res["figures"] = [str(fig.relative_to(ctx.run_dir))]
    res["details"]["mean_trajectory_peaks"] = peaks
    res["details"]["data"] = str(path)
    res["config"] = config_dict(cfg)
    for w in res["warnings"]:
        log.warning("mi_peaks: %s", w)
    return res
