"""Generate-then-judge over benchmark items, resumable, and the result dict every benchmark returns.

``generate_and_judge`` sends the items to the target in chunks of ``generation.batch_size``,
appends each finished generation to ``generations/<name>.jsonl`` at once (see resume.py),
then runs each judge over the successful generations and appends the verdicts the same
way, after each of the judge's batches (``batch_size``, at most ``JUDGE_CHUNK``). Records
already in the file (same key) are reused, so a killed run restarts without
redoing finished items. A failed generation is never judged: its verdict is ``unknown``
(``generation_failed``) and it is not stored, so a restart retries it; likewise a verdict
that failed for a transient reason (judge unavailable, failed call) is not stored.

Failures that are not about one item fail the benchmark (the run records the traceback
in ``errors/eval_<name>.txt``) instead of turning into unknowns: an exception out of the
generator's ``generate`` (a programming error, a crashed engine), and a generator whose
every request fails (HTTP 401/403/404, a wrong served model), detected after the first
``FAIL_FAST_AFTER`` attempts without a single success and at the end.

``result`` assembles metrics, the unknown summary, breakdowns and the worst examples.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from deepsight.config.plain import config_dict
from deepsight.evals.loaders import EvalItem
from deepsight.evals.metrics import unknown_summary
from deepsight.evals.resume import ResumeStore, stable_hash
from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.images import user_turn
from deepsight.judges.base import JudgeInput, Verdict, unknown

log = logging.getLogger("deepsight")
TRANSIENT = ("judge_unavailable", "judge_call_failed", "generation_failed")
FAIL_FAST_AFTER = 8  # failed generations, with none succeeded, after which the benchmark stops


class GenerationFailedError(RuntimeError):
    """Every generation failed: the generator, not an item, is broken (wrong key, URL, model)."""


def _all_failed(name: str, gens: list[Generation]) -> GenerationFailedError:
    errors = sorted({g.error or "unknown error" for g in gens})
    shown = "; ".join(errors[:3]) + (f"; ... ({len(errors)} distinct errors)" if len(errors) > 3 else "")
    return GenerationFailedError(f"{name}: all {len(gens)} generations attempted failed: {shown}")
JUDGE_CHUNK = 64  # verdicts per judge call (and per resume flush); a judge's own batch_size when smaller


@dataclass
class ItemResult:
    item: EvalItem
    generation: Generation
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    harmful: dict[str, bool | None] = field(default_factory=dict)  # judge name -> judge.harmful(verdict)


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    v = getattr(cfg, key, default)
    return default if v is None else v


def sampling_params(ctx, cfg) -> SamplingParams:
    g = ctx.generation
    return SamplingParams(
        max_new_tokens=int(_get(cfg, "max_new_tokens", _get(g, "max_new_tokens", 256))),
        temperature=float(_get(g, "temperature", 0.0)),
        top_p=float(_get(g, "top_p", 1.0)),
        seed=int(_get(g, "seed", 0)),
    )


def build_request(item: EvalItem, cfg) -> GenerationRequest:
    """The chat request; contextual items put the context first, as HarmBench does; multi-turn items
    replay their ``history`` before the new user turn."""
    content = f"{item.context}\n\n---\n\n{item.prompt}" if item.context else item.prompt
    system = item.system_prompt or _get(cfg, "system_prompt")
    messages = [*(item.history or []), user_turn(content, item.images)]
    return GenerationRequest(id=item.id, messages=messages, system_prompt=system)


def default_judge_input(item: EvalItem, text: str) -> JudgeInput:
    return JudgeInput(
        prompt=item.judge_prompt or item.prompt, response=text, context=item.context, reference=item.reference,
        image=item.images[0] if item.images else None,
    )


def _request_chars(r: GenerationRequest) -> int:
    return len(r.prompt or "") + sum(len(str(m.get("content", ""))) for m in r.messages) + len(r.system_prompt or "")


def length_chunks(indices: list[int], lengths: list[int], size: int, homogeneous: bool) -> list[list[int]]:
    """Chunks of at most ``size`` indices for incremental writes. ``homogeneous`` (in-process backends, where
    a batch is padded to its longest prompt) sorts by prompt length and starts a new chunk when a prompt is
    more than twice as long as the chunk's shortest, so short prompts are not padded to long contexts."""
    if not homogeneous:
        return [indices[s : s + size] for s in range(0, len(indices), size)]
    order = sorted(range(len(indices)), key=lambda k: lengths[k])
    chunks: list[list[int]] = []
    start_len = 0
    for k in order:
        if not chunks or len(chunks[-1]) >= size or lengths[k] > 2 * max(start_len, 64):
            chunks.append([])
            start_len = lengths[k]
        chunks[-1].append(indices[k])
    return chunks


