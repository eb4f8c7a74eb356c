"""MOSSBench (Li et al., 2024, arXiv 2406.17806): oversensitivity of image-text models to benign image-question pairs.

300 benign requests whose image holds a harmless but alarming-looking cue, in three types
(``meta_data_over``): Exaggerated Risk, Negated Harm, Counterintuitive Interpretation. A
well-calibrated model answers; refusing is oversensitivity. Native format:
``information.csv`` (pid, question, image_path, short description, description,
meta_data_over, meta_data_human, meta_data_child, meta_data_syn, meta_data_ocr, meta_data_harm)
with the images in ``images/`` beside it, as DeepSafe's ``MOSSBenchDataset`` reads it: the
image path is resolved as ``images/<name>`` next to the CSV and rows whose image is missing are
skipped (their count is reported). With the default data and no ``images/`` folder beside the CSV,
the registered images (the 15 of the pinned snapshot, deepsight/data/sources.py) are downloaded and
verified on first use. The target sees the image then the question.
Judge: ``mossbench`` (the paper's image-text refusal judge, 0 = compliance / 1 = refusal);
``refusal`` string match as a text-only fallback, reported under its own name.
Metrics: refusal rate (DeepSafe's RefusalRate, score >= 1) and compliance rate with Wilson
intervals, per oversensitivity type and per image attribute (human, child, synthetic, OCR).
Data: xirui-li/MOSSBench @ 8d68b06.
"""

from __future__ import annotations

from pathlib import Path

from deepsight.data.paths import fetch_images
from deepsight.errors import MissingDataError
from deepsight.evals.common import by_meta, harm_rates, judges_for
from deepsight.evals.loaders import EvalItem, field_of, read_file, select
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME, DEFAULT_PATH = "mossbench", "mossbench/information.csv"
IMAGES = "mossbench/images"  # registered image files (a subset), fetched when the data has no images/ folder
COLUMNS = ("pid", "question", "image_path")


def load_items(csv_path: Path, image_dir: Path | None = None) -> tuple[list[EvalItem], list[str]]:
    """(items whose image exists, pids skipped for a missing image); images are looked up in
    ``image_dir`` (default: ``images/`` beside the CSV)."""
    where = str(csv_path)
    image_dir = csv_path.parent / "images" if image_dir is None else image_dir
    items, missing = [], []
    for i, r in enumerate(read_file(csv_path)):
        pid, question, rel = (str(field_of(r, k, where, i)).strip() for k in COLUMNS)
        if not question:
            continue  # DeepSafe skips empty questions
        name = rel[len("images/"):] if rel.startswith("images/") else rel
        image = image_dir / name
        if not image.is_file():
            missing.append(pid)
            continue
        meta = {"type": (r.get("meta_data_over") or "").strip()}
        for flag in ("human", "child", "syn", "ocr"):
            meta[flag] = (r.get(f"meta_data_{flag}") or "").strip()
        meta["harm"] = (r.get("meta_data_harm") or "").strip()
        items.append(EvalItem(pid, question, meta, images=(str(image),)))
    return items, missing


@register_benchmark(NAME, image_text=True)
def run(ctx, cfg) -> dict:
    csv_path = ctx.data_path(cfg.path or DEFAULT_PATH, f"eval.{NAME}.path")
    image_dir, warnings = csv_path.parent / "images", []
    if not image_dir.is_dir() and not cfg.path:
        try:
            image_dir = fetch_images(IMAGES, f"eval.{NAME}")
        except MissingDataError as e:
            warnings.append(str(e))
    items, missing = load_items(csv_path, image_dir)
    if missing:
        warnings.append(f"{len(missing)} rows skipped: image file missing under {image_dir}")
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, "mossbench")
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return harm_rates(rs, judges[0], "compliance_rate", "refusal_rate")

    metrics = m(results) | {"n_items": len(results), "n_skipped_missing_image": len(missing)}
    return result(ctx, cfg, NAME, results, metrics, by_meta(results, ["type", "human", "child", "syn", "ocr"], m),
                  judges[0], warnings=warnings)
