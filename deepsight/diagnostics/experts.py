"""MoE expert diagnostics: which experts carry safety, and what happens when they are silenced.

After SAFEx (arXiv 2506.17368), SteerMoE (arXiv 2509.09660) and "Large Language Lobotomy" (arXiv
2602.08741): refusal in MoE models concentrates in a few experts. One length-bucketed forward over
labelled chats (default: X-Boundary's harmful / safe / boundary chats; or ``classes_from=eval:<benchmark>``:
the model's own replies labelled refused / complied by the benchmark's judge) streams, per MoE layer,
expert and class, separately for prompt and response tokens, on the device where the layer lives
(``deepsight.capture`` sites ``expert_routing`` / ``expert_output`` into ``deepsight.stats.ExpertRouting``):
selections after the model's own top-k (exactly as it routes: grouping, correction bias, renormalisation
included), gate-weight sums, router entropy and each expert's output summed over the tokens it served.
Read-outs (``experts_metrics.py``): activation rates p(expert | class), the risk difference
p(a) - p(b) of the contrast (harmful - safe) with a 95% Newcombe interval, mean gates, expert-output
centroid separation, load imbalance, the ranked safety experts and their stability over two disjoint
halves of the samples. ``ablate_top=K`` / ``ablate_random=K`` then mask those / random experts and
rerun refusal prompts (``experts_ablation.py``). Dense models: skipped with the reason.

Usage: ``deepsight audit=none scan=[experts] model=tiny_moe_qwen3`` (``scan.experts.ablate_top=12``).
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from deepsight.capture import Capture, CaptureSpec, iter_batches
from deepsight.capture.checkpoint import ScanCheckpoint
from deepsight.capture.sharding import all_reduce_store, per_rank_name, rank_and_world, shard_by_length
from deepsight.config.plain import config_dict
from deepsight.data.labeled_chats import LabeledChat
from deepsight.diagnostics._chat_tokens import render_chats
from deepsight.diagnostics.experts_metrics import layer_readout, rank_experts, risk_differences, stability
from deepsight.diagnostics.registry import ScanContext, register_scan
from deepsight.errors import ConfigError
from deepsight.models.io import input_device, pad_id
from deepsight.stats.experts import PARTS, ExpertRouting

RANK_PARTS = ("prompt", "response", "all")


def encode_with_parts(tokenizer: Any, chats: list[LabeledChat], max_length: int | None
                      ) -> tuple[list[list[int]], list[int]]:
    """Token ids of each rendered chat and how many of its first tokens belong to the prompt (the rest is the
    final assistant reply). The prompt is the chat without its last assistant turn, with the generation prompt."""
    texts = render_chats(tokenizer, chats)
    prompts = []
    for c, text in zip(chats, texts):
        if c.messages[-1]["role"] != "assistant":
            prompts.append(text)
            continue
        p = tokenizer.apply_chat_template(c.messages[:-1], tokenize=False, add_generation_prompt=True)
        prompts.append(p if text.startswith(p) else None)
    trunc = max_length is not None
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(texts, add_special_tokens=False, truncation=trunc, max_length=max_length,
                        return_offsets_mapping=True)
        ids = [list(x) for x in enc["input_ids"]]
        n_prompt = []
        for p, offs, row in zip(prompts, enc["offset_mapping"], ids):
            cut = len(p) if p is not None else None
            n_prompt.append(len(row) if cut is None else sum(1 for s, _ in offs if s < cut))
        return ids, n_prompt
    ids = [list(x) for x in tokenizer(texts, add_special_tokens=False, truncation=trunc,
                                       max_length=max_length)["input_ids"]]
    n_prompt = [len(r) if p is None else min(len(r), len(tokenizer(p, add_special_tokens=False)["input_ids"]))
                for p, r in zip(prompts, ids)]
    return ids, n_prompt


def split_halves(labels: list[int], seed: int) -> list[int]:
    """0 / 1 per sample: two disjoint halves, balanced within each class (seeded)."""
    rng = random.Random(seed)
    half = [0] * len(labels)
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            half[i] = j % 2
    return half


def resolve_moe_layers(anatomy: Any, spec: Any) -> list[int]:
    moe = [layer.index for layer in anatomy.layers if layer.is_moe and layer.fused_experts]
    if spec in (None, "all", "default"):
        return moe
    items = [spec] if isinstance(spec, int) else list(spec)
    out = []
    for i in items:
        j = anatomy.layer_index(int(i))
        if j not in moe:
            raise ConfigError(f"scan.experts.layers: block {i} is not an MoE block with fused experts; MoE: {moe}")
        out.append(j)
    return sorted(set(out))


def expert_sink(anatomy: Any, num_classes: int, stat_dtype: str = "float32"
                ) -> tuple[Any, dict[int, ExpertRouting], dict[int, ExpertRouting]]:
    """(sink, routing stats, output stats) of an ``expert_routing`` / ``expert_output`` capture. The sink reads
    per-token metadata ``cls`` (half * C + label per row), ``labels`` (per row) and ``part`` ((B, T), 1 = response);
    statistics are created lazily on each layer's device; padding (``ev.mask``) is not counted."""
    routing: dict[int, ExpertRouting] = {}
    outputs: dict[int, ExpertRouting] = {}

    def sink(ev: Any) -> None:  # on the layer's device; every token of the call, padding marked by ev.mask
        layer = anatomy.layers[ev.layer]
        if ev.layer not in routing:
            routing[ev.layer] = ExpertRouting(layer.num_experts, 2 * num_classes, dtype=stat_dtype, device=ev.device)
        part = ev.take("part")
        c = ev.take("cls")
        if ev.mask is not None:
            c = torch.where(ev.mask, c, -1)
        routing[ev.layer].update(ev.top_k_index, ev.top_k_weights, c, part, logits=ev.router_logits,
                                 score=layer.router_scoring)
        if ev.outputs is not None:
            if ev.layer not in outputs:
                outputs[ev.layer] = ExpertRouting(layer.num_experts, num_classes, dim=ev.outputs.shape[-1],
                                                  dtype=stat_dtype, device=ev.device)
            lab = ev.take("labels")
            outputs[ev.layer].update_outputs(ev.outputs, ev.top_k_index, lab if ev.mask is None
                                             else torch.where(ev.mask, lab, -1), part)

    return sink, routing, outputs