def generate_and_judge(
    ctx, cfg, name: str, items: list[EvalItem], judges: list[Any], judge_input=default_judge_input
) -> list[ItemResult]:
    """Generations and verdicts for ``items``; ``judges`` are judge names (via ctx.judge_factory) or Judge objects."""
    store = ResumeStore(ctx.run_dir / "generations" / f"{name}.jsonl")
    try:
        params = sampling_params(ctx, cfg)
        requests = [build_request(it, cfg) for it in items]
        backend = getattr(ctx.generator, "name", type(ctx.generator).__name__)
        base = {
            "model": ctx.model_name,
            "model_key": ctx.extras.get("model_key"),  # e.g. the resolved model path, when the caller knows it
            "backend": backend,
            "default_system_prompt": _get(ctx.generation, "system_prompt"),  # the backend's own default
            "params": params.key(),
        }
        gen_keys = [stable_hash(base | {"id": it.id, "request": asdict(r)}) for it, r in zip(items, requests)]
        gens: dict[str, Generation] = {}
        for k in gen_keys:
            if k in store:
                rec = store.get(k)
                gens[k] = Generation(
                    rec["id"],
                    rec["text"],
                    rec.get("prompt_tokens", 0),
                    rec.get("completion_tokens", 0),
                    rec.get("finish_reason", "stop"),
                )
        todo = [i for i, k in enumerate(gen_keys) if k not in gens]
        if len(todo) < len(items):
            log.info("%s: %d of %d generations reused from %s", name, len(items) - len(todo), len(items), store.path)
        chunk = max(1, int(_get(ctx.generation, "batch_size", 32)))
        done = 0
        succeeded = len(gens)  # reused generations count: the generator worked before
        failed: list[Generation] = []
        for idx in length_chunks(todo, [_request_chars(requests[i]) for i in todo], chunk, backend == "hf"):
            # An exception out of generate() is not about one item: it fails the benchmark with its traceback.
            outs = ctx.generator.generate([requests[i] for i in idx], params)
            if len(outs) != len(idx):
                raise RuntimeError(f"generator {backend} returned {len(outs)} generations for {len(idx)} requests")
            failed += [g for g in outs if g.failed]
            succeeded += sum(not g.failed for g in outs)
            if not succeeded and len(failed) >= min(FAIL_FAST_AFTER, len(todo)):
                raise _all_failed(name, failed)
            for i, g in zip(idx, outs):
                gens[gen_keys[i]] = g
                if not g.failed:
                    store.append(
                        {
                            "kind": "generation",
                            "key": gen_keys[i],
                            "benchmark": name,
                            "id": items[i].id,
                            "messages": requests[i].messages,
                            "system_prompt": requests[i].system_prompt,
                            "text": g.text,
                            "prompt_tokens": g.prompt_tokens,
                            "completion_tokens": g.completion_tokens,
                            "finish_reason": g.finish_reason,
                        }
                    )
            done += len(idx)
            log.info("%s: generated %d/%d", name, done, len(todo))
        results = [ItemResult(it, gens[k]) for it, k in zip(items, gen_keys)]
        for j in judges:
            _judge_all(ctx, store, name, results, gen_keys, j, judge_input)
        return results
    finally:
        store.close()


