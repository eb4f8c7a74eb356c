"""``deepsight plan``: memory, FLOPs and time of an audit before anything is loaded.

    deepsight plan model=deepseek_v3 hardware=multi_gpu
    deepsight plan model=qwen3_235b_a22b hardware=multi_gpu hardware.processes=2 scan=[spin]

Takes the same Hydra config as an audit, builds the model on the meta device from its architecture
(``model.config`` or a local ``model.path``; see ``deepsight.models.meta``) and prints, per phase and
per scan, for the ``hardware`` node: weights per device under ``model.device_map`` and the checkpoint's
storage (bf16, FP8 blocks, MXFP4 experts), the peak activation memory of the largest batch, the
statistics' memory (X-Boundary centroids and pooled rows, TELLME's Grams, SPIN's per-weight sums of a
layer group, MI-Peaks' trajectories, the experts scan's matrices), FLOPs, an estimated time from
``hardware.throughput_tflops`` / ``memory_bandwidth_gbs``, and whether every device fits. A plan that
does not fit is re-run with single changes (fp8 weights, fewer ranks, a smaller token budget or SPIN
layer group, float32 statistics, more devices) and prints those that make it fit. Sizing conventions:
``deepsight.run.plan_costs``; assumed item lengths are printed with the table.

Topology: ``hardware.processes`` data-parallel ranks, each holding the whole model sharded over
``hardware.devices // hardware.processes`` devices with ``model.device_map`` (one device when unset).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deepsight.errors import ConfigError, DeepSightError
from deepsight.run.plan_costs import (
    block_forward_activation,
    block_saved_for_backward,
    dtype_bytes,
    forward_flops,
    human_bytes,
    kv_cache_bytes,
    model_costs,
    place_units,
)

# Mean tokens per item (chat template included) assumed for FLOPs and time, and the longest row for the
# largest batch; the plan prints them. X-Boundary's longest row is its max_length.
MEAN_TOKENS = {"xboundary": 320, "tellme": 200, "spin": 220, "mi_peaks_prompt": 160, "experts": 320}
LONGEST_TOKENS = {"tellme": 1024, "spin": 512}
TELLME_ROWS = 2000  # tellme/test.csv: 1000 safe + 1000 unsafe rows (limit=None uses all)
GPU_RESERVE = 1 << 30  # CUDA context + allocator slack per device
# Scans that split their items over data-parallel ranks (deepsight.capture.sharding); the others still run
# whole on every rank, so more ranks do not shorten them.
SPLIT_SCANS = {"scan tellme", "scan xboundary", "scan spin", "scan mi_peaks"}


@dataclass
class PhasePlan:
    name: str
    tokens_per_batch: int = 0
    weights: list[float] = field(default_factory=list)  # per device of a rank
    activations: list[float] = field(default_factory=list)
    statistics: list[float] = field(default_factory=list)
    flops: float = math.nan
    weight_reads: float = 0.0  # bytes of weights streamed from memory over the phase
    per_rank: bool = False  # weight_reads is already one rank's share
    notes: list[str] = field(default_factory=list)

    def need(self, reserve: float) -> list[float]:
        return [w + a + s + reserve for w, a, s in zip(self.weights, self.activations, self.statistics)]


@dataclass
class Topology:
    ranks: int
    devices_per_rank: int
    memory: float  # bytes per device
    accelerator: bool
    throughput: float | None  # FLOP/s of one device
    bandwidth: float | None  # bytes/s of one device


def _node(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key)


def topology(cfg: DictConfig) -> Topology:
    import torch

    hw, mc = cfg.hardware, cfg.model
    accel = mc.device_map is not None or str(mc.device).startswith("cuda") or (
        mc.device == "auto" and (hw.devices is not None or torch.cuda.is_available()) and hw.name != "cpu")
    devices = hw.devices or (torch.cuda.device_count() if accel and torch.cuda.is_available() else 1)
    ranks = int(hw.processes)
    if ranks < 1:
        raise ConfigError(f"hardware.processes={ranks}; expected >= 1")
    if mc.device_map is None:
        per_rank = 1
        if accel and ranks > devices:
            raise ConfigError(f"hardware.processes={ranks} ranks need as many devices; hardware.devices={devices}")
    else:
        if devices % ranks:
            raise ConfigError(f"hardware.devices={devices} does not split into hardware.processes={ranks} equal shards")
        per_rank = devices // ranks
    if hw.device_memory_gib is not None:
        memory = float(hw.device_memory_gib) * 2**30
    elif accel and torch.cuda.is_available():
        memory = float(torch.cuda.get_device_properties(0).total_memory)
    elif not accel:
        import psutil

        memory = float(psutil.virtual_memory().total)
    else:
        raise ConfigError("hardware.device_memory_gib is needed to plan for GPUs on a machine without one")
    thr = float(hw.throughput_tflops) * 1e12 if hw.throughput_tflops else None
    bw = float(hw.memory_bandwidth_gbs) * 1e9 if hw.memory_bandwidth_gbs else None
    return Topology(ranks, per_rank, memory, bool(accel), thr, bw)


class Planner:
    """The per-phase estimates of one config (see the module docstring)."""

    def __init__(self, cfg: DictConfig, shared: dict | None = None):
        from deepsight.models.loading import resolve_dtype
        from deepsight.models.meta import architecture_config, build_meta_model, checkpoint_quantization

        self.cfg = cfg
        self.topo = topology(cfg)
        self.dtype = resolve_dtype(cfg.model.dtype, self.topo.accelerator)
        self.act_bytes = dtype_bytes(str(self.dtype))
        self.stat_bytes = dtype_bytes(cfg.hardware.stat_dtype)
        # the meta model, its costs per storage and SPIN's weight lists, reused by the what-if re-plans
        self.shared = shared if shared is not None else {}
        if "built" not in self.shared:
            from deepsight.models.anatomy import inspect_model

            hf_config = architecture_config(cfg.model)
            model = build_meta_model(hf_config, self.dtype)
            self.shared["built"] = (hf_config, model, inspect_model(model))
        hf_config, self.model, self.anatomy = self.shared["built"]
        self.quant = checkpoint_quantization(hf_config, cfg.model)
        key = ("costs", self.quant, self.act_bytes)
        if key not in self.shared:
            self.shared[key] = model_costs(self.model, self.anatomy, self.act_bytes, self.quant)
        self.costs = self.shared[key]
        t = self.topo
        capacity = t.memory - (GPU_RESERVE if t.accelerator else 0)
        self.placement = place_units(self.costs.units, t.devices_per_rank, cfg.model.device_map, capacity)
        unit_bytes = dict(self.costs.units)
        self.weights = [sum(unit_bytes[u] for u in dev) for dev in self.placement]
        self.device_of_block = {}
        for i, dev in enumerate(self.placement):
            for u in dev:
                if u.startswith("block "):
                    self.device_of_block[int(u.split()[1])] = i
        self.reserve = GPU_RESERVE if t.accelerator else 0

    # ------------------------------------------------------------ helpers
    def _zeros(self) -> list[float]:
        return [0.0] * self.topo.devices_per_rank

    def _phase(self, name: str, tokens: int) -> PhasePlan:
        return PhasePlan(name, tokens, list(self.weights), self._zeros(), self._zeros())

    def _forward_activations(self, p: PhasePlan, blocks: range, tokens: int) -> None:
        for l in blocks:
            d = self.device_of_block[l]
            p.activations[d] = max(p.activations[d], block_forward_activation(self.costs, l, tokens, self.act_bytes))

    def _block_weight_bytes(self, blocks: range) -> float:
        return sum(self.costs.block_bytes[l] for l in blocks)

    def budget(self) -> int:
        return int(self.cfg.hardware.max_batch_tokens)

    # ------------------------------------------------------------ phases
    def phases(self, only: str | None = None) -> list[PhasePlan]:
        """Every phase of the audit (or just the one named ``only``)."""
        out = [self._phase("model load", 0)] if only in (None, "model load") else []
        if len(self.cfg.eval) and only in (None, "black-box generation"):
            out.append(self.generation())
        for name, node in self.cfg.scan.items():
            if node is None or only not in (None, f"scan {name}"):
                continue
            fn = getattr(self, f"scan_{name}", None)
            if fn is None:
                p = self._phase(f"scan {name}", 0)
                p.notes.append("no estimate for this scan")
                out.append(p)
            else:
                out.append(fn(node))
                if self.topo.ranks > 1 and out[-1].name not in SPLIT_SCANS:
                    out[-1].notes.append("not split over ranks yet: every rank runs it whole")
        return out

    def generation(self) -> PhasePlan:
        g = self.cfg.generation
        tokens = int(g.max_batch_tokens)
        p = self._phase("black-box generation", tokens)
        L = self.costs.num_layers
        if g.backend == "openai":
            p.weights = self._zeros()
            p.notes.append("served elsewhere (openai backend)")
            return p
        kv = kv_cache_bytes(self.costs, range(L), tokens, self.act_bytes)
        if g.backend == "vllm":  # tensor parallel over every device of the node
            n = self.topo.devices_per_rank * self.topo.ranks
            p.weights = [sum(self.weights) / n] * self.topo.devices_per_rank
            p.notes.append(f"vLLM tensor parallel over {n} devices; its KV cache takes the memory left "
                           "(engine_args.gpu_memory_utilization)")
            return p
        for l in range(L):
            p.activations[self.device_of_block[l]] += kv / L
        p.notes.append(f"hf generation: KV cache of {tokens} tokens")
        return p

    def scan_xboundary(self, sc) -> PhasePlan:
        from deepsight.diagnostics.xboundary import resolve_layers

        L = self.costs.num_layers
        layers = resolve_layers(sc.layers, L)
        proj = resolve_layers(sc.projection_layers, L, "scan.xboundary.projection_layers") \
            if sc.projection != "none" else []
        stop = max(layers)  # hidden_states index i is the output of block i - 1
        tokens = min(self.budget(), int(sc.batch_size) * int(sc.max_length))
        p = self._phase("scan xboundary", tokens)
        blocks = range(min(stop, L))
        self._forward_activations(p, blocks, tokens)
        n = 3 * int(sc.n_per_class)
        mean = min(MEAN_TOKENS["xboundary"], int(sc.max_length))
        d = self.costs.hidden
        for i in layers:
            dev = self.device_of_block[min(max(i - 1, 0), L - 1)]
            p.statistics[dev] += 3 * d * self.stat_bytes + (n * d * 4 if i in proj else 0)
        p.flops = forward_flops(self.costs, blocks, n * mean, mean)
        p.weight_reads = math.ceil(n * mean / tokens) * self._block_weight_bytes(blocks)
        p.notes.append(f"{n} rows x ~{mean} tokens; stops after block {stop - 1}")
        return p

    def scan_tellme(self, sc) -> PhasePlan:
        from deepsight.diagnostics.tellme import resolve_layer

        L = self.costs.num_layers
        layer = resolve_layer(sc.layer, L)
        longest = int(sc.max_length or LONGEST_TOKENS["tellme"])
        tokens = min(self.budget(), int(sc.batch_size) * longest)
        p = self._phase("scan tellme", tokens)
        blocks = range(layer + 1)
        self._forward_activations(p, blocks, tokens)
        n = int(sc.limit or TELLME_ROWS)
        d = self.costs.hidden
        # GramMatrix(d, 2): total + 2 class Grams (d x d each) in the stat dtype; last-token rows (n, d) float32
        p.statistics[self.device_of_block[layer]] += 3 * d * d * self.stat_bytes + n * d * 4
        mean = MEAN_TOKENS["tellme"]
        p.flops = forward_flops(self.costs, blocks, n * mean, mean)
        p.weight_reads = math.ceil(n * mean / tokens) * self._block_weight_bytes(blocks)
        p.notes.append(f"{n} rows x ~{mean} tokens; stops after block {layer}")
        return p

    def spin_refs(self, sc) -> tuple[list, list[tuple[int, int, int]], bool]:
        """SPIN's matrices, as (layer, numel, in_features) rows, and whether the scan takes its per-sample
        weight-gradient route (fused experts / non-Linear routers), as spin.grad_abs_sums decides."""
        from torch import nn

        from deepsight.diagnostics.spin_math import weights_of_model

        key = ("spin", sc.target_module, bool(sc.reference_compat))
        if key not in self.shared:
            refs = weights_of_model(self.anatomy, sc.target_module, reference_compat=bool(sc.reference_compat))
            rows = [(r.layer, r.numel, r.shape[1]) for r in refs]
            param_route = any(r.module is None or not isinstance(r.module, nn.Linear) for r in refs)
            self.shared[key] = (refs, rows, param_route)
        return self.shared[key]

    def scan_spin(self, sc) -> PhasePlan:
        L = self.costs.num_layers
        refs, rows, param_route = self.spin_refs(sc)
        mean = MEAN_TOKENS["spin"]
        n = int(sc.n_samples)
        all_blocks = range(L)
        stat_b = 8 if self.stat_bytes == 8 else 4
        targeted = sum(numel for _, numel, _ in rows)
        if param_route:  # fused experts / non-Linear routers: one sample per backward with weight gradients
            tokens = LONGEST_TOKENS["spin"]
            p = self._phase("scan spin", tokens)
            for l in all_blocks:
                dev = self.device_of_block[l]
                p.activations[dev] += block_saved_for_backward(self.costs, l, tokens, self.act_bytes)
            params = {}
            for r in refs:
                params[id(r.param)] = r
            for r in params.values():  # the gradient (model dtype) and its |.| sum of every whole parameter
                p.statistics[self.device_of_block[r.layer]] += r.param.numel() * (self.act_bytes + stat_b)
            f = forward_flops(self.costs, all_blocks, mean, mean, with_head=mean / 2)
            p.flops = 2 * n * (2 * f + 2 * mean * targeted)
            p.weight_reads = 2 * n * 2 * sum(self.weights)
            p.notes.append(f"per-sample weight gradients (fused experts): 2 x {n} passes, all layers at once")
            return p
        tokens = min(self.budget(), int(sc.max_batch_tokens), int(sc.batch_size) * LONGEST_TOKENS["spin"])
        p = self._phase("scan spin", tokens)
        layers = sorted({layer for layer, _, _ in rows})
        per_layer = {l: 0.0 for l in layers}
        for layer, numel, cols in rows:  # the accumulator and GradCapture's saved fp32 inputs (spin._layer_groups)
            per_layer[layer] += stat_b * numel + 4 * tokens * cols
        if sc.layer_group_size:
            group = int(sc.layer_group_size)
        else:  # the scan's own rule: as many layers as fit in half the memory left beside the weights
            free = self.topo.memory - max(self.weights)
            group = max(1, int(0.5 * free // max(per_layer.values(), default=1)))
        groups = [layers[i:i + group] for i in range(0, len(layers), group)] or [[]]
        for l in all_blocks:
            p.activations[self.device_of_block[l]] += block_saved_for_backward(self.costs, l, tokens, self.act_bytes)
        for g in groups:
            st = self._zeros()
            for l in g:
                st[self.device_of_block[l]] += per_layer[l]
            p.statistics = [max(a, b) for a, b in zip(p.statistics, st)]
        f = forward_flops(self.costs, all_blocks, n * mean, mean, with_head=n * mean / 2)
        p.flops = 2 * (len(groups) * 2 * f + 2 * n * mean * targeted)  # two datasets; fwd + input-grad bwd per group
        p.weight_reads = 2 * len(groups) * 2 * math.ceil(n * mean / tokens) * sum(self.weights)
        p.notes.append(f"{len(groups)} layer group(s) of {group} layer(s); {len(refs)} matrices, "
                       f"{human_bytes(stat_b * targeted)} of per-weight sums in all")
        return p

    def scan_mi_peaks(self, sc) -> PhasePlan:
        L = self.costs.num_layers
        n, new, rows = int(sc.n_samples), int(sc.max_new_tokens), int(sc.batch_size)
        prompt = MEAN_TOKENS["mi_peaks_prompt"]
        tokens = min(n, rows) * prompt
        p = self._phase("scan mi_peaks", tokens)
        self._forward_activations(p, range(L), tokens)
        kv = kv_cache_bytes(self.costs, range(L), min(n, rows) * (prompt + new), self.act_bytes)
        for l in range(L):
            p.activations[self.device_of_block[l]] += kv / L
        p.activations[-1] += min(n, rows) * self.costs.vocab * 4  # one step's logits
        d = self.costs.hidden
        p.statistics[self.device_of_block[L - 1]] += n * new * d * 4  # per-step states of every sample
        p.flops = (forward_flops(self.costs, range(L), n * prompt, prompt, with_head=n)
                   + forward_flops(self.costs, range(L), n * new, 2 * prompt + new, with_head=n * new))
        # decoding reads every weight once per step of each batch: a rank's batches, not the total, set the time
        ranks = self.topo.ranks
        p.weight_reads = math.ceil(math.ceil(n / ranks) / rows) * (new + 1) * sum(self.weights)
        p.per_rank = True
        p.notes.append(f"{n} prompts x ~{prompt} tokens + {new} generated, {rows} per batch")
        return p

    def scan_experts(self, sc) -> PhasePlan:
        L = self.costs.num_layers
        tokens = self.budget()
        p = self._phase("scan experts", tokens)
        self._forward_activations(p, range(L), tokens)
        d = self.costs.hidden
        for b in self.anatomy.layers:
            if b.num_experts:  # per-expert input sums (E, d) and co-routing counts (E, E) per MoE layer
                p.statistics[self.device_of_block[b.index]] += (b.num_experts * d + b.num_experts ** 2) \
                    * self.stat_bytes
        p.notes.append("statistics: (E, d) expert-input sums and (E, E) co-routing counts per MoE layer")
        return p

    # ------------------------------------------------------------ time and fit
    def seconds(self, p: PhasePlan) -> float:
        t = self.topo
        if math.isnan(p.flops) or (t.throughput is None and t.bandwidth is None):
            return math.nan
        # the devices of a rank run one after another (pipeline of one batch); ranks split the items
        split = t.ranks if p.name in SPLIT_SCANS else 1
        compute = p.flops / t.throughput / split if t.throughput else 0.0
        memory = p.weight_reads / t.bandwidth / (1 if p.per_rank else split) if t.bandwidth else 0.0
        return max(compute, memory)

    def fits(self, p: PhasePlan) -> bool:
        return max(p.need(self.reserve)) <= self.topo.memory


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_module

    from deepsight.config import register_configs

    register_configs()
    try:
        with initialize_config_module(config_module="deepsight.conf", version_base=None):
            return compose(config_name="config", overrides=overrides)
    except Exception as e:  # hydra / omegaconf: unknown key, missing group option, bad value
        raise ConfigError(f"config: {e}") from e


def make_plan(cfg: DictConfig) -> dict[str, Any]:
    """The plan as a dict: header facts, one row per phase, and the single changes that make it fit."""
    planner = Planner(cfg)
    rows = []
    for p in planner.phases():
        need = p.need(planner.reserve)
        rows.append({
            "phase": p.name, "tokens_per_batch": p.tokens_per_batch, "weights": max(p.weights),
            "activations": max(p.activations), "statistics": max(p.statistics), "peak": max(need),
            "peak_device": need.index(max(need)), "fits": planner.fits(p), "flops": p.flops,
            "seconds": planner.seconds(p), "notes": p.notes,
        })
    c, t = planner.costs, planner.topo
    plan = {
        "model": cfg.model.name, "num_params": c.num_params, "active_params": c.active_params_per_token,
        "dtype": str(planner.dtype).replace("torch.", ""),
        "storage": planner.quant.method if planner.quant else str(planner.dtype).replace("torch.", ""),
        "ranks": t.ranks, "devices_per_rank": t.devices_per_rank, "device_memory": t.memory,
        "accelerator": t.accelerator, "device_map": cfg.model.device_map,
        "weights_per_device": planner.weights, "weight_bytes": sum(planner.weights),
        "phases": rows, "fits": all(r["fits"] for r in rows),
    }
    for r in rows:
        r["suggestions"] = [] if r["fits"] else suggestions(cfg, planner, r["phase"])
    return plan


def _fits_with(cfg: DictConfig, planner: Planner, change: list[str], phase: str) -> bool:
    c = cfg.copy()
    OmegaConf.set_struct(c, False)
    for kv in change:
        key, value = kv.split("=", 1)
        OmegaConf.update(c, key, None if value == "null" else _literal(value), merge=False)
    try:
        p = Planner(c, shared=planner.shared)
    except DeepSightError:
        return False
    return all(p.fits(ph) for ph in p.phases(only=phase))


def _literal(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _candidate_changes(cfg: DictConfig, planner: Planner, phase: str) -> list[list[str]]:
    """Single changes to try for one phase, cheapest first; then fp8 weights combined with each."""
    hw, t = cfg.hardware, planner.topo
    tries: list[list[str]] = []
    fp8 = planner.quant is None and t.accelerator and planner.act_bytes == 2
    if fp8:
        tries.append(["model.quantization=fp8"])
    r = t.ranks
    while r > 1:
        r //= 2
        tries.append([f"hardware.processes={r}"])
    if phase != "model load":
        b = int(hw.max_batch_tokens)
        while b > 512:
            b //= 2
            tries.append([f"hardware.max_batch_tokens={b}"])
    spin = _node(cfg, "scan.spin")
    if phase == "scan spin" and spin is not None:
        g = int(spin.layer_group_size or planner.costs.num_layers)
        while g > 1:
            g //= 2
            tries.append([f"scan.spin.layer_group_size={g}"])
    if hw.stat_dtype == "float64" and phase.startswith("scan"):
        tries.append(["hardware.stat_dtype=float32"])
    total = t.devices_per_rank * t.ranks
    if cfg.model.device_map is not None:
        tries += [[f"hardware.devices={total * more}"] for more in (2, 4, 8)]
    elif t.accelerator:  # one device per rank: shard over several
        tries += [["model.device_map=auto", f"hardware.devices={total * more}"] for more in (2, 4, 8)]
    if fp8:
        tries += [["model.quantization=fp8", *x] for x in tries[1:]]
    return tries


def suggestions(cfg: DictConfig, planner: Planner, phase: str) -> list[str]:
    """Settings that make ``phase`` fit: the first (cheapest) value of each setting, at most four."""
    found: list[list[str]] = []
    for change in _candidate_changes(cfg, planner, phase):
        keys = {kv.split("=")[0] for kv in change} - {"model.quantization"}
        if any(keys == {kv.split("=")[0] for kv in f} - {"model.quantization"} or set(f) <= set(change)
               for f in found):
            continue  # a cheaper value of the same settings, or a subset of this change, already fits
        if _fits_with(cfg, planner, change, phase):
            found.append(change)
        if len(found) >= 4:
            break
    return [" ".join(f) for f in found]


def _fmt_flops(f: float) -> str:
    if math.isnan(f):
        return "-"
    for unit, div in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if f >= div:
            return f"{f / div:.1f} {unit}"
    return f"{f:.0f} FLOP"


def _fmt_seconds(s: float) -> str:
    if math.isnan(s):
        return "-"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def format_plan(plan: dict[str, Any]) -> str:
    """A Markdown table (the README's "Large models" section shows one)."""
    mem = human_bytes(plan["device_memory"])
    lines = [
        f"plan: {plan['model']}  {plan['num_params'] / 1e9:.2f}B parameters, {plan['active_params'] / 1e9:.2f}B "
        f"active per token; compute {plan['dtype']}, weights stored as {plan['storage']} "
        f"({human_bytes(plan['weight_bytes'])})",
        f"topology: {plan['ranks']} rank(s) x {plan['devices_per_rank']} device(s) of {mem}"
        f" (device_map={plan['device_map']}); weights per device: "
        + ", ".join(human_bytes(w) for w in plan["weights_per_device"]),
        "",
        "| phase | tokens/batch | weights | activations | statistics | peak/device | fits | FLOPs | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in plan["phases"]:
        lines.append(
            f"| {r['phase']} | {r['tokens_per_batch'] or '-'} | {human_bytes(r['weights'])} | "
            f"{human_bytes(r['activations'])} | {human_bytes(r['statistics'])} | {human_bytes(r['peak'])} "
            f"(dev {r['peak_device']}) | {'yes' if r['fits'] else 'NO'} | {_fmt_flops(r['flops'])} | "
            f"{_fmt_seconds(r['seconds'])} |")
    lines.append("")
    for r in plan["phases"]:
        if r["notes"]:
            lines.append(f"- {r['phase']}: " + "; ".join(r["notes"]))
    lines.append("- per device of a rank, largest device shown; peak adds 1 GiB of CUDA context per GPU. "
                 f"Assumed mean tokens per item: {MEAN_TOKENS}.")
    if plan["fits"]:
        lines.append("fits: yes")
    else:
        lines.append("fits: NO. Settings that make a phase fit (one per line, alternatives):")
        for r in plan["phases"]:
            if not r["fits"]:
                fixes = r["suggestions"] or ["none of the single changes tried: more devices or a smaller model"]
                lines.append(f"- {r['phase']}: " + " | ".join(fixes))
    return "\n".join(lines)


def plan_main(argv: list[str]) -> int:
    """``deepsight plan [overrides...]``: print the plan; exit 0 when it fits, 1 when it does not, 2 on errors."""
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        cfg = _compose(argv)
        plan = make_plan(cfg)
    except DeepSightError as e:
        print(f"deepsight plan: {e}", file=sys.stderr)
        return 2
    print(format_plan(plan))
    return 0 if plan["fits"] else 1
