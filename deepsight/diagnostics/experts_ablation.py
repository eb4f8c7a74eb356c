"""Black-box pieces of the MoE expert scan: classes from the model's own judged outputs, and the ablation.

``eval_classes``: ``scan.experts.classes_from=eval:<benchmark>`` runs that benchmark through the eval
runner (hf generation on the loaded model, its judges, resumable ``generations/<name>.jsonl``), then
makes one chat per item (prompt + the model's reply) labelled by the primary judge's verdict:
``refused`` (0) or ``complied`` (1) (``judge.harmful``); unknown verdicts are excluded and counted.

``run_ablation``: the causal check (SteerMoE arXiv 2509.09660; Large Language Lobotomy arXiv 2602.08741).
The same refusal prompts (default: XSTest's unsafe prompts + HarmBench behaviours) are answered by the
model as is (``none``), with the top-K safety experts masked (``top``: router logits -inf before the
top-k, ``deepsight.capture.expert_mask``) and with K random experts masked (``random``, the control);
each arm is judged by string-match refusal and the configured judge. Rates carry Wilson intervals and
each masked arm's change against ``none`` a Newcombe interval (same prompts in every arm).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from deepsight.data.labeled_chats import LabeledChat
from deepsight.errors import ConfigError
from deepsight.evals.loaders import EvalItem, content_id, field_of, records, select
from deepsight.evals.metrics import flag_rate

EVAL_CLASSES = ("refused", "complied")
ABLATION_SOURCES = ("xstest_unsafe", "harmbench")


def _setup(ctx: Any) -> tuple[Any, Any, Any]:
    """(run config, loaded model, judge config) handed to the scan by the audit runner."""
    run_cfg, loaded = ctx.extras.get("config"), ctx.extras.get("loaded")
    if run_cfg is None or loaded is None:
        raise ConfigError("scan.experts: evaluation classes and the ablation need the audit runner's model and "
                          "configuration (ScanContext.extras 'config' and 'loaded')")
    return run_cfg, loaded, run_cfg.judge


def _eval_context(ctx: Any, model_key: str | None = None) -> Any:
    from omegaconf import OmegaConf

    from deepsight.evals.registry import EvalContext
    from deepsight.generation.factory import build_generator
    from deepsight.judges.factory import JudgeFactory

    run_cfg, loaded, judge_cfg = _setup(ctx)
    # always the hf backend on the model the scan inspects (the masks act on its routers), whatever
    # generation.backend the benchmarks used (vllm / openai run outside this process's model)
    gen_cfg = OmegaConf.merge(run_cfg.generation, {"backend": "hf"})
    generator = build_generator(gen_cfg, run_cfg.model, loaded)
    judges = JudgeFactory(judge_cfg, data_dir=ctx.data_dir, target=loaded)
    return EvalContext(generator=generator, judge_factory=judges, run_dir=Path(ctx.run_dir), data_dir=ctx.data_dir,
                       generation=gen_cfg, model_name=run_cfg.model.name, model=loaded.model,
                       tokenizer=loaded.tokenizer, extras={"model_key": model_key})


def _bench_cfg(ctx: Any, name: str, limit: int | None) -> Any:
    from omegaconf import OmegaConf

    from deepsight.config.schema import BenchmarkConfig

    run_cfg = ctx.extras.get("config")
    node = OmegaConf.structured(BenchmarkConfig)
    if run_cfg is not None and name in run_cfg.get("eval", {}):
        node = OmegaConf.merge(node, run_cfg.eval[name])
    node.limit = limit
    return node


def eval_classes(ctx: Any, benchmark: str, limit: int | None) -> tuple[list[LabeledChat], dict[str, Any]]:
    """Chats of ``benchmark``'s items with the model's replies, labelled refused (0) / complied (1). Under
    torch.distributed the benchmark runs once, on rank 0 (with the run's own ``eval`` settings, which only
    rank 0 keeps), and every rank gets the same chats."""
    from deepsight.capture.sharding import on_rank_zero

    return on_rank_zero(lambda: _eval_classes(ctx, benchmark, limit))


def _eval_classes(ctx: Any, benchmark: str, limit: int | None) -> tuple[list[LabeledChat], dict[str, Any]]:
    from deepsight.evals.registry import get_benchmark
    from deepsight.evals.resume import ResumeStore
    from deepsight.judges.base import Verdict

    ectx = _eval_context(ctx)
    try:
        res = get_benchmark(benchmark)(ectx, _bench_cfg(ctx, benchmark, limit))
        primary = res["unknown"]["judge"]
        judge = ectx.judge_factory(primary)
        store = ResumeStore(Path(ctx.run_dir) / res["generations_file"])
        try:
            gens, verdicts = {}, {}
            for rec in store.records.values():
                if rec.get("kind") == "generation":
                    gens[rec["id"]] = rec
                elif rec.get("kind") == "verdict" and rec.get("judge") == primary:
                    verdicts[rec["id"]] = Verdict.from_dict(rec["verdict"])
        finally:
            store.close()
    finally:
        ectx.generator.close()
        ectx.judge_factory.close()
    chats, unknown = [], 0
    for i, (item_id, g) in enumerate(gens.items()):
        v = verdicts.get(item_id)
        flag = None if v is None else judge.harmful(v)
        if flag is None:
            unknown += 1
            continue
        msgs = ([{"role": "system", "content": g["system_prompt"]}] if g.get("system_prompt") else []) + list(
            g["messages"]) + [{"role": "assistant", "content": g["text"]}]
        chats.append(LabeledChat(msgs, 1 if flag else 0, res["generations_file"], i))
    info = {"benchmark": benchmark, "judge": primary, "items": len(gens), "unknown_excluded": unknown,
            "metrics": res.get("metrics", {})}
    return chats, info


def ablation_items(ctx: Any, sources: list[str], limit: int | None, seed: int) -> list[EvalItem]:
    """Refusal prompts: XSTest's unsafe prompts and/or HarmBench behaviours (``limit`` per source, seeded)."""
    items: list[EvalItem] = []
    for src in sources:
        if src == "xstest_unsafe":
            rows = records(ctx, _bench_cfg(ctx, "xstest", None), "xstest", "xstest/xstest_prompts.csv")
            its = [EvalItem(str(r.get("id") or content_id(r["prompt"])), field_of(r, "prompt", "xstest", i),
                            {"source": src}) for i, r in enumerate(rows)
                   if str(r.get("label", "")).strip().lower() == "unsafe"]
        elif src == "harmbench":
            rows = records(ctx, _bench_cfg(ctx, "harmbench", None), "harmbench",
                           "harmbench/harmbench_behaviors_text_all.csv")
            its = []
            for i, r in enumerate(rows):
                behavior = field_of(r, ("Behavior", "behavior", "prompt"), "harmbench", i)
                context = (r.get("ContextString") or r.get("context") or "").strip() or None
                its.append(EvalItem(str(r.get("BehaviorID") or content_id(behavior, context)), behavior,
                                    {"source": src}, context=context))
        else:
            raise ConfigError(f"scan.experts.ablation_prompts: {src!r} is not one of {ABLATION_SOURCES}")
        items += select(its, limit, seed)
    return items


