"""MI-Peaks scan: mutual information between reasoning states and the answer (spec section 4).

MI-Peaks (Qian et al., reference ChnQ/MI-Peaks and DeepScan): greedy generation from the raw
problem text records the block-l output at the last position of every forward call (r_0 at
prefill, r_i after feeding back generated token g_i); one forward over the raw solution gives
the answer state y. MI(r_i, y) uses the HSIC normalised-CCA estimator (``hsic.py``); the per-
sample top-k MI steps give decoded tokens, the most frequent alphabetic ones are the
"thinking tokens". A histogram MI estimator (``mi_histogram.py``) runs beside it.

Fast path: generation is batched (left padding, mask-aware position ids, KV cache; a row that
emits EOS leaves the batch and the cache) and a hook keeps each step's state on the device;
MI runs batched on the device with R_y prepared once per sample. The reference generates one
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
from dataclasses import asdict, is_dataclass
from typing import Any

import torch

from deepsight.data.mi_peaks import load_mi_peaks_items
from deepsight.diagnostics.hsic import HSICAnswer
from deepsight.diagnostics.mi_histogram import histogram_mi, spearman
from deepsight.diagnostics.registry import ScanContext, register_scan

log = logging.getLogger("deepsight")
ALPHA = re.compile(r"^[a-zA-Z]+$")


class _Stop(Exception):
    pass


def _block_hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _eos_ids(model, tokenizer) -> set[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if ids is None:
        ids = getattr(tokenizer, "eos_token_id", None)
    if ids is None:
        return set()
    return {int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])}


def _pad_id(tokenizer, eos: set[int]) -> int:
    p = getattr(tokenizer, "pad_token_id", None)
    return int(p) if isinstance(p, int) else (min(eos) if eos else 0)


@torch.no_grad()
def generate_with_states(model, block, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int,
                         eos: set[int] | None = None) -> list[tuple[torch.Tensor, list[int]]]:
    """Greedy generation recording ``block``'s last-position output at every forward call.

    Returns per prompt (states (N, D) on the block's device, generated ids [g_1..g_N]); state i is the
    last-position output of forward call i (0 = prefill), g_{i+1} the token emitted from it. A row stops
    after emitting an EOS id (kept as its last token) or after max_new_tokens tokens.
    """
    eos = _eos_ids(model, tokenizer) if eos is None else eos
    pad = _pad_id(tokenizer, eos)
    dev = model.get_input_embeddings().weight.device
    encoded = [list(tokenizer(p)["input_ids"]) for p in prompts]
    out: list[tuple[torch.Tensor, list[int]] | None] = [None] * len(prompts)
    captured: list[torch.Tensor] = []
    handle = block.register_forward_hook(lambda m, a, o: captured.append(_block_hidden(o)[:, -1].detach()))
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            t = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), t), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), t), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, t - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[r, t - len(encoded[i]) :] = 1
            ids, mask = ids.to(dev), mask.to(dev)
            pos = (mask.cumsum(1) - 1).clamp(min=0)
            states: list[list[torch.Tensor]] = [[] for _ in rows]  # per row: (D,) per call
            tokens: list[list[torch.Tensor]] = [[] for _ in rows]  # per row: () per call
            active = torch.arange(len(rows), device=dev)  # batch slot -> row of this batch
            past = None
            step_ids, step_pos = ids, pos
            eos_t = torch.tensor(sorted(eos), device=dev, dtype=torch.long)
            for step in range(max_new_tokens):
                captured.clear()
                res = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=past,
                            use_cache=True, logits_to_keep=1)
                past = res.past_key_values
                assert len(captured) == 1, f"block hook fired {len(captured)} times in one forward"
                nxt = res.logits[:, -1].argmax(-1)  # (B_active,)
                for slot, r in enumerate(active.tolist()):
                    states[r].append(captured[0][slot])
                    tokens[r].append(nxt[slot])
                if step + 1 == max_new_tokens:
                    break
                alive = ~torch.isin(nxt, eos_t) if eos_t.numel() else torch.ones_like(nxt, dtype=torch.bool)
                if not bool(alive.all()):  # drop finished rows from the batch and the KV cache
                    if not bool(alive.any()):
                        break
                    keep = alive.nonzero().flatten()
                    past.batch_select_indices(keep)
                    active, nxt, mask, step_pos = active[keep], nxt[keep], mask[keep], step_pos[keep]
                step_ids = nxt[:, None]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                step_pos = step_pos[:, -1:] + 1
            for r, i in enumerate(rows):
                out[i] = (torch.stack(states[r]), torch.stack(tokens[r]).tolist())
            del past, res
    finally:
        handle.remove()
    return out  # type: ignore[return-value]


@torch.no_grad()
def answer_states(model, block, tokenizer, texts: list[str], *, batch_size: int) -> list[torch.Tensor]:
    """Block output at the last token of one forward over each raw text (right padding, early exit)."""
    dev = model.get_input_embeddings().weight.device
    pad = _pad_id(tokenizer, _eos_ids(model, tokenizer))
    encoded = [list(tokenizer(t)["input_ids"]) for t in texts]
    out: list[torch.Tensor | None] = [None] * len(texts)
    captured: list[torch.Tensor] = []

    def hook(m, a, o):
        captured.append(_block_hidden(o).detach())
        raise _Stop

    handle = block.register_forward_hook(hook)
    try:
        for start in range(0, len(texts), batch_size):
            rows = list(range(start, min(start + batch_size, len(texts))))
            t = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), t), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), t), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[r, : len(encoded[i])] = 1
            captured.clear()
            try:
                model(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False)
            except _Stop:
                pass
            h = captured[0]  # (B, T, D)
            for r, i in enumerate(rows):
                out[i] = h[r, len(encoded[i]) - 1]
    finally:
        handle.remove()
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


def run_mi_peaks(model, tokenizer, anatomy, items: list[tuple[str, str]], cfg) -> dict[str, Any]:
    """MI-Peaks on (problem, solution) pairs; the scan's result dict (without figures). Under torch.distributed
    each rank generates its share of the problems and the per-sample results are gathered on every rank."""
    from deepsight.capture.sharding import gather_by_index, shard_by_length

    layer = anatomy.layer_index(int(cfg.layer))
    block = anatomy.blocks[layer]
    mine = shard_by_length([len(p) + int(cfg.max_new_tokens) for p, _ in items])  # this rank's samples
    problems, solutions = [items[i][0] for i in mine], [items[i][1] for i in mine]
    gens = generate_with_states(model, block, tokenizer, problems, max_new_tokens=int(cfg.max_new_tokens),
                                batch_size=int(cfg.batch_size))
    ys = answer_states(model, block, tokenizer, solutions, batch_size=int(cfg.batch_size))
    per_sample = []
    for (states, gen), y in zip(gens, ys):
        est = HSICAnswer(y.to(states.device), sigma=float(cfg.sigma), eps=float(cfg.eps))
        mi_all = est.mi(states).tolist()
        hist_all = histogram_mi(states, y.to(states.device), int(cfg.histogram_bins)).tolist()
        per_sample.append((*align(mi_all, hist_all, gen, cfg.alignment), len(gen), dict(est.stats)))
    per_sample = gather_by_index(per_sample, mine, len(items))  # every sample, in data order
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


def _cfg_dict(cfg: Any) -> dict:
    if is_dataclass(cfg):
        return asdict(cfg)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


@register_scan("mi_peaks")
def mi_peaks_scan(ctx: ScanContext, cfg) -> dict[str, Any]:
    from deepsight.report.figures import plot_trajectory

    path = ctx.data_path(cfg.data_path, "scan.mi_peaks.data_path")
    items = [(it.problem, it.solution) for it in load_mi_peaks_items(path, int(cfg.n_samples))]
    model = ctx.model
    was_training = model.training
    model.eval()
    try:
        res = run_mi_peaks(model, ctx.tokenizer, ctx.anatomy, items, cfg)
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
    res["config"] = _cfg_dict(cfg)
    for w in res["warnings"]:
        log.warning("mi_peaks: %s", w)
    return res