@torch.no_grad()
def collect_expert_stats(model: Any, tokenizer: Any, anatomy: Any, chats: list[LabeledChat], num_classes: int,
                         layers: list[int], *, halves: list[int], expert_outputs: bool = True,
                         max_length: int | None = 1024, max_batch_size: int | None = 16,
                         max_batch_tokens: int = 16384, stat_dtype: str = "float32", causal_right_padding: bool = True,
                         checkpoint: ScanCheckpoint | None = None,
                         ) -> tuple[dict[int, ExpertRouting], dict[int, ExpertRouting]]:
    """One pass: per layer, routing sums over classes ``half * num_classes + label`` and (``expert_outputs``)
    per-class expert-output sums. Returns ({layer: routing}, {layer: outputs}).

    Under torch.distributed each rank takes its share of the chats (``deepsight.capture.sharding``) and the
    statistics are summed over the ranks at the end. ``checkpoint``: save the statistics every N batches and
    resume from a saved position (``deepsight.capture.checkpoint``)."""
    ids, n_prompt = encode_with_parts(tokenizer, chats, max_length)
    cls = torch.tensor([h * num_classes + c.label for h, c in zip(halves, chats)], dtype=torch.long)
    labels = torch.tensor([c.label for c in chats], dtype=torch.long)
    n_prompt_t = torch.tensor(n_prompt, dtype=torch.long)
    sink, routing, outputs = expert_sink(anatomy, num_classes, stat_dtype)

    site = "expert_output" if expert_outputs else "expert_routing"
    device = input_device(model, anatomy)
    rank, world = rank_and_world()
    mine = torch.tensor(shard_by_length([len(x) for x in ids]), dtype=torch.long)  # this rank's chats
    checkpoint = checkpoint or ScanCheckpoint(None)
    saved: dict[str, Any] = {}
    checkpoint.restore(saved, {"ids": ids, "n_prompt": n_prompt, "cls": cls.tolist(), "layers": list(layers),
                               "expert_outputs": expert_outputs, "stat_dtype": str(stat_dtype), "rank": [rank, world],
                               "batching": [max_batch_tokens, max_batch_size, causal_right_padding],
                               "model": [type(model).__name__, str(getattr(model, "dtype", "")),
                                         getattr(model.config, "_name_or_path", "")]})
    routing.update(saved.get("routing", {}))  # the live dicts the sink fills
    outputs.update(saved.get("outputs", {}))
    store = {"routing": routing, "outputs": outputs}
    with Capture(model, [CaptureSpec(site, layers, reduce="none")], sink, anatomy=anatomy,
                 causal_right_padding=causal_right_padding) as cap:
        if world > 1 and not routing:  # every rank takes part in the sums, with chats or without
            for idx in layers:
                dev, e = cap.layer_device(idx), anatomy.layers[idx].num_experts
                routing[idx] = ExpertRouting(e, 2 * num_classes, dtype=stat_dtype, device=dev)
                if expert_outputs:
                    outputs[idx] = ExpertRouting(e, num_classes, dim=anatomy.hidden_size, dtype=stat_dtype, device=dev)
        local = [ids[i] for i in mine.tolist()]
        batches = iter_batches(local, max_batch_tokens=max_batch_tokens, pad_id=pad_id(tokenizer), side="right",
                               max_batch_size=max_batch_size, device=device)
        for batch in checkpoint.batches(batches, store):
            index = mine[batch.index]  # chats of the full list
            t = batch.input_ids.shape[1]
            part = (torch.arange(t)[None, :] >= n_prompt_t[index][:, None]).long()  # (B, T) 1 = response
            cap.forward(batch.input_ids, batch.attention_mask, cls=cls[index], labels=labels[index], part=part)
    all_reduce_store({f"{i}.routing": r for i, r in routing.items()}
                     | {f"{i}.outputs": o for i, o in outputs.items()})  # in place: the live statistics
    return routing, outputs


