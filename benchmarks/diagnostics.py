"""White-box diagnostics end to end on SmolLM2 (CPU): DeepSight vs an independent straightforward
implementation of each spec reference procedure, same inputs, same process.

For each selected diagnostic it prints the wall time of both, the speed-up and the largest relative
difference over every metric (the per-metric differences follow in the notes column). Results are
recorded in benchmarks/RESULTS.md. One section per diagnostic:

- xboundary, tellme: ``benchmarks/_xb_tellme.py``
- spin, mi_peaks: ``benchmarks/_spin_mi.py``

Usage::

    python benchmarks/diagnostics.py --only xboundary,tellme --n-xboundary 8 --n-tellme 32
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ALL = ("xboundary", "tellme", "spin", "mi_peaks")


def print_table(rows: list[dict]) -> None:
    print("| scan | n | settings | DeepSight s | reference s | speed-up | largest rel diff | notes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        notes = "per metric: " + json.dumps({k: float(f"{v:.1e}") for k, v in r["diffs"].items()})
        if "cpu_s" in r:
            c_ours, c_ref = r["cpu_s"]
            notes += f"; process CPU s {c_ours:.1f} vs {c_ref:.1f} ({c_ref / c_ours:.1f}x)"
        for extra in ("tokens", "max_rel_diff_ref64", "max_rel_diff_ref32", "candidates_differing", "runs"):
            if extra in r:
                notes += f"; {extra}: {r[extra]:.1e}" if isinstance(r[extra], float) else f"; {extra}: {r[extra]}"
        print(f"| {r['scan']} | {r['n']} | {r['settings']} | {r['deepsight_s']:.1f} | {r['reference_s']:.1f} | "
              f"{r['speedup']:.1f}x | {r['max_rel_diff']:.1e} | {notes} |")


def best_of(repeat: int, bench) -> dict:
    """``bench()`` (one row: both sides timed back to back) ``repeat`` times, so the two sides alternate;
    each side's fastest time is kept (the least disturbed by the machine), every run listed in the notes."""
    runs = [bench() for _ in range(max(1, repeat))]
    row = dict(runs[0])
    if len(runs) > 1:
        for key in ("deepsight_s", "reference_s"):
            row[key] = min(r[key] for r in runs)
        row["speedup"] = row["reference_s"] / row["deepsight_s"]
        row["max_rel_diff"] = max(r["max_rel_diff"] for r in runs)
        if "cpu_s" in row:
            row["cpu_s"] = tuple(min(r["cpu_s"][i] for r in runs) for i in range(2))
        row["runs"] = ", ".join(f"{r['deepsight_s']:.1f}/{r['reference_s']:.1f}" for r in runs)
    return row


def _load_model():
    from deepsight.config.schema import ModelConfig
    from deepsight.models.anatomy import inspect_model
    from deepsight.models.loading import load_model

    lm = load_model(ModelConfig(dtype="float32", device="cpu"))
    lm.model.eval()
    return lm.model, lm.tokenizer, inspect_model(lm.model)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1, help="time both sides this many times, alternating; keep "
                    "each side's fastest (the first run of a process also pays first-touch page faults)")
    ap.add_argument("--n-xboundary", type=int, default=200, help="chats per X-Boundary class (spec default 200)")
    ap.add_argument("--n-tellme", type=int, default=1000, help="TELLME rows per class (the file has 1000 + 1000)")
    ap.add_argument("--n-spin", type=int, default=8)
    ap.add_argument("--q", type=float, default=1e-4)
    ap.add_argument("--n-mi", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=512, help="MI-Peaks generation length (spec default 512)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(ALL))
    if unknown:
        ap.error(f"--only: unknown diagnostic(s) {unknown}; choose from {ALL}")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, tok, anatomy = _load_model()
    print(f"model loaded in {time.perf_counter() - t0:.1f}s; torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    from deepsight.models.cpu_linears import PackedLinears

    t0 = time.perf_counter()
    packed = PackedLinears(model)  # once per model, as the audit does at load time (reported, not in the scans' times)
    print(f"CPU fast paths: {len(packed)} linear layers pre-packed in {time.perf_counter() - t0:.2f}s")
    rows: list[dict] = []
    run_dir = Path(tempfile.mkdtemp(prefix="deepsight_bench_"))
    if "xboundary" in only or "tellme" in only:
        from benchmarks import _xb_tellme as xt

        inputs = xt.load_inputs(args.data_dir, args.n_xboundary, args.n_tellme)
        if "xboundary" in only:
            rows.append(best_of(args.repeat, lambda: xt.bench_xboundary(model, tok, anatomy, inputs.xboundary, run_dir,
                                                                           packed=packed)))
            print_table(rows[-1:])
        if "tellme" in only:
            rows.append(best_of(args.repeat, lambda: xt.bench_tellme(model, tok, anatomy, inputs.tellme, run_dir,
                                                                        packed=packed)))
            print_table(rows[-1:])
    if "spin" in only or "mi_peaks" in only:
        from benchmarks import _spin_mi as sm

        spin_rows, items = sm.load_data(args.data_dir, args.n_spin, args.n_mi)
        if "spin" in only:
            rows.append(best_of(args.repeat, lambda: sm.bench_spin(model, tok, anatomy, spin_rows[0], spin_rows[1],
                                                                      q=args.q, packed=packed)))
        if "mi_peaks" in only:
            rows.append(best_of(args.repeat, lambda: sm.bench_mi_peaks(model, tok, anatomy, items,
                                                                       max_new_tokens=args.max_new_tokens,
                                                                       packed=packed)))
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
