"""MI-Peaks estimator alone: DeepSight's HSICAnswer vs the reference estimator, same process.

Reference estimator (the spec's slow procedure, written here independently): per token,
build K_x and K_y from scratch (distance matrix via |x|^2 - 2 x x^T + |y|^2, abs), centre
K H, invert (Kc + eps m I) for both, R = Kc Kc_inv, MI = sum(R_x * R_y^T): two d x d
inversions per token, K_y recomputed every time. Timed in float32 (as the reference runs)
and, for the value check, in float64. DeepSight: ``HSICAnswer(y).mi(states)`` (R_y once,
low-rank Chebyshev + Woodbury, batched), float64.

Inputs (realistic activation vectors):
- d = 576: SmolLM2-135M-Instruct last-block outputs (pre-norm) at every token but the first
  of GSM8K problems (answer = the state at the last token of the first solution); they contain
  the model's massive-activation coordinates (|x| up to a few hundred). Position 0 (attention
  sink, |x| in the thousands) is left out: MI-Peaks never uses it as a reasoning state.
- d = 4096: synthetic, documented: Student-t (3 dof) coordinates scaled by 2, plus 4 fixed
  "massive activation" coordinates at +-(100..400) that vary a little per token, like the
  outlier dimensions of Llama-class hidden states; the answer vector likewise.

Usage::

    python benchmarks/mi_estimator.py [--tokens 256] [--ref-tokens 8] [--d4096-ref-tokens 2] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepsight.diagnostics.hsic import (
    HSICAnswer,  # noqa: E402
    _rank_for,  # noqa: E402
)

rank_cache_clear = _rank_for.cache_clear


def reference_mi(x: torch.Tensor, y: torch.Tensor, sigma: float = 50.0, eps: float = 1e-5) -> float:
    """One token, the reference way: both kernels from scratch, two inversions."""

    def centred_kernel(v):
        v = v.reshape(-1, 1)
        m = v.shape[0]
        r = (v * v).sum(1).view(-1, 1)
        d = (r.expand(m, m) - 2 * (v @ v.T) + r.T.expand(m, m)).abs()
        k = torch.exp(-d / (2.0 * sigma * sigma))
        h = torch.eye(m, dtype=v.dtype) - torch.ones(m, m, dtype=v.dtype) / m
        return k @ h

    m = x.numel()
    kx, ky = centred_kernel(x), centred_kernel(y)
    eye = torch.eye(m, dtype=x.dtype)
    rx = kx @ torch.inverse(kx + eps * m * eye)
    ry = ky @ torch.inverse(ky + eps * m * eye)
    return float((rx * ry.T).sum())


def smollm2_states(n_tokens: int, data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from deepsight.config.schema import ModelConfig
    from deepsight.data.mi_peaks import load_mi_peaks_items
    from deepsight.models.anatomy import inspect_model
    from deepsight.models.loading import load_model

    lm = load_model(ModelConfig(dtype="float32", device="cpu"))
    model, tok = lm.model, lm.tokenizer
    block = inspect_model(model).blocks[-1]
    cap: list[torch.Tensor] = []
    # position 0 (the attention-sink token, |x| in the thousands) is never a reasoning state: left out
    h = block.register_forward_hook(lambda m, a, o: cap.append((o[0] if isinstance(o, tuple) else o)[0, 1:].detach()))
    items = load_mi_peaks_items(data_dir / "mi_peaks" / "gsm8k" / "test.jsonl", 64)
    with torch.no_grad():
        model(torch.tensor([tok(items[0].solution)["input_ids"]]))
        y = cap.pop()[-1]
        for it in items:
            model(torch.tensor([tok(it.problem)["input_ids"]]))
            if sum(c.shape[0] for c in cap) >= n_tokens:
                break
    h.remove()
    states = torch.cat(cap)[:n_tokens]
    return states, y


def synthetic_states(n_tokens: int, d: int = 4096, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(seed)
    x = 2.0 * g.standard_t(3, size=(n_tokens + 1, d))
    dims = (np.array([17, 1023, 2048, 3999]) * d) // 4096
    base = np.array([120.0, -250.0, 400.0, -100.0])
    x[:, dims] = base * (1 + 0.05 * g.standard_normal((n_tokens + 1, 4)))
    t = torch.tensor(x)
    return t[1:], t[0]


def bench(name: str, states: torch.Tensor, y: torch.Tensor, ref_tokens: int) -> dict:
    states64, y64 = states.double(), y.double()
    rank_cache_clear()  # cold: the per-process table of interpolation ranks starts empty
    t0 = time.perf_counter()
    est = HSICAnswer(y64)
    fast = est.mi(states64)
    t_cold = (time.perf_counter() - t0) / states.shape[0]
    t0 = time.perf_counter()  # warm: the rank table filled, as after the first few hundred tokens of a run
    est = HSICAnswer(y64)
    fast = est.mi(states64)
    t_fast = (time.perf_counter() - t0) / states.shape[0]
    sel = torch.linspace(0, states.shape[0] - 1, ref_tokens).round().long()
    t0 = time.perf_counter()
    ref32 = [reference_mi(states[i].float(), y.float()) for i in sel]
    t_ref32 = (time.perf_counter() - t0) / len(sel)
    t0 = time.perf_counter()
    ref64 = [reference_mi(states64[i], y64) for i in sel]
    t_ref64 = (time.perf_counter() - t0) / len(sel)
    f = fast[sel]
    r64 = torch.tensor(ref64, dtype=torch.float64)
    r32 = torch.tensor(ref32, dtype=torch.float64)
    return {
        "case": name, "d": states.shape[1], "tokens_fast": states.shape[0], "tokens_ref": len(sel),
        "fast_ms_per_token": 1e3 * t_fast, "fast_cold_ms_per_token": 1e3 * t_cold,
        "ref_fp32_ms_per_token": 1e3 * t_ref32,
        "ref_fp64_ms_per_token": 1e3 * t_ref64,
        "speedup_vs_ref_fp32": t_ref32 / t_fast, "speedup_vs_ref_fp64": t_ref64 / t_fast,
        "max_rel_diff_vs_ref_fp64": float(((f - r64).abs() / r64.abs()).max()),
        "max_rel_diff_vs_ref_fp32": float(((f - r32).abs() / r32.abs()).max()),
        "routes": dict(est.stats), "rank_y": est.r_y,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=256, help="states per case for DeepSight")
    ap.add_argument("--ref-tokens", type=int, default=8, help="tokens the d=576 reference computes (time per token)")
    ap.add_argument("--d4096-ref-tokens", type=int, default=2, help="tokens the d=4096 reference computes")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    s, y = smollm2_states(args.tokens, args.data_dir)
    rows.append(bench("SmolLM2-135M last block", s, y, args.ref_tokens))
    s, y = synthetic_states(args.tokens)
    rows.append(bench("synthetic heavy-tailed + massive dims", s, y, args.d4096_ref_tokens))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| case | d | DeepSight ms/token (cold rank table) | reference fp32 ms/token | speed-up (fp32 ref) "
          "| speed-up (fp64 ref) | max rel diff vs fp64 ref | vs fp32 ref | routes (low-rank/direct), rank of y |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['d']} | {r['fast_ms_per_token']:.3f} ({r['fast_cold_ms_per_token']:.3f}) | "
              f"{r['ref_fp32_ms_per_token']:.1f} | "
              f"{r['speedup_vs_ref_fp32']:.0f}x | {r['speedup_vs_ref_fp64']:.0f}x | "
              f"{r['max_rel_diff_vs_ref_fp64']:.1e} | {r['max_rel_diff_vs_ref_fp32']:.1e} | "
              f"{r['routes']['low_rank']}/{r['routes']['direct']}, {r['rank_y']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