def _part_view(t: torch.Tensor, part: str) -> torch.Tensor:
    """(2, ...) over PARTS -> one part or their sum."""
    return t.sum(0) if part == "all" else t[PARTS.index(part)]


def summarize(routing: dict[int, ExpertRouting], outputs: dict[int, ExpertRouting], num_classes: int,
              contrast: tuple[int, int], rank_part: str, top_k: int) -> dict[str, Any]:
    """Per-layer matrices for every part, the ranked safety experts on ``rank_part`` and their stability."""
    C = num_classes
    per_layer: dict[str, dict[str, Any]] = {}
    rd_rank: dict[int, list[float]] = {}
    rd_half: tuple[dict[int, list[float]], dict[int, list[float]]] = ({}, {})
    readouts: dict[int, dict[str, Any]] = {}
    for layer, st in sorted(routing.items()):
        counts, tokens = st.counts, st.tokens  # (2, 2C, E), (2, 2C)
        c_full, t_full = counts[:, :C] + counts[:, C:], tokens[:, :C] + tokens[:, C:]  # both halves
        g_full = st.gate_sums[:, :C] + st.gate_sums[:, C:]
        h_full = st.token_entropy[:, :C] + st.token_entropy[:, C:]
        o_full = outputs[layer].output_sums if layer in outputs else None  # (2, C, E, D)
        per_layer[str(layer)] = {}
        for part in RANK_PARTS:
            r = layer_readout(_part_view(c_full, part), _part_view(t_full, part), _part_view(g_full, part),
                              _part_view(h_full, part), None if o_full is None else _part_view(o_full, part), contrast)
            per_layer[str(layer)][part] = r
        readouts[layer] = per_layer[str(layer)][rank_part]
        rd_rank[layer] = readouts[layer]["risk_difference"]
        for h in (0, 1):
            sl = slice(h * C, (h + 1) * C)
            rd_half[h][layer] = risk_differences(_part_view(counts[:, sl], rank_part),
                                                 _part_view(tokens[:, sl], rank_part), contrast)
    a, b = contrast
    top = []
    for layer, e, rd in rank_experts(rd_rank, top_k):
        r = readouts[layer]
        row = {"layer": layer, "expert": e, "risk_difference": rd, "ci_low": r["rd_ci_low"][e],
               "ci_high": r["rd_ci_high"][e], "p_a": r["activation_rate"][a][e], "p_b": r["activation_rate"][b][e],
               "mean_gate_a": r["mean_gate"][a][e], "mean_gate_b": r["mean_gate"][b][e]}
        if "output_cosine_distance" in r:
            row["output_cosine_distance"] = r["output_cosine_distance"][e]
        top.append(row)
    k = len(top)
    return {"per_layer": per_layer, "top": top, "stability": stability(rd_half[0], rd_half[1], k),
            "rd": rd_rank, "readouts": readouts}