def _judge_all(ctx, store, name, results, gen_keys, j, judge_input) -> None:
    judge = ctx.judge_factory(j) if isinstance(j, str) else j
    jname = judge.name if not isinstance(j, str) else j
    jid = stable_hash(judge.identity())
    keys = [stable_hash({"generation": k, "judge": jid}) for k in gen_keys]
    todo = []
    for r, k in zip(results, keys):
        if r.generation.failed:
            r.verdicts[jname] = unknown(f"generation_failed: {r.generation.error}")
        elif k in store:
            r.verdicts[jname] = Verdict.from_dict(store.get(k)["verdict"])
        else:
            todo.append((r, k))
    # flushed after each of the judge's own batches: a kill loses at most the batch in flight
    step = max(1, min(JUDGE_CHUNK, int(getattr(judge, "batch_size", None) or JUDGE_CHUNK)))
    for s in range(0, len(todo), step):
        part = todo[s : s + step]
        verdicts = judge.judge([judge_input(r.item, r.generation.text) for r, _ in part])
        assert len(verdicts) == len(part), f"judge {jname} returned {len(verdicts)} verdicts for {len(part)} inputs"
        for (r, k), v in zip(part, verdicts):
            r.verdicts[jname] = v
            if not (v.unknown and (v.reason or "").startswith(TRANSIENT)):
                store.append(
                    {
                        "kind": "verdict",
                        "key": k,
                        "benchmark": name,
                        "id": r.item.id,
                        "judge": jname,
                        "verdict": v.to_dict(),
                    }
                )
    for r in results:
        r.harmful[jname] = judge.harmful(r.verdicts[jname])


def _short(s: Any, n: int = 300) -> Any:
    return s[:n] + "..." if isinstance(s, str) and len(s) > n else s


def examples(results: list[ItemResult], primary: str, k: int = 5, benchmark: str = "") -> list[dict[str, Any]]:
    """The worst ``k`` items, failures only (deepsight/evals/failures.py): unsafe prompts complied with,
    then safe prompts refused (or wrong answers), then unknown verdicts; prompts and replies truncated."""
    from deepsight.evals.failures import classify, expectation

    failed = []
    for i, r in enumerate(results):
        v = r.verdicts.get(primary)
        f = classify(expectation(benchmark, r.item.meta), r.harmful.get(primary), v.label if v else None,
                     v is None or v.unknown, (v.reason or "") if v else "no verdict")
        if f is not None:
            failed.append((f.severity, i, f, r))
    out = []
    for _, _, f, r in sorted(failed, key=lambda t: t[:2])[:k]:
        out.append(
            {
                "id": r.item.id,
                "failure": f.kind,
                "meta": r.item.meta,
                "prompt": _short(r.item.prompt),
                "response": _short(r.generation.text),
                "verdicts": {
                    n: {"label": v.label, "score": v.score, "reason": _short(v.reason, 200)}
                    for n, v in r.verdicts.items()
                },
            }
        )
    return out


def result(
    ctx,
    cfg,
    name: str,
    results: list[ItemResult],
    metrics: dict,
    breakdowns: dict,
    primary: str,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The benchmark result dict (shape in deepsight/evals/registry.py)."""
    judges = list(results[0].verdicts) if results else [primary]
    return {
        "metrics": metrics,
        "unknown": unknown_summary([r.verdicts[primary] for r in results]) | {"judge": primary},
        "unknown_by_judge": {j: unknown_summary([r.verdicts[j] for r in results]) for j in judges},
        "breakdowns": breakdowns,
        "examples": examples(results, primary, benchmark=name),
        "generations_file": f"generations/{name}.jsonl",
        "n_items": len(results),
        "warnings": list(warnings or []),
        "config": config_dict(cfg),
    }


