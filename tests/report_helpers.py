"""Synthetic run folders for the report, logging and compare tests: a results dict of realistic shape
(every scan and a few benchmarks, one skipped and one failed stage, non-finite values, hostile text) and
tiny PNG figures drawn with deepsight.report.figures."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from deepsight.report.figures import plot_metric_bars, plot_per_layer, plot_projection_2d, plot_trajectory

HOSTILE = '<script>alert("x")</script> | `tick` & <img src=x onerror=alert(1)>'


def _rate(rng: random.Random, n: int) -> dict[str, Any]:
    count = rng.randint(0, n)
    p = count / n
    half = 1.96 * math.sqrt(p * (1 - p) / n + 1e-4)
    return {"value": p, "count": count, "n": n, "ci_low": max(0.0, p - half), "ci_high": min(1.0, p + half)}


def make_run(run_dir: Path, model: str = "tiny-llama", seed: int = 0, figures: bool = True) -> dict[str, Any]:
    """Write figures under run_dir/figures and results.json; return the results dict (JSON form)."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    figs: dict[str, list[str]] = {"xboundary": [], "tellme": [], "spin": [], "mi_peaks": []}
    sep = {4: 1.5 + rng.random(), 8: 2.5 + rng.random()}
    ratio = {4: 0.8 + rng.random(), 8: math.inf}
    tellme = {"R_diff": 40 + rng.random(), "R_same": 30 + rng.random(), "erank": 12.3, "cos_sim": 31.0,
              "pcc": 0.41, "L1": 55.0, "L2": 4.2, "hausdorff": 7.7}
    tellme["R_gap"] = tellme["R_diff"] - tellme["R_same"]
    coupled = {i: rng.randint(0, 5) for i in range(6)}
    traj = np.abs(nrng.normal(size=40)).cumsum() / 10
    peaks = [5, 17, 30]
    if figures:
        f = run_dir / "figures"
        figs["xboundary"] = [
            plot_per_layer({"separation_score": sep, "boundary_ratio": ratio}, "separation",
                           f / "xboundary_layers.png"),
            plot_projection_2d(nrng.normal(size=(30, 2)), [i % 3 for i in range(30)], f / "xboundary_proj_l8.png",
                               label_names={0: "harmful", 1: "safe", 2: "boundary"}),
        ]
        figs["tellme"] = [plot_metric_bars(tellme, "TELLME", f / "tellme_metrics.png")]
        figs["spin"] = [plot_per_layer(coupled, "coupled per layer", f / "spin_coupled.png", kind="bar")]
        figs["mi_peaks"] = [plot_trajectory(traj, peaks, f / "mi_peaks_trajectory.png",
                                            peak_labels=["so", "wait", "thus"])]
        figs = {k: [str(Path(p).relative_to(run_dir)) for p in v] for k, v in figs.items()}
    results = {
        "schema_version": 1,
        "status": "completed_with_errors",
        "started_at": "2026-11-28T01:00:00+0000",
        "finished_at": "2026-11-28T01:05:00+0000",
        "versions": {"python": "3.11", "torch": "2.13.0", "deepsight": "0.1.0"},
        "hardware": {"platform": "Linux", "cpu_count": 2, "cuda_available": False, "gpus": []},
        "model": {"name": model, "path": "/models/" + model, "num_parameters": 1234567, "dtype": "float32"},
        "config": {"model": {"name": model, "path": "/models/" + model}, "audit_name": "quick",
                   "generation": {"backend": "openai", "api_key_env": "OPENAI_API_KEY", "max_new_tokens": 64},
                   "judge": {"hf_token": "hf_abcdefghijklmnop"}, "logger": {"name": "wandb", "tags": ["t"]}},
        "timings": {"model_load": 1.25, "scan/xboundary": 3.5, "scan/tellme": 2.0, "eval/xstest": 10.0},
        "scans": {
            "xboundary": {"status": "ok", "metrics": {"separation_score": max(sep.values()),
                                                      "boundary_ratio": min(ratio.values()),
                                                      "best_separation_layer": 8, "worst_ratio": "inf"},
                          "details": {"per_layer": {str(k): {"separation_score": v} for k, v in sep.items()}},
                          "figures": figs["xboundary"], "warnings": ["class boundary has 3 rows"], "config": {}},
            "tellme": {"status": "ok", "metrics": dict(tellme, hausdorff="nan"), "details": {},
                       "figures": figs["tellme"], "warnings": [], "config": {"layer": 2}},
            "spin": {"status": "ok", "metrics": {"coupled": sum(coupled.values()), "coupling_ratio": 1.5e-6,
                                                 "total_neurons": 4_000_000, "candidate_dataset1": 40,
                                                 "candidate_dataset2": 42},
                     "details": {"layers": [{"layer": k, "coupled": v, "candidate_dataset1": 7, "candidate_dataset2": 8,
                                             "total_neurons": 1000} for k, v in coupled.items()]},
                     "figures": figs["spin"], "warnings": [], "config": {}},
            "mi_peaks": {"status": "ok", "metrics": {"mean_mi": float(traj.mean()),
                                                     "thinking_tokens": [{"token": t, "count": c} for t, c in
                                                                         (("so", 5), ("wait", 3), (HOSTILE, 1))],
                                                     "mean_trajectory": traj.tolist(),
                                                     "histogram_mean_mi": 0.3, "spearman": 0.71},
                         "details": {"mean_trajectory": traj.tolist()}, "figures": figs["mi_peaks"],
                         "warnings": [], "config": {}},
            "broken_scan": {"status": "failed", "reason": "RuntimeError: boom " + HOSTILE,
                            "traceback_file": "errors/scan_broken_scan.txt"},
        },
        "evals": {
            "xstest": {"status": "ok",
                       "metrics": {"refusal_rate": _rate(rng, 250), "compliance_rate": _rate(rng, 250),
                                   "over_refusal_rate": _rate(rng, 150), "unsafe_compliance_rate": _rate(rng, 100)},
                       "unknown": {"count": 3, "n": 450, "rate": 3 / 450, "reasons": {"unparseable": 3},
                                   "reason_examples": {"unparseable": "unparseable: no verdict in 'hmm <b>'"},
                                   "judge": "refusal"},
                       "breakdowns": {"label": {"safe": {"refusal_rate": _rate(rng, 150)},
                                                "unsafe": {"refusal_rate": _rate(rng, 100)}}},
                       "generations_file": "generations/xstest.jsonl", "config": {},
                       "examples": [{"id": f"x{i}", "meta": {"label": "unsafe", "type": "privacy"},
                                     "prompt": HOSTILE + " please", "response": "Sure.\n" * 200,
                                     "verdicts": {"refusal": {"label": "full_compliance", "score": None,
                                                              "reason": "no refusal phrase"}}} for i in range(12)]},
            "strongreject": {"status": "ok",
                             "metrics": {"mean_score": {"value": 0.12 + seed / 100, "count": 60, "n": 60,
                                                        "ci_low": 0.05 + seed / 100, "ci_high": 0.19 + seed / 100},
                                         "refusal_rate": _rate(rng, 60)},
                             "unknown": {"count": 0, "n": 60, "rate": 0.0, "reasons": {}}, "examples": []},
            "harmbench": {"status": "skipped",
                          "reason": "missing data file harmbench/behaviors.csv (eval.harmbench.path)"},
        },
        "warnings": ["free text warning " + HOSTILE],
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results