def _classes(ctx: ScanContext, cfg: Any, warnings: list[str]) -> tuple[list[LabeledChat], list[str], dict]:
    source = str(cfg.classes_from)
    if source == "xboundary":
        from deepsight.data.xboundary import CLASS_NAMES, load_xboundary

        chats, w = load_xboundary(
            ctx.data_path(cfg.harmful_path, "scan.experts.harmful_path"),
            ctx.data_path(cfg.safe_path, "scan.experts.safe_path"),
            ctx.data_path(cfg.boundary_path, "scan.experts.boundary_path"),
            n_per_class=cfg.n_per_class, seed=cfg.seed, sampling=cfg.sampling)
        warnings += w
        return chats, [CLASS_NAMES[k] for k in sorted(CLASS_NAMES)], {"source": "xboundary"}
    if source.startswith("eval:") and len(source) > 5:
        from deepsight.diagnostics.experts_ablation import EVAL_CLASSES, eval_classes

        chats, info = eval_classes(ctx, source[5:], cfg.eval_limit)
        if info["unknown_excluded"]:
            warnings.append(f"{info['unknown_excluded']} of {info['items']} {info['benchmark']} items have an unknown "
                            f"{info['judge']} verdict and are excluded")
        return chats, list(EVAL_CLASSES), {"source": source, **info}
    raise ConfigError(f"scan.experts.classes_from={source!r}: expected 'xboundary' or 'eval:<benchmark>'")


def _contrast(cfg: Any, names: list[str]) -> tuple[int, int]:
    pair = list(cfg.contrast) if cfg.contrast else names[:2]
    if len(pair) != 2 or any(p not in names for p in pair) or pair[0] == pair[1]:
        raise ConfigError(f"scan.experts.contrast={pair}: two different class names among {names}")
    return names.index(pair[0]), names.index(pair[1])


def _figures(ctx: ScanContext, rd: dict[int, list[float]], title: str) -> tuple[list[str], list[str]]:
    from deepsight.report.figures import plot_risk_heatmap

    p = plot_risk_heatmap(rd, ctx.figures_dir / "experts_risk_difference.png", title=title)
    return [str(p.relative_to(ctx.run_dir))], []


