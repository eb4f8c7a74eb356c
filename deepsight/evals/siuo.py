"""SIUO (Wang et al., 2024, arXiv 2406.15279): safe inputs but unsafe output, the cross-modal safety of
image-text models.

167 items where the image and the question are each harmless but together call for care (a
person on a rooftop asking for "encouragement to go to a new world"). Native format:
``siuo_gen.json``, a list of {question_id, image, question, category, safety_warning,
reference_answer}; the images ship separately (Google Drive in the SIUO README, one file each on
Hugging Face sinwang/SIUO) and are looked up in ``options.image_dir`` (default ``siuo/images`` under
data_dir; when that folder is absent, the registered Hub files, downloaded and verified on first use).
As in DeepSafe's
``SIUODataset``, an item whose image is missing is kept and asked text-only; the count is
reported. Judges: ``siuo_safety`` and ``siuo_effectiveness`` (the paper's two LLM judges, see
judges/siuo.py; image-text judge models). Metrics (DeepSafe's ``SIUOMetric``): safe rate,
effective rate (very or partially effective) and safe-and-effective rate with Wilson
intervals over the items both judges scored, per category, and the unscored (invalid) rate.
Data: sinwang20/SIUO @ 18974b6; images: HF sinwang/SIUO @ 024e80a (the commit PyRIT's SIUO loader pins).
"""

from __future__ import annotations

from pathlib import Path

from deepsight.data.paths import fetch_images
from deepsight.errors import DataFormatError, MissingDataError
from deepsight.evals.common import by_meta, harmful
from deepsight.evals.loaders import EvalItem, field_of, read_path, select
from deepsight.evals.metrics import flag_rate, rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.base import JudgeInput

NAME, DEFAULT_PATH, DEFAULT_IMAGES = "siuo", "siuo/siuo_gen.json", "siuo/images"
JUDGES = ["siuo_safety", "siuo_effectiveness"]


def load_items(rows: list[dict], where: str, image_dir: Path | None) -> tuple[list[EvalItem], int]:
    """(items, how many have no image file)."""
    items, missing = [], 0
    for i, r in enumerate(rows):
        qid = str(field_of(r, "question_id", where, i))
        question = str(field_of(r, "question", where, i))
        image_name = str(field_of(r, "image", where, i))
        image = image_dir / image_name if image_dir is not None else None
        images: tuple[str, ...] = ()
        if image is not None and image.is_file():
            images = (str(image),)
        else:
            missing += 1
        meta = {"category": str(r.get("category") or "").title(), "safety_warning": r.get("safety_warning") or ""}
        items.append(EvalItem(qid, question, meta, reference=r.get("reference_answer") or "", images=images))
    return items, missing


def judge_input(item: EvalItem, text: str) -> JudgeInput:
    return JudgeInput(prompt=item.prompt, response=text, context=item.meta["safety_warning"],
                      reference=item.reference, image=item.images[0] if item.images else None)


def siuo_metrics(results) -> dict:
    safe, effective = harmful(results, JUDGES[0]), harmful(results, JUDGES[1])
    safe = [None if s is None else not s for s in safe]  # siuo_safety flags unsafe answers
    both = [None if s is None or e is None else (s and e) for s, e in zip(safe, effective)]
    invalid = sum(b is None for b in both)
    return {"safe_rate": flag_rate(safe), "effective_rate": flag_rate(effective),
            "safe_and_effective_rate": flag_rate(both), "invalid_rate": rate(invalid, len(results))}


@register_benchmark(NAME, image_text=True)
def run(ctx, cfg) -> dict:
    path = ctx.data_path(cfg.path or DEFAULT_PATH, f"eval.{NAME}.path")
    rows = read_path(path)
    if rows and not isinstance(rows[0], dict):
        raise DataFormatError(f"{path}: expected a JSON list of objects")
    image_dir_opt = (cfg.options or {}).get("image_dir") or DEFAULT_IMAGES
    image_dir = Path(image_dir_opt) if Path(image_dir_opt).is_absolute() else (
        Path(ctx.data_dir) / image_dir_opt if ctx.data_dir is not None else None)
    warnings = []
    if (image_dir is None or not image_dir.is_dir()) and image_dir_opt == DEFAULT_IMAGES:
        try:  # the registered images (Hugging Face sinwang/SIUO), downloaded and verified on first use
            image_dir = fetch_images(DEFAULT_IMAGES, f"eval.{NAME}.options.image_dir")
        except MissingDataError as e:
            warnings.append(str(e))
    items, _ = load_items(rows, str(path), image_dir)
    items = select(items, cfg.limit, cfg.seed)
    n_missing = sum(not it.images for it in items)
    if n_missing:
        warnings.append(f"{n_missing} of {len(items)} items have no image under {image_dir}: asked text-only "
                        "(as DeepSafe does); fetch the SIUO images for the paper's setting")
    results = generate_and_judge(ctx, cfg, NAME, items, JUDGES, judge_input=judge_input)
    metrics = siuo_metrics(results) | {"n_items": len(results), "n_without_image": n_missing}
    return result(ctx, cfg, NAME, results, metrics, by_meta(results, ["category"], siuo_metrics), JUDGES[0],
                  warnings=warnings)
