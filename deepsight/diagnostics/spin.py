"""SPIN scan: coupling of the weights most important to two objectives (privacy, fairness).

Spec: ../shared/spec/DIAGNOSTICS.md section 3 (SPIN, Chen et al.; reference ChnQ/SPIN and
DeepScan). For each dataset, G_W = sum over samples of |dL_s/dW| for every considered 2-D
weight, importance |W| * G_W, candidates = top-k flat indices (k = int(q * numel)), and
coupled = |cand_1 & cand_2| per weight, summed per layer and in total.

How it is fast: the reference runs forward+backward once per (layer, sample). Here one
backward pass of a batch of samples serves every layer of a layer group (usually all
layers): ``GradCapture`` hooks each ``nn.Linear`` and the fused kernel adds
sum_s |sum_t delta_{s,t} x_{s,t}^T| per weight, so batching gives exactly the batch-1
numbers (the loss is the sum of per-sample mean cross-entropies). MoE models with fused
3-D expert weights (transformers 5), or routers that are not ``nn.Linear``, run one sample
per backward with weight gradients instead (still one pass for all layers).

Data: dataset1 = ``beaver_train330k_privacy_safe_1k.csv``, dataset2 =
``beaver_train330k_fairness_safe_1k.csv`` (the files DeepScan's SPIN configs use), n rows each
chosen like ``datasets`` ``shuffle(seed).select(range(n))``.

Reference compat (``reference_compat=true``): the response's first token is always dropped
(the reference's ``response_ids[1:]``, meant to drop a BOS; default: dropped only when it is
the tokenizer's BOS) and target_module uses the reference's name filters.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F

from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.capture.sharding import per_rank_name
from deepsight.config.plain import config_dict
from deepsight.data.spin import load_spin_rows
from deepsight.diagnostics.registry import ScanContext, register_scan
from deepsight.diagnostics.spin_loss import plain_head, response_loss
from deepsight.diagnostics.spin_math import (
    WeightRef,
    candidates,
    coupling_summary,
    num_candidates,
    smallest_q_for_one,
    weights_of_model,
)
from deepsight.models.io import input_device, pad_id

log = logging.getLogger("deepsight")
_DEFAULT_NOTE = ("default: the response's first token is dropped only when it is the tokenizer's BOS (the reference "
                 "always drops it); target_module mlp/self_attn = outside/inside the attention module")
_COMPAT_NOTE = ("reference_compat: the response's first token is always dropped; target_module uses the reference's "
                "name filters (mlp = no 'self_attn' in the name, self_attn = no 'mlp' in the name)")


# ------------------------------------------------------------------ inputs
def encode_sample(tokenizer, prompt: str, response: str, reference_compat: bool = False) -> tuple[list[int], int]:
    """(ids, prompt length): tokens(prompt) then tokens(response) minus its first token when that is a BOS
    (always, with reference_compat)."""
    p = list(tokenizer(prompt)["input_ids"])
    r = list(tokenizer(response)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if r and (reference_compat or (bos is not None and r[0] == bos)):
        r = r[1:]
    return p + r, len(p)


def per_sample_loss(logits: torch.Tensor, ids: torch.Tensor, n_prompt: torch.Tensor, lengths: torch.Tensor,
                    first_pos: int = 0) -> torch.Tensor:
    """(S,) mean next-token cross-entropy over each row's response tokens.

    ``logits`` (S, N, V) are the model outputs at positions first_pos .. first_pos + N - 1 of the
    right-padded ``ids`` (S, T); the target of position t is ids[t + 1], counted when
    n_prompt <= t + 1 < length.
    """
    s, n, v = logits.shape
    pos = torch.arange(first_pos, first_pos + n, device=ids.device)  # (N,)
    tgt_pos = pos + 1
    valid = (tgt_pos[None, :] >= n_prompt[:, None]) & (tgt_pos[None, :] < lengths[:, None])  # (S, N)
    targets = ids.gather(1, tgt_pos.clamp(max=ids.shape[1] - 1).expand(s, n))  # (S, N)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 at least, fp64 stays fp64
    ce = F.cross_entropy(logits.reshape(s * n, v), targets.reshape(-1), reduction="none").view(s, n)
    ce = torch.where(valid.to(ce.device), ce, 0.0)
    return ce.sum(1) / valid.sum(1).to(ce.device)


def _needs_param_route(refs: list[WeightRef]) -> bool:
    return any(r.module is None or not isinstance(r.module, torch.nn.Linear) for r in refs)


# ------------------------------------------------------------------ G_W accumulation
def _batched_grad_sums(model, refs, samples, *, max_batch_tokens, max_batch_size, pad_id, stat_dtype,
                       causal_right_padding=True, stats=None, wrap=None) -> dict:
    """Dense route: G_W for every ref (all nn.Linear) with batched backward passes.

    ``causal_right_padding``: the right-padded batches run without the padding mask (a causal model's valid
    tokens attend only to earlier, valid positions, and padded positions carry no loss, so every gradient at
    a valid position is the masked forward's; attention takes its causal path). ``stats``: accumulators to add
    into (a resumed checkpoint's); ``wrap``: runs the batch iterable through a ``ScanCheckpoint.batches`` (skip
    the finished batches, save every N)."""
    from deepsight.capture.batching import iter_batches
    from deepsight.capture.gradients import GradCapture
    from deepsight.stats import GradAbsSum

    if stats is None:
        stats = {r.name: GradAbsSum(r.shape, dtype=stat_dtype, device=r.param.device) for r in refs}
    modules = {r.name: r.module for r in refs}
    dev = input_device(model)
    seqs = [ids for ids, _ in samples]
    n_prompt_all = torch.tensor([npr for _, npr in samples])
    with GradCapture(model, modules, stats) as gc, torch.enable_grad():
        # inside: GradCapture has frozen every parameter (the head's included, whatever the caller left)
        fused = {"head": plain_head(model), "base": getattr(model, "base_model", None)}
        if fused["base"] is model:
            fused["head"] = None
        batches = iter_batches(seqs, max_batch_tokens=max_batch_tokens, pad_id=pad_id, side="right",
                               max_batch_size=max_batch_size, device=dev)
        for b in batches if wrap is None else wrap(batches):
            n_prompt = n_prompt_all[b.index].to(dev)
            lengths = b.attention_mask.sum(1)
            gc.token_mask = b.attention_mask
            mask = None if causal_right_padding else b.attention_mask
            loss = _fused_head_loss(model, fused, b.input_ids, mask, n_prompt, lengths)
            if loss is None:  # the plain way: logits for every position from the first response target on
                first = int(n_prompt.min()) - 1
                keep = b.input_ids.shape[1] - first
                out = model(input_ids=b.input_ids, attention_mask=mask, logits_to_keep=keep, use_cache=False)
                loss = per_sample_loss(out.logits, b.input_ids, n_prompt, lengths, first_pos=first).sum()
                del out
            loss.backward()
    return stats


def _fused_head_loss(model, fused: dict, ids, mask, n_prompt, lengths) -> torch.Tensor | None:
    """The batch's loss through ``response_loss`` (the head in chunks over response positions), or None
    where the model's head is not a plain linear map of the base model's output (then ``fused["head"]``
    is cleared and later batches take the plain way too)."""
    head, base = fused["head"], fused["base"]
    if head is None or base is None:
        return None
    grabbed: list[torch.Tensor] = []
    handle = base.register_forward_hook(lambda m, a, out: grabbed.append(out[0]))
    try:
        out = model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False)
    finally:
        handle.remove()
    hidden = grabbed[-1] if grabbed else None
    ok = hidden is not None and hidden.dim() == 3 and tuple(hidden.shape[:2]) == tuple(ids.shape)
    if ok:  # the model's own logits at the last position = the plain linear head of its hidden state
        with torch.no_grad():
            mine = F.linear(hidden[:, -1], head.weight, head.bias).float()
            ok = bool(torch.allclose(mine, out.logits[:, -1].float(), rtol=1e-4, atol=1e-4 * float(mine.abs().max())))
    del out
    if not ok:
        log.info("spin: the output head is not a plain linear map of the base model's output; full logits")
        fused["head"] = None
        return None
    return response_loss(hidden, head, ids, n_prompt, lengths)


def _param_grad_sums(model, refs, samples, *, stat_dtype, stats=None, wrap=None) -> dict:
    """One sample per backward with weight gradients (fused experts / non-Linear routers): exact, per sample.
    ``stats`` and ``wrap`` as in ``_batched_grad_sums`` (here a "batch" is one sample)."""
    from deepsight.stats import GradAbsSum

    params = {id(r.param): r.param for r in refs}
    if stats is None:
        stats = {r.name: GradAbsSum(r.shape, dtype=stat_dtype, device=r.param.device) for r in refs}
    was = {id(p): p.requires_grad for p in model.parameters()}
    dev = input_device(model)
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in params)
        with torch.enable_grad():
            for ids, n_prompt in samples if wrap is None else wrap(samples):
                for p in params.values():
                    p.grad = None
                x = torch.tensor([ids], device=dev)
                out = model(input_ids=x, use_cache=False)
                loss = per_sample_loss(out.logits, x, torch.tensor([n_prompt], device=dev),
                                       torch.tensor([len(ids)], device=dev)).sum()
                loss.backward()
                for r in refs:
                    if r.param.grad is not None:
                        stats[r.name].update_grad(r.view(r.param.grad))
    finally:
        for p in model.parameters():
            p.requires_grad_(was[id(p)])
            p.grad = None
    return stats


def _layer_groups(refs: list[WeightRef], group_size: int | None, max_batch_tokens: int) -> list[list[int]]:
    """Layers per pass: all at once unless their accumulators plus saved inputs exceed half the free memory."""
    layers = sorted({r.layer for r in refs})
    if not layers:
        return []
    if group_size is None:
        per_layer = {l: 0 for l in layers}
        for r in refs:
            per_layer[r.layer] += 4 * r.numel + 4 * max_batch_tokens * r.shape[1]
        dev = refs[0].param.device
        if dev.type == "cuda":
            free = torch.cuda.mem_get_info(dev)[0]
        else:
            try:
                import psutil

                free = psutil.virtual_memory().available
            except ImportError:  # pragma: no cover
                free = 8 << 30
        group_size = max(1, int(0.5 * free // max(per_layer.values())))
    return [layers[i : i + group_size] for i in range(0, len(layers), group_size)]


def layer_group_plan(refs: list[WeightRef], layer_group_size: int | None, max_batch_tokens: int) -> list[list[int]]:
    """The layer groups of the dense route (the same on every rank under torch.distributed)."""
    from deepsight.capture.sharding import rank_and_world

    groups = _layer_groups(refs, layer_group_size, max_batch_tokens)
    if groups and layer_group_size is None and rank_and_world()[1] > 1:  # the same groups on every rank
        size = torch.tensor([len(groups[0])])
        torch.distributed.all_reduce(size, op=torch.distributed.ReduceOp.MIN)
        groups = _layer_groups(refs, int(size), max_batch_tokens)
    return groups


def grad_abs_sums(model, anatomy, refs, samples, *, batch_size=8, max_batch_tokens=4096, pad_id=0,
                  stat_dtype="float32", layer_group_size=None, causal_right_padding=True, groups=None,
                  checkpoint: ScanCheckpoint | None = None, store: dict | None = None,
                  label: str = "") -> tuple[dict, dict]:
    """G_W of every ref over ``samples`` [(ids, n_prompt)]; returns ({name: GradAbsSum}, info). Under
    torch.distributed each rank takes its share of the samples and the sums are all_reduced (per layer group).

    ``groups``: the layer-group plan (default ``layer_group_plan``). ``checkpoint`` with its restored ``store``
    (the scan's dict, see ``run_spin``) and this dataset's ``label``: the sums go into ``store["sums"]``, saved
    every N batches within a layer group and after each finished group (``store["groups_done"]``); a store that
    was saved during this dataset resumes in its layer group at the checkpoint's position."""
    from deepsight.capture.sharding import all_reduce_store, shard_by_length
    from deepsight.stats import GradAbsSum

    checkpoint = checkpoint or ScanCheckpoint(None)
    store = {} if store is None else store
    if store.get("label") != label:  # a fresh dataset: nothing of it done yet
        store.update(label=label, groups_done=0, sums={})
        checkpoint.position = 0
    sums: dict = store["sums"]

    def wrap(it):
        return checkpoint.batches(it, store)

    def accumulators(chosen: list[WeightRef]) -> dict:  # in the store before the first batch, restored ones kept
        for r in chosen:
            if r.name not in sums:
                sums[r.name] = GradAbsSum(r.shape, dtype=stat_dtype, device=r.param.device)
        return {r.name: sums[r.name] for r in chosen}

    def group_done(n: int) -> None:
        store["groups_done"] = n
        checkpoint.position = 0
        checkpoint.save(store)

    samples = [samples[i] for i in shard_by_length([len(ids) for ids, _ in samples])]
    if _needs_param_route(refs):
        if store["groups_done"] == 0:
            all_reduce_store(_param_grad_sums(model, refs, samples, stat_dtype=stat_dtype, stats=accumulators(refs),
                                              wrap=wrap))
            group_done(1)
        return sums, {"route": "per-sample weight grads", "passes": len(samples)}
    groups = layer_group_plan(refs, layer_group_size, max_batch_tokens) if groups is None else groups
    for g, group in enumerate(groups):
        if g < store["groups_done"]:
            continue
        chosen = [r for r in refs if r.layer in set(group)]
        all_reduce_store(_batched_grad_sums(
            model, chosen, samples, max_batch_tokens=max_batch_tokens, max_batch_size=batch_size, pad_id=pad_id,
            stat_dtype=stat_dtype, causal_right_padding=causal_right_padding, stats=accumulators(chosen), wrap=wrap))
        group_done(g + 1)
    return sums, {"route": "batched per-sample |grad| (fused kernel)", "layer_groups": [list(g) for g in groups]}


def spin_candidates(refs: list[WeightRef], sums: dict, q: float) -> dict[str, torch.Tensor]:
    """Candidate flat indices per weight name."""
    return {r.name: candidates(r.view(), sums[r.name], num_candidates(q, r.shape)) for r in refs}


# ------------------------------------------------------------------ the scan
def run_spin(model, tokenizer, anatomy, rows1, rows2, cfg, stat_dtype: str = "float32",
             max_batch_tokens: int = 4096, causal_right_padding: bool = True,
             checkpoint: ScanCheckpoint | None = None) -> dict[str, Any]:
    """SPIN on two lists of (prompt, response) rows; the result dict of the scan (without figures).

    ``checkpoint``: the G_W sums are saved every N batches within a layer group and after each group, a
    finished dataset's candidate sets once it is done; a rerun resumes from there (``grad_abs_sums``)."""
    warnings: list[str] = []
    compat = bool(cfg.reference_compat)
    refs = weights_of_model(anatomy, cfg.target_module, reference_compat=compat)
    shapes = [r.shape for r in refs]
    no_candidates = all(num_candidates(cfg.q, s) == 0 for s in shapes)
    if no_candidates:
        # every top-k is empty whatever the gradients are: the result is known without computing them
        biggest = max((a * b for a, b in shapes), default=0)
        warnings.append(
            f"q={cfg.q:g} gives k = int(q * numel) = 0 for every matrix (largest has {biggest} weights), so there are "
            f"no candidates and no gradient was computed; the smallest q that gives k >= 1 is "
            f"{smallest_q_for_one(shapes):.6g} (set scan.spin.q)"
        )
    pad = pad_id(tokenizer)
    encoded: dict[str, list[tuple[list[int], int]]] = {}
    for label, rows in (("dataset1", rows1), ("dataset2", rows2)):
        samples = encoded[label] = []
        for row in rows:
            ids, n_prompt = encode_sample(tokenizer, row[0], row[1], compat)
            if len(ids) - n_prompt < 1:
                warnings.append(f"{label}: a row has no response token after tokenisation; skipped")
                continue
            samples.append((ids, n_prompt))
    checkpoint = checkpoint or ScanCheckpoint(None)
    store: dict[str, Any] = {}
    groups = None
    if checkpoint.enabled and not no_candidates:
        from deepsight.capture.sharding import rank_and_world

        groups = "per-sample" if _needs_param_route(refs) else layer_group_plan(refs, cfg.layer_group_size,
                                                                                  max_batch_tokens)
        checkpoint.restore(store, {
            "refs": [[r.name, list(r.shape)] for r in refs], "samples": encoded, "q": float(cfg.q), "groups": groups,
            "rank": list(rank_and_world()), "stat_dtype": str(stat_dtype),
            "batching": [int(cfg.batch_size), int(max_batch_tokens), pad, bool(causal_right_padding)],
            "model": [type(model).__name__, str(getattr(model, "dtype", "")),
                      getattr(getattr(model, "config", None), "_name_or_path", "")]})
        groups = None if groups == "per-sample" else groups
    done = store.setdefault("candidates", {})  # finished datasets' candidate sets
    cands, info = [], {}
    for label in ("dataset1", "dataset2"):
        samples = encoded[label]
        if no_candidates:
            info[label] = {"route": "none (k = 0 for every matrix)", "samples": len(samples)}
            cands.append({r.name: torch.zeros(0, dtype=torch.long) for r in refs})
            continue
        if label not in done:
            sums, done[label] = grad_abs_sums(model, anatomy, refs, samples, batch_size=cfg.batch_size,
                                              max_batch_tokens=max_batch_tokens, pad_id=pad, stat_dtype=stat_dtype,
                                              layer_group_size=cfg.layer_group_size,
                                              causal_right_padding=causal_right_padding, groups=groups,
                                              checkpoint=checkpoint, store=store, label=label)
            done[label]["candidates"] = spin_candidates(refs, sums, cfg.q)
            store.update(label=None, sums={}, groups_done=0)  # the sums are no longer needed
            del sums
            checkpoint.save(store)
        info[label] = {k: v for k, v in done[label].items() if k != "candidates"}
        info[label]["samples"] = len(samples)
        cands.append(done[label]["candidates"])
    summary = coupling_summary(refs, cands[0], cands[1], anatomy.num_layers, per_module=bool(cfg.per_module))
    details = {"layers": summary["layers"], "passes": info, "weights_considered": len(refs),
               "reference_compat": _COMPAT_NOTE if compat else _DEFAULT_NOTE}
    if "modules" in summary:
        details["modules"] = summary["modules"]
    return {"metrics": dict(summary["totals"]), "details": details, "warnings": warnings, "candidates": cands}




@register_scan("spin")
def spin_scan(ctx: ScanContext, cfg) -> dict[str, Any]:
    from deepsight.report.figures import plot_per_layer

    p1 = ctx.data_path(cfg.dataset1_path, "scan.spin.dataset1_path")
    p2 = ctx.data_path(cfg.dataset2_path, "scan.spin.dataset2_path")
    rows1 = [(r.prompt, r.response) for r in load_spin_rows(p1, cfg.n_samples, cfg.seed)]
    rows2 = [(r.prompt, r.response) for r in load_spin_rows(p2, cfg.n_samples, cfg.seed)]
    hw = ctx.hardware
    budget = min(int(hw.max_batch_tokens), int(cfg.max_batch_tokens))
    model = ctx.model
    was_training = model.training
    model.eval()
    try:
        res = run_spin(model, ctx.tokenizer, ctx.anatomy, rows1, rows2, cfg,
                       stat_dtype=hw.stat_dtype, max_batch_tokens=budget, causal_right_padding=hw.causal_right_padding,
                       checkpoint=ScanCheckpoint.for_scan(ctx.run_dir, per_rank_name("spin"), hw.checkpoint_every))
    finally:
        model.train(was_training)
    res.pop("candidates")
    for w in res["warnings"]:
        log.warning("spin: %s", w)
    coupled = {row["layer"]: row["coupled"] for row in res["details"]["layers"]}
    fig = plot_per_layer(coupled, f"SPIN coupled weights per layer (q={cfg.q:g}, {cfg.target_module})",
                         ctx.figures_dir / "spin_coupled_per_layer.png", ylabel="coupled", kind="bar")
    res["figures"] = [str(fig.relative_to(ctx.run_dir))]
    res["config"] = config_dict(cfg)
    res["details"]["data"] = {"dataset1": str(p1), "dataset2": str(p2)}
    if not math.isfinite(res["metrics"]["coupled_rate_vs_candidate_mean"]):
        res["metrics"]["coupled_rate_vs_candidate_mean"] = math.nan
    return res
