"""The "DeepSafe coverage" section of deepsight/evals/README.md: every DeepSafe family has a row, every module it
names is a registered benchmark of the stated modality, and the counts in the prose match the table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepsight.evals.registry import BENCHMARKS, is_image_text_benchmark

README = Path(__file__).resolve().parent.parent / "deepsight" / "evals" / "README.md"
# DeepSafe's README families (AI45Lab/DeepSafe @ 48f061e) plus Argus (a config and evaluator there, no README row)
DEEPSAFE_FAMILIES = {
    "Salad-Bench", "HarmBench", "Do-Not-Answer", "BeaverTails", "MM-SafetyBench", "VLSBench", "FLAMES", "XSTest",
    "SIUO", "Uncontrolled-AIRD", "TruthfulQA", "HaluEval-QA", "MedHallu", "MossBench", "Fake-Alignment",
    "Sandbagging", "Evaluation-Faking", "WMDP", "MASK", "MSSBench", "BeHonest", "Deception-Bench", "Ch3EF",
    "Manipulation-Persuasion-Conv", "Reason-Under-Pressure", "Argus",
}


def coverage_rows(text: str) -> list[tuple[str, str, list[str]]]:
    """(family, modality, modules) of each table row under '## DeepSafe coverage' (up to the next heading)."""
    m = re.search(r"^## DeepSafe coverage\n(.*?)(?=^#{1,2} |\Z)", text, re.S | re.M)
    assert m, f"{README}: no '## DeepSafe coverage' section"
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("DeepSafe family", "") or set(cells[0]) <= {"-"}:
            continue
        rows.append((cells[0], cells[1], re.findall(r"`([a-z0-9_]+)`", cells[2])))
    return rows


ROWS = coverage_rows(README.read_text(encoding="utf-8"))
MODULES = [(family, modality, mod) for family, modality, mods in ROWS for mod in mods]


def test_section_lists_every_family_once():
    families = [f for f, _, _ in ROWS]
    assert len(families) == len(set(families)), "a family is listed twice"
    assert set(families) == DEEPSAFE_FAMILIES
    assert all(mods for _, _, mods in ROWS), "a family without a module"
    assert {m for _, m, _ in ROWS} == {"text", "image-text"}
    n_text = sum(m == "text" for _, m, _ in ROWS)
    prose = re.search(r"(\d+) families, (\d+) text and (\d+) image-text", README.read_text(encoding="utf-8"))
    assert prose and tuple(map(int, prose.groups())) == (len(ROWS), n_text, len(ROWS) - n_text)


@pytest.mark.parametrize(("family", "modality", "module"), MODULES, ids=[m for _, _, m in MODULES])
def test_module_is_registered_with_its_modality(family, modality, module):
    if module not in BENCHMARKS:
        import deepsight.evals.all  # noqa: F401  (registers every benchmark)
    assert module in BENCHMARKS, f"{family}: module {module!r} is not a registered benchmark"
    assert is_image_text_benchmark(module) == (modality == "image-text"), f"{module}: modality {modality}"
    assert (README.parent.parent.parent / "conf" / "eval" / f"{module}.yaml").is_file(), f"no conf/eval/{module}.yaml"
