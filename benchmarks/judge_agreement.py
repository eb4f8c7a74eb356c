"""Judge quality check: agreement of refusal judges with human labels.

Human-labelled replies (binary refusal vs compliance):
- ``xstest/model_completions/*.csv``: XSTest v2 completions of five models with the
  annotators' ``final_label`` (1_full_compliance = compliance; 2_full_refusal and
  3_partial_refusal = refusal, as in the XSTest paper's binary view);
- ``pyrit_refusal/refusal.csv`` and ``refusal_extra.csv``: PyRIT's refusal-scorer
  evaluation set (``human_score`` 1 = refusal; '#' lines are comments).

Scores the string-match refusal judge, and optionally an LLM judge (any judge name of
deepsight/judges/factory.py whose verdicts map to refusal/compliance, e.g.
``--llm-judge yes_no --judge-model target``). Prints accuracy and Cohen's kappa per
source and overall; unknown verdicts are counted and excluded from both (reported).

Usage: python benchmarks/judge_agreement.py --data-dir ../shared/data [--llm-judge NAME --judge-model PATH]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

from deepsight.judges.base import JudgeInput, Verdict


def cohen_kappa(a: list[bool], b: list[bool]) -> float:
    """Cohen's kappa of two binary raters (nan when chance agreement is 1)."""
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    return float("nan") if pe == 1 else (po - pe) / (1 - pe)


def load_xstest(data_dir: Path) -> list[tuple[str, JudgeInput, bool]]:
    """(source, input, human says refusal) for every labelled XSTest completion."""
    out = []
    for f in sorted((data_dir / "xstest" / "model_completions").glob("*.csv")):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                label = row["final_label"].strip()
                out.append(
                    (f"xstest/{f.stem}", JudgeInput(row["prompt"], row["completion"]), not label.startswith("1"))
                )
    return out


def load_pyrit(data_dir: Path) -> list[tuple[str, JudgeInput, bool]]:
    out = []
    for f in sorted((data_dir / "pyrit_refusal").glob("*.csv")):
        text = "".join(line for line in f.read_text(encoding="utf-8").splitlines(True) if not line.startswith("#"))
        for row in csv.DictReader(io.StringIO(text)):
            out.append(
                (f"pyrit/{f.stem}", JudgeInput(row["objective"], row["assistant_response"]), row["human_score"] == "1")
            )
    return out


def says_refusal(judge, v: Verdict) -> bool | None:
    """Map a verdict to refusal (True) / compliance (False); None when unknown."""
    harmful = judge.harmful(v)
    return None if harmful is None else not harmful


def score(judge, rows: list[tuple[str, JudgeInput, bool]], batch: int = 64) -> dict:
    verdicts: list[Verdict] = []
    for i in range(0, len(rows), batch):
        verdicts += judge.judge([r[1] for r in rows[i : i + batch]])
    groups: dict[str, list] = {}
    for (src, _, human), v in zip(rows, verdicts):
        pred = says_refusal(judge, v)
        for g in (src, src.split("/")[0], "all"):
            groups.setdefault(g, []).append((human, pred))
    out = {}
    for g, pairs in groups.items():
        known = [(h, p) for h, p in pairs if p is not None]
        acc = sum(h == p for h, p in known) / len(known) if known else float("nan")
        out[g] = {
            "n": len(pairs),
            "unknown": len(pairs) - len(known),
            "accuracy": acc,
            "kappa": cohen_kappa([h for h, _ in known], [p for _, p in known]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEEPSIGHT_DATA_DIR", "../shared/data"))
    ap.add_argument("--llm-judge", default=None, help="also score this judge (e.g. yes_no, llamaguard)")
    ap.add_argument("--judge-model", default=None, help="model of the LLM judge (path, hub id, or 'target')")
    ap.add_argument("--judge-backend", default="hf")
    ap.add_argument("--limit", type=int, default=None, help="rows per source for the LLM judge (slow on CPU)")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        print(f"data dir not found: {data_dir}", file=sys.stderr)
        return 2
    rows = load_xstest(data_dir) + load_pyrit(data_dir)

    from deepsight.judges.refusal import RefusalJudge

    results = {"refusal": score(RefusalJudge(), rows)}
    if args.llm_judge:
        from deepsight.config.schema import JudgeConfig
        from deepsight.judges.factory import JudgeFactory

        target = None
        if args.judge_model == "target":
            from deepsight.config.schema import ModelConfig
            from deepsight.models.loading import load_model

            target = load_model(ModelConfig())
        cfg = JudgeConfig(name=args.llm_judge, model=args.judge_model, backend=args.judge_backend)
        factory = JudgeFactory(cfg, data_dir=data_dir, target=target)
        sub = rows
        if args.limit:
            per: dict[str, int] = {}
            sub = [r for r in rows if per.setdefault(r[0], 0) < args.limit and not per.update({r[0]: per[r[0]] + 1})]
        results[args.llm_judge] = score(factory(args.llm_judge), sub, batch=16)
        factory.close()

    for judge, groups in results.items():
        print(f"\n== judge: {judge}")
        print(f"{'source':44s} {'n':>5s} {'unknown':>8s} {'accuracy':>9s} {'kappa':>7s}")
        for g in sorted(groups, key=lambda k: (k == "all", "/" not in k, k)):
            r = groups[g]
            print(f"{g:44s} {r['n']:5d} {r['unknown']:8d} {r['accuracy']:9.3f} {r['kappa']:7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
