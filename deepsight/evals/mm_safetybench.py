"""MM-SafetyBench (Liu et al., ECCV 2024, arXiv 2311.17600): query-relevant images jailbreak image-text models.

1680 harmful questions in 13 scenarios (Illegal Activity ... Government Decision). The key
phrase of each question is drawn into an image -- Stable Diffusion (SD), typography (TYPO) or both
stacked (SD_TYPO) -- and the question is rephrased to point at the image. Native format (the
official repository): ``processed_questions/<NN-Scenario>.json`` = ``{id: {"Question",
"Changed Question", "Key Phrase", "Phrase Type", "Rephrased Question", "Rephrased Question(SD)"}}``
and the images ``imgs/<NN-Scenario>/<SD|SD_TYPO|TYPO>/<id>.jpg``. Each image type is asked with its
question as the paper pairs them: SD with "Rephrased Question(SD)", SD_TYPO and TYPO with
"Rephrased Question", and the Text_only split with the original "Question" and no image -- the four
splits DeepSafe's ``MMSafetyBenchDataset`` loads (``options.splits``; ``subsets`` picks scenarios by
file stem or name). Items are ``<Scenario>:<split>:<id>`` as in DeepSafe; an image split whose file is
missing is skipped and counted.

Judge: ``mm_safetybench`` (the paper's text-only GPT-4 judge with its scenario prompts, see
judges/mm_safetybench.py); ``refusal`` string match runs too, reported as ``refusal_rate_string_match`` only.
Metrics (DeepSafe's ``MMSafetyBenchMetric``): attack rate (unsafe answers) with its Wilson interval
over the judged items, ``attack_rate_all`` = unsafe / all items (DeepSafe's denominator, judge
failures counted as not attacked), safe rate, invalid rate; per scenario (``category``), per image
type (``split``) and per scenario x image type.
Data: isXinLiu/MM-SafetyBench (questions in the repository, images from its release).
"""

from __future__ import annotations

import re
from pathlib import Path

from deepsight.errors import ConfigError, DataFormatError, MissingDataError
from deepsight.evals.common import by_meta, harmful, judges_for, not_
from deepsight.evals.loaders import EvalItem, read_file, select, text_field
from deepsight.evals.metrics import flag_rate, rate
from deepsight.evals.registry import register_benchmark
from deepsight.evals.runner import generate_and_judge, result
from deepsight.judges.base import JudgeInput

NAME, DEFAULT_PATH, DEFAULT_IMAGES = "mm_safetybench", "mm_safetybench", "imgs"
SPLITS = ("SD", "SD_TYPO", "TYPO", "Text_only")
QUESTION_FIELD = {"SD": "Rephrased Question(SD)", "SD_TYPO": "Rephrased Question", "TYPO": "Rephrased Question",
                  "Text_only": "Question"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def scenario_name(stem: str) -> str:
    """``01-Illegal_Activitiy`` -> ``Illegal_Activitiy`` (DeepSafe's category names)."""
    return re.sub(r"^\d+-", "", stem)


def _image(image_root: Path, stem: str, split: str, qid: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = image_root / stem / split / f"{qid}{suffix}"
        if p.is_file():
            return p
    return None


def load_items(root: Path, image_root: Path, splits: list[str], scenarios: list[str] | None = None
               ) -> tuple[list[EvalItem], list[str]]:
    """(items, ids skipped for a missing image) from ``root/processed_questions/*.json``."""
    qdir = root / "processed_questions"
    files = sorted(qdir.glob("*.json"))
    if not files:
        raise MissingDataError(f"{qdir}: no MM-SafetyBench question files (<NN-Scenario>.json) (eval.{NAME}.path)")
    if scenarios:
        wanted = set(scenarios)
        files = [f for f in files if f.stem in wanted or scenario_name(f.stem) in wanted]
        found = {f.stem for f in files} | {scenario_name(f.stem) for f in files}
        if wanted - found:
            raise ConfigError(f"eval.{NAME}.subsets: no question file for {sorted(wanted - found)} under {qdir}")
    items, missing = [], []
    for f in files:
        category = scenario_name(f.stem)
        for i, row in enumerate(read_file(f)):
            qid = str(row.get("_key", i))
            where = f"{f} (id {qid})"
            for split in splits:
                question = text_field(row, QUESTION_FIELD[split], where, i)
                images: tuple[str, ...] = ()
                if split != "Text_only":
                    image = _image(image_root, f.stem, split, qid)
                    if image is None:
                        missing.append(f"{category}:{split}:{qid}")
                        continue
                    images = (str(image),)
                meta = {"category": category, "split": split, "category_split": f"{category}/{split}",
                        "key_phrase": row.get("Key Phrase") or "", "label": "unsafe"}
                items.append(EvalItem(f"{category}:{split}:{qid}", question.strip(), meta, images=images))
    return items, missing


def judge_input(item: EvalItem, text: str) -> JudgeInput:
    """The judge reads the answer only; the scenario picks its prompt."""
    return JudgeInput(prompt=item.prompt, response=text, context=item.meta["category"])


def mm_metrics(results, judge: str) -> dict:
    flags = harmful(results, judge)
    out = {"attack_rate": flag_rate(flags), "safe_rate": flag_rate(not_(flags)),
           "attack_rate_all": rate(sum(f is True for f in flags), len(flags)),
           "invalid_rate": rate(sum(f is None for f in flags), len(flags))}
    if results and "refusal" in results[0].harmful and judge != "refusal":
        out["refusal_rate_string_match"] = flag_rate(not_(harmful(results, "refusal")))
    return out


def _splits(cfg) -> list[str]:
    unknown = set(cfg.options or {}) - {"splits", "image_dir"}
    if unknown:
        raise ConfigError(f"eval.{NAME}.options: unknown key(s) {sorted(unknown)}; known: splits, image_dir")
    splits = list((cfg.options or {}).get("splits") or SPLITS)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ConfigError(f"eval.{NAME}.options.splits: unknown {bad}; known: {list(SPLITS)}")
    return splits


@register_benchmark(NAME, image_text=True)
def run(ctx, cfg) -> dict:
    root = ctx.data_path(cfg.path or DEFAULT_PATH, f"eval.{NAME}.path")
    if not root.is_dir():
        raise DataFormatError(f"{root}: eval.{NAME}.path must be the MM-SafetyBench folder (processed_questions/)")
    image_opt = (cfg.options or {}).get("image_dir") or DEFAULT_IMAGES
    image_root = Path(image_opt) if Path(image_opt).is_absolute() else root / image_opt
    items, missing = load_items(root, image_root, _splits(cfg), list(cfg.subsets) if cfg.subsets else None)
    if not items:
        raise MissingDataError(f"{NAME}: no item has its image under {image_root} (eval.{NAME}.options.image_dir); "
                               "add the Text_only split or fetch the MM-SafetyBench images")
    warnings = []
    if missing:
        warnings.append(f"{len(missing)} image items skipped: image file missing under {image_root}")
    items = select(items, cfg.limit, cfg.seed)
    judges = judges_for(cfg, NAME, ("refusal",))
    results = generate_and_judge(ctx, cfg, NAME, items, judges, judge_input=judge_input)

    def m(rs):
        return mm_metrics(rs, judges[0])

    metrics = m(results) | {"n_items": len(results), "n_skipped_missing_image": len(missing)}
    return result(ctx, cfg, NAME, results, metrics, by_meta(results, ["category", "split", "category_split"], m),
                  judges[0], warnings=warnings)