def _arm(ctx: Any, name: str, masked: dict[int, list[int]], items: list[EvalItem], max_new_tokens: int) -> dict:
    """One arm's refusal rates. Under torch.distributed each rank answers its share of the prompts (balanced by
    length, ``deepsight.capture.sharding``) and the verdicts are gathered in prompt order on every rank."""
    from deepsight.capture.expert_mask import ExpertMask
    from deepsight.capture.sharding import gather_by_index, shard_by_length
    from deepsight.evals.runner import generate_and_judge

    key = "none" if not masked else ";".join(f"{k}:{','.join(map(str, v))}" for k, v in sorted(masked.items()))
    ectx = _eval_context(ctx, model_key=f"experts-mask[{key}]")
    judge_name = _setup(ctx)[2].name
    judges = ["refusal"] + ([judge_name] if judge_name != "refusal" else [])
    bench = _bench_cfg(ctx, "xstest", None)
    bench.max_new_tokens = max_new_tokens
    mine = shard_by_length([len(it.prompt) + len(it.context or "") for it in items])
    try:
        with ExpertMask(ectx.model, masked, anatomy=ctx.anatomy):
            results = generate_and_judge(ectx, bench, f"experts_ablation_{name}", [items[i] for i in mine], judges)
    finally:
        ectx.generator.close()
        ectx.judge_factory.close()
    local = [(None if r.harmful["refusal"] is None else not r.harmful["refusal"], r.harmful.get(judge_name))
             for r in results]
    verdicts = gather_by_index(local, mine, len(items))
    refused = [v[0] for v in verdicts]
    out: dict[str, Any] = {"refusal_rate": flag_rate(refused), "masked": {str(k): v for k, v in sorted(masked.items())},
                           "_refused": refused}
    if judge_name != "refusal":
        out[f"{judge_name}_harmful_rate"] = flag_rate([v[1] for v in verdicts])
    return out


def random_experts(pool: list[tuple[int, int]], exclude: set[tuple[int, int]], k: int, seed: int
                   ) -> dict[int, list[int]]:
    """k (layer, expert) pairs drawn uniformly (seeded) from ``pool`` minus ``exclude``, as {layer: [ids]}."""
    rest = sorted(set(pool) - exclude)
    chosen = random.Random(seed).sample(rest, min(k, len(rest)))
    out: dict[int, list[int]] = {}
    for layer, e in sorted(chosen):
        out.setdefault(layer, []).append(e)
    return out


def run_ablation(ctx: Any, cfg: Any, arms: dict[str, dict[int, list[int]]]) -> dict[str, Any]:
    """Refusal per arm on the same prompts, and each masked arm's change against ``none``."""
    from deepsight.diagnostics.experts_metrics import newcombe_interval

    items = ablation_items(ctx, list(cfg.ablation_prompts), cfg.ablation_limit, cfg.seed)
    table = {name: _arm(ctx, name, masked, items, cfg.ablation_max_new_tokens) for name, masked in arms.items()}
    base, base_refused = table["none"]["refusal_rate"], table["none"]["_refused"]
    for row in table.values():
        r, refused = row["refusal_rate"], row.pop("_refused")
        d, lo, hi = newcombe_interval(r["count"], r["n"], base["count"], base["n"])
        row["refusal_change"] = {"value": d, "ci_low": lo, "ci_high": hi}
        # prompts whose refusal flipped against the unmasked model (known verdicts on both sides)
        row["flips_vs_none"] = sum(1 for a, b in zip(refused, base_refused) if a is not None and b is not None
                                   and a != b)
    return {"prompts": len(items), "sources": list(cfg.ablation_prompts), "arms": table}
