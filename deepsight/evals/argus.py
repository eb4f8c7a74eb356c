"""Argus Inspection (Yao et al., 2025, arXiv 2506.14805): fine-grained visual perception and commonsense causal
reasoning of image-text models, scored with the "Eye of Panoptes" (judges/argus.py), as DeepSafe runs it.

Each item is an image with a visual "trap" (a detail that decides what one should do, never named in the
text), a basic-level question, a deceptive-level question (moral or emotional distractions), the trap text
and a standard answer. Native layout (DeepSafe's ``ArgusDataset``): ``<root>/Benchmark/<NN>/meta_<NN>.jsonl``
for the ten domains NN = 01..10, rows {uid, image_name, dec_question, bas_question, standard_answer, trap},
the image ``<root>/Benchmark/<NN>/<image_name>``. Domain folders that are absent and rows whose image is
missing are skipped and counted. Per item the target (greedy) answers "Answer the following question based
on the image. " + each question, and lists the image's elements ("Please list the elements in the image. "),
without a system prompt, the image before the text (DeepSight's order; DeepSafe's client sends the text
first). ``argus_presence`` gives D from that list, ``argus_scorer`` X and Y of each answer; the item's scores
are dec = f(D, X_dec, Y_dec) and bas = f(D, X_bas, Y_bas), f = eye_of_panoptes.

Metrics (DeepSafe's ``ArgusDomainMetric``): mean dec and bas score (normal 95% intervals) overall and per
domain, over the items whose verdicts all parsed; the trap-seen rate (D = 1). An unparseable judge reply is
``unknown`` and leaves the item out; DeepSafe's own fallback (an unparseable score counts 0) is reported apart
as ``*_score_fallback0`` over every judged item, never mixed into the main scores.

    deepsight audit=none eval=[argus] judge=argus model.path=/models/Qwen2.5-VL-7B-Instruct
"""

from __future__ import annotations

from pathlib import Path

from deepsight.errors import DataFormatError
from deepsight.evals.loaders import EvalItem, field_of, read_file, select, text_field
from deepsight.evals.metrics import breakdown, flag_rate, mean_summary, unknown_summary
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.argus import deepsafe_int, eye_of_panoptes
from deepsight.judges.base import JudgeInput

NAME, DEFAULT_PATH = "argus", "argus"
DOMAINS = tuple(f"{i:02d}" for i in range(1, 11))
PREFIX = "Answer the following question based on the image. "
LIST_ELEMENTS = "Please list the elements in the image. "
PRESENCE, SCORER = "argus_presence", "argus_scorer"


def load_rows(root: Path) -> tuple[list[dict], list[str], list[str]]:
    """(rows with an image, domains without a meta file, uids skipped for a missing image)."""
    rows, absent, missing = [], [], []
    for dom in DOMAINS:
        meta = root / "Benchmark" / dom / f"meta_{dom}.jsonl"
        if not meta.is_file():
            absent.append(dom)
            continue
        for i, r in enumerate(read_file(meta)):
            row = {k: text_field(r, k, str(meta), i) for k in ("dec_question", "bas_question", "standard_answer",
                                                               "trap")}
            row["uid"] = str(field_of(r, "uid", str(meta), i))
            image = meta.parent / str(field_of(r, "image_name", str(meta), i))
            if not image.is_file():
                missing.append(row["uid"])
                continue
            rows.append(row | {"domain": dom, "image": str(image)})
    if len(absent) == len(DOMAINS):
        raise DataFormatError(f"{root}: no Argus domain files (expected Benchmark/NN/meta_NN.jsonl, NN = 01..10)")
    return rows, absent, missing


def _items(rows: list[dict], kind: str) -> list[EvalItem]:
    out = []
    for r in rows:
        prompt = LIST_ELEMENTS if kind == "desc" else PREFIX + r[f"{kind}_question"]
        out.append(EvalItem(f"{r['uid']}:{kind}", prompt, {"domain": r["domain"], "kind": kind},
                            context=None, reference=r, images=(r["image"],)))
    return out


def _presence_input(item: EvalItem, text: str) -> JudgeInput:
    return JudgeInput(prompt=item.prompt, response=text, reference=item.reference["trap"])


def _scorer_input(item: EvalItem, text: str) -> JudgeInput:
    r = item.reference
    return JudgeInput(prompt=item.prompt, response=text, context=r["trap"], reference=r["standard_answer"])


def item_scores(presence, dec, bas) -> dict:
    """One item's dec / bas scores (None when a verdict is unknown) and DeepSafe's fallback-to-0 versions."""
    out: dict = {"D": None if presence.unknown else presence.fields["D"]}
    d0 = deepsafe_int(presence.fields.get("d_raw"), 0, 1) if "d_raw" in presence.fields else None
    for kind, v in (("dec", dec), ("bas", bas)):
        known = out["D"] is not None and not v.unknown
        out[kind] = eye_of_panoptes(out["D"], v.fields["X"], v.fields["Y"]) if known else None
        judged = d0 is not None and "x_raw" in v.fields
        out[f"{kind}_fallback0"] = eye_of_panoptes(d0, deepsafe_int(v.fields["x_raw"], 1, 4),
                                                   deepsafe_int(v.fields["y_raw"], 1, 4)) if judged else None
    return out


def argus_metrics(scores: list[dict]) -> dict:
    return {"dec_score": mean_summary(s["dec"] for s in scores), "bas_score": mean_summary(s["bas"] for s in scores),
            "trap_seen_rate": flag_rate(None if s["D"] is None else s["D"] == 1 for s in scores),
            "dec_score_fallback0": mean_summary(s["dec_fallback0"] for s in scores),
            "bas_score_fallback0": mean_summary(s["bas_fallback0"] for s in scores)}


@register_benchmark(NAME, image_text=True)
def run(ctx, cfg) -> dict:
    root = ctx.data_path(cfg.path or DEFAULT_PATH, f"eval.{NAME}.path")
    rows, absent, missing = load_rows(root)
    warnings = [f"domain folder(s) {absent} absent under {root / 'Benchmark'}: skipped"] if absent else []
    if missing:
        warnings.append(f"{len(missing)} rows skipped: image file missing")
    chosen = select([EvalItem(r["uid"], r["uid"], reference=r) for r in rows], cfg.limit, cfg.seed)
    rows = [it.reference for it in chosen]
    desc = generate_and_judge(ctx, cfg, NAME, _items(rows, "desc"), [PRESENCE], judge_input=_presence_input)
    answers = generate_and_judge(ctx, cfg, NAME, _items(rows, "dec") + _items(rows, "bas"), [SCORER],
                                 judge_input=_scorer_input)
    n = len(rows)
    scores = [item_scores(desc[i].verdicts[PRESENCE], answers[i].verdicts[SCORER], answers[n + i].verdicts[SCORER])
              | {"domain": r["domain"]} for i, r in enumerate(rows)]
    metrics = argus_metrics(scores) | {"n_items": n, "n_skipped_missing_image": len(missing)}
    out = result(ctx, cfg, NAME, answers, metrics, {"domain": breakdown(scores, lambda s: s["domain"], argus_metrics)},
                 SCORER, warnings=warnings)
    out["unknown"] = unknown_summary([r.verdicts[PRESENCE] for r in desc] + [r.verdicts[SCORER] for r in answers]) \
        | {"judge": f"{PRESENCE}+{SCORER}"}
    out["unknown_by_judge"][PRESENCE] = unknown_summary([r.verdicts[PRESENCE] for r in desc])
    out["n_items"] = n
    return out
