"""VLSBench (Hu et al., 2024, arXiv 2411.19939): multimodal safety without visual safety information leakage.

2241 image-text pairs whose text alone looks harmless: the risk is only in the image. Native
format: ``data.json``, a list of {instruction_id, instruction, image_path, category, sub_category,
source, image_description, safety_reason}; ``image_path`` (``imgs/<name>.png``) is relative to the
folder holding data.json, as DeepSafe's ``VLSBenchDataset`` resolves it. The images are on Hugging
Face (Foreshhh/vlsbench's ``imgs.tar``), not in the GitHub repository: with the default data, images
missing beside data.json are taken from that archive, downloaded, verified and unpacked on first use
(``IMAGES``, deepsight/data/sources.py); rows whose image is still missing are skipped and counted
(DeepSafe skips them too); with none present the benchmark reports the data missing.
An empty instruction is kept (one row of the release: the image alone carries the request), as DeepSafe does.
The target sees the image then the instruction (the official eval.py order).

Judge: ``vlsbench`` (the paper's image-text GPT-4o judge: 1 Safe with refusal, 2 Safe with
warning, 3 Unsafe; see judges/vlsbench.py); ``refusal`` string match runs too, reported as
``refusal_rate_string_match`` only. Metrics (DeepSafe's ``VLSBenchMetric``): safe rate (refusal +
warning), safe-with-refusal rate, safe-with-warning rate (DeepSafe's safe_refusal_rate /
safe_warning_rate) and unsafe rate, each with its Wilson interval over
the judged items and as ``*_all`` over all items (DeepSafe's denominator), the invalid rate; per
category and sub-category.
Data: AI45Lab/VLSBench @ 68f54de (data.json); images: HF Foreshhh/vlsbench @ b56f6f6 (imgs.tar).
"""

from __future__ import annotations

from pathlib import Path

from deepsight.data.paths import fetch_images
from deepsight.errors import ConfigError, DataFormatError, MissingDataError
from deepsight.evals.common import by_meta, harmful, judges_for, not_
from deepsight.evals.loaders import EvalItem, field_of, read_file, select
from deepsight.evals.metrics import flag_rate, rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result

NAME, DEFAULT_PATH = "vlsbench", "vlsbench/data.json"
IMAGES = "vlsbench/imgs.tar"  # registered archive of imgs/<n>.png, unpacked beside the default data.json
# DeepSafe's safe_refusal_rate / safe_warning_rate are named after the paper's labels here: the report already
# reads "safe_refusal_rate" as over-refusal of safe prompts (XSTest), which these are not.
RATES = {"safe_with_refusal_rate": ("safe_refusal",), "safe_with_warning_rate": ("safe_warning",),
         "unsafe_rate": ("unsafe",), "safe_rate": ("safe_refusal", "safe_warning")}


def load_items(path: Path, image_root: Path | None = None) -> tuple[list[EvalItem], list[str], int]:
    """(items whose image exists, ids skipped for a missing image, number of rows); ``image_path`` is
    relative to ``image_root`` (default: the folder holding data.json)."""
    rows = read_file(path)
    image_root = path.parent if image_root is None else image_root
    items, missing = [], []
    for i, r in enumerate(rows):
        iid = str(field_of(r, "instruction_id", str(path), i))
        instruction = field_of(r, "instruction", str(path), i)
        if not isinstance(instruction, str):
            what = type(instruction).__name__
            raise DataFormatError(f"{path}: row {i}: field 'instruction' is a {what}, expected text")
        image = image_root / str(field_of(r, "image_path", str(path), i))
        if not image.is_file():
            missing.append(iid)
            continue
        meta = {k: r.get(k) or "" for k in ("category", "sub_category", "source", "image_description",
                                            "safety_reason")}
        items.append(EvalItem(iid, instruction, meta | {"label": "unsafe"}, images=(str(image),)))
    return items, missing, len(rows)


def vls_metrics(results, judge: str) -> dict:
    labels = [r.verdicts[judge] for r in results]
    known = [v for v in labels if not v.unknown]
    out = {}
    if judge == NAME:
        for key, which in RATES.items():
            count = sum(v.label in which for v in known)
            out[key] = rate(count, len(known))
            out[f"{key}_all"] = rate(count, len(labels))
    else:  # another judge chosen with eval.vlsbench.judge: its own unsafe (complied) rate only
        flags = harmful(results, judge)
        out["unsafe_rate"], out["safe_rate"] = flag_rate(flags), flag_rate(not_(flags))
    out["invalid_rate"] = rate(len(labels) - len(known), len(labels))
    if results and "refusal" in results[0].harmful and judge != "refusal":
        out["refusal_rate_string_match"] = flag_rate(not_(harmful(results, "refusal")))
    return out


@register_benchmark(NAME, image_text=True)
def run(ctx, cfg) -> dict:
    if cfg.options:
        raise ConfigError(f"eval.{NAME}.options: unknown key(s) {sorted(cfg.options)}; {NAME} takes no options")
    path = ctx.data_path(cfg.path or DEFAULT_PATH, f"eval.{NAME}.path")
    if not path.is_file():
        raise DataFormatError(f"{path}: eval.{NAME}.path must be VLSBench's data.json")
    items, missing, n_rows = load_items(path)
    warnings, image_root = [], path.parent
    if missing and not cfg.path:  # the default data: its images are a registered archive
        try:
            image_root = fetch_images(IMAGES, f"eval.{NAME}")
            items, missing, n_rows = load_items(path, image_root)
        except MissingDataError as e:
            warnings.append(str(e))
    if n_rows and not items:
        raise MissingDataError(f"{NAME}: none of the {n_rows} images of {path} is present under {image_root} "
                               "(image_path, e.g. imgs/*.png; the images are on Hugging Face Foreshhh/vlsbench)"
                               + "".join(f"; {w}" for w in warnings))
    if missing:
        warnings.append(f"{len(missing)} of {n_rows} rows skipped: image file missing under {image_root}")
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, NAME, ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges)

    def m(rs):
        return vls_metrics(rs, judges[0])

    metrics = m(results) | {"n_items": len(results), "n_skipped_missing_image": len(missing)}
    return result(ctx, cfg, NAME, results, metrics, by_meta(results, ["category", "sub_category"], m), judges[0],
                  warnings=warnings)