@register_scan("experts")
def run_experts(ctx: ScanContext, cfg: Any) -> dict:
    anatomy = ctx.anatomy
    if not anatomy.is_moe:
        return {"status": "skipped", "reason": f"{anatomy.model_class} is a dense model: no MoE block to inspect"}
    if cfg.rank_part not in RANK_PARTS:
        raise ConfigError(f"scan.experts.rank_part={cfg.rank_part!r}: expected one of {RANK_PARTS}")
    layers = resolve_moe_layers(anatomy, cfg.layers)
    if not layers:
        return {"status": "skipped", "reason": "no MoE block with fused (transformers 5) experts"}
    warnings: list[str] = []
    chats, names, source = _classes(ctx, cfg, warnings)
    contrast = _contrast(cfg, names)
    if not chats:
        raise ConfigError("scan.experts: no labelled chat to scan")
    hw = ctx.hardware
    halves = split_halves([c.label for c in chats], cfg.seed)
    routing, outputs = collect_expert_stats(
        ctx.model, ctx.tokenizer, anatomy, chats, len(names), layers, halves=halves,
        expert_outputs=cfg.expert_outputs, max_length=cfg.max_length, max_batch_size=cfg.batch_size,
        max_batch_tokens=hw.max_batch_tokens, stat_dtype=hw.stat_dtype, causal_right_padding=hw.causal_right_padding,
        checkpoint=ScanCheckpoint.for_scan(ctx.run_dir, per_rank_name("experts"), hw.checkpoint_every))
    s = summarize(routing, outputs, len(names), contrast, cfg.rank_part, cfg.top_k)
    a, b = (names[i] for i in contrast)
    figures, w = _figures(ctx, s["rd"], f"risk difference p({a}) - p({b}), {cfg.rank_part} tokens")
    warnings += w
    top = s["top"]
    metrics: dict[str, Any] = {
        "moe_layers": len(layers),
        "max_risk_difference": top[0]["risk_difference"] if top else math.nan,
        "top_expert_stability": s["stability"],
        "mean_load_imbalance": sum(r["load_imbalance"] for r in s["readouts"].values()) / len(s["readouts"]),
    }
    for i, name in enumerate(names):
        tok = sum(s["readouts"][layer]["tokens"][i] for layer in s["readouts"]) / len(s["readouts"])
        ent = [s["readouts"][layer]["router_entropy"][i] for layer in s["readouts"]]
        metrics[f"router_entropy_{name}"] = sum(ent) / len(ent) if tok > 0 else math.nan
    details: dict[str, Any] = {
        "classes": names, "contrast": [a, b], "rank_part": cfg.rank_part, "layers": layers,
        "class_counts": {n: sum(c.label == i for c in chats) for i, n in enumerate(names)},
        "class_source": source,
        "top_experts": top,
        "layer_summary": {str(layer): {"load_imbalance": r["load_imbalance"], "load_cv": r["load_cv"],
                                       "max_risk_difference": max((v for v in r["risk_difference"]
                                                                   if not math.isnan(v)), default=math.nan),
                                       **{f"tokens_{n}": r["tokens"][i] for i, n in enumerate(names)}}
                          for layer, r in s["readouts"].items()},
        "matrices": s["per_layer"],
        "parts": "prompt = the chat without its final assistant reply (with the generation prompt); "
                 "response = the reply",
    }
    arms: dict[str, dict[int, list[int]]] = {}
    if cfg.ablate_top or cfg.ablate_random:
        from deepsight.diagnostics.experts_ablation import random_experts, run_ablation

        arms["none"] = {}
        chosen = top[: cfg.ablate_top] if cfg.ablate_top else []
        if cfg.ablate_top:
            if len(chosen) < cfg.ablate_top:
                raise ConfigError(f"scan.experts.ablate_top={cfg.ablate_top}: only {len(chosen)} ranked experts (top_k="
                                  f"{cfg.top_k}; experts need a finite risk difference: tokens of both classes "
                                  f"{details['class_counts']})")
            arms["top"] = {}
            for row in chosen:
                arms["top"].setdefault(row["layer"], []).append(row["expert"])
        if cfg.ablate_random:
            pool = [(layer, e) for layer in layers for e in range(anatomy.layers[layer].num_experts)]
            arms["random"] = random_experts(pool, {(r["layer"], r["expert"]) for r in chosen}, cfg.ablate_random,
                                            cfg.seed)
        ablation = run_ablation(ctx, cfg, arms)
        details["ablation"] = {name: {"masked_experts": sum(len(v) for v in row["masked"].values()),
                                      "refusal_rate": row["refusal_rate"]["value"],
                                      "ci_low": row["refusal_rate"]["ci_low"],
                                      "ci_high": row["refusal_rate"]["ci_high"],
                                      "n": row["refusal_rate"]["n"],
                                      "unknown": ablation["prompts"] - row["refusal_rate"]["n"],
                                      "change_vs_none": row["refusal_change"]["value"],
                                      "change_ci_low": row["refusal_change"]["ci_low"],
                                      "change_ci_high": row["refusal_change"]["ci_high"],
                                      "flips_vs_none": row["flips_vs_none"]}
                               for name, row in ablation["arms"].items()}
        details["ablation_full"] = ablation
        for name in ("top", "random"):
            if name in ablation["arms"]:
                metrics[f"refusal_change_{name}"] = ablation["arms"][name]["refusal_change"]["value"]
        metrics["refusal_rate_none"] = ablation["arms"]["none"]["refusal_rate"]["value"]

    return {"metrics": metrics, "details": details, "figures": figures, "warnings": warnings,
            "config": config_dict(cfg)}
