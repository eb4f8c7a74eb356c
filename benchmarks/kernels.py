"""Benchmark the statistics kernels: Triton vs the torch path, against the copy roofline.

For each op (pooling + class sums, Gram, joint histogram, per-sample |grad| sum, fused
importance top-k) one setup is timed with providers ``triton`` and ``torch`` (plus the
histogram's per-pair-atomics variant ``triton-atomics`` and, with cupy installed, its CUDA kernel with
shared-memory atomics ``cuda-smem``, the one the dispatch then runs; target >= 0.6 of copy) (median of
repeats: ``triton.testing.do_bench`` on GPU with L2 flushed between runs,
``time.perf_counter`` on CPU, where only the torch path is timed). Each row gives the
bytes the op must move at least (inputs read once, accumulators read and written), the
achieved GB/s, its fraction of the device-to-device copy bandwidth measured in the same
process, TFLOP/s for the matrix-product ops (Gram counted as the dense-equivalent
2 N D^2 flops although only the upper tiles are computed), the speed-up over torch, and
the largest relative difference between the two providers' results. Rows are appended
to benchmarks/kernels.csv with device name, git commit and date; a table is printed.

Target (ARCHITECTURE / issue): memory-bound Triton kernels (pool, histogram, top-k) at
>= 80% of the measured copy bandwidth on H100/H200.

    python benchmarks/kernels.py            # full sizes on GPU, small sizes on CPU
    python benchmarks/kernels.py --quick    # shorter timing (gpu_check.sh)
    python benchmarks/kernels.py --ops pool,topk
    python benchmarks/kernels.py --sweep    # GPU: also time each kernel's CUDA_LAUNCH alternatives
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _import_kernels():
    """``deepsight.kernels``: installed, or loaded from ./kernels when the package is not installed."""
    try:
        import deepsight.kernels.dispatch  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT))
        import deepsight

        spec = importlib.util.spec_from_file_location(
            "deepsight.kernels", ROOT / "kernels" / "__init__.py", submodule_search_locations=[str(ROOT / "kernels")]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["deepsight.kernels"] = module
        deepsight.kernels = module
        spec.loader.exec_module(module)
    from deepsight.kernels import dispatch

    return dispatch


@dataclass
class Case:
    """One op setup: a function per provider, bytes/flops it must do, and a result to compare."""

    op: str
    shape: str
    dtype: str
    bytes: int
    flops: int
    run: Callable[[str], None]  # run(backend): one call of the op
    result: Callable[[str], torch.Tensor]  # result(backend): fresh accumulators, one call, the output
    variants: dict[str, Callable[[], None]] = field(default_factory=dict)  # extra Triton variants (GPU only)


def _timer(device: torch.device, quick: bool) -> Callable[[Callable[[], None]], float]:
    """Median milliseconds of a callable."""
    if device.type == "cuda":
        from triton.testing import do_bench

        def bench(fn):
            return float(do_bench(fn, warmup=10 if quick else 25, rep=40 if quick else 100, return_mode="median"))

        return bench

    def bench_cpu(fn):
        fn()  # warm-up
        times = []
        for _ in range(3 if quick else 7):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return bench_cpu


def kernel_ms(fn: Callable[[], None], reps: int = 10) -> tuple[float, dict[str, float]]:
    """GPU time of the kernels one call of ``fn`` launches (torch profiler; no launch gaps, no host work):
    (total ms, ms per kernel name), or (NaN, {}) where the profiler gives nothing."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    try:
        fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(reps):
                fn()
            torch.cuda.synchronize()
        per_name: dict[str, float] = {}
        events = prof.events()
        device = [e for e in events if e.device_type == DeviceType.CUDA]
        if device:
            for e in device:
                per_name[e.name] = per_name.get(e.name, 0.0) + e.time_range.elapsed_us()
        else:
            for k in (k for e in events for k in getattr(e, "kernels", [])):
                per_name[k.name] = per_name.get(k.name, 0.0) + k.duration
        per_name = {name: us / reps / 1e3 for name, us in per_name.items()}
        total = sum(per_name.values())
        return (total if total > 0 else float("nan")), per_name
    except Exception as exc:  # the profiler is a diagnostic: never fail the benchmark on it
        print(f"(kernel timing unavailable: {exc!r:.200})")
        return float("nan"), {}


def copy_bandwidth(device: torch.device, bench) -> float:
    """Device-to-device copy GB/s (bytes read + written) of a large buffer."""
    n = (1 << 30) if device.type == "cuda" else (1 << 27)  # bytes
    src = torch.empty(n, dtype=torch.uint8, device=device).random_(0, 255)
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src))
    return 2 * n / (ms * 1e-3) / 1e9


def make_cases(dispatch, device: torch.device, gpu: bool) -> list[Case]:
    gen = torch.Generator(device=device).manual_seed(0)
    bf16 = torch.bfloat16
    cases = []

    # Pooling + per-class sums: one block output, all tokens valid, 2 classes.
    B, T, D = (32, 1024, 4096) if gpu else (8, 128, 576)
    hidden = torch.randn(B, T, D, device=device, dtype=bf16, generator=gen)
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    labels = torch.arange(B, device=device) % 2
    sums, counts = torch.zeros(2, D, device=device), torch.zeros(2, device=device)

    def pool_result(backend, hidden=hidden, mask=mask, labels=labels, D=D):
        s, c = torch.zeros(2, D, device=device), torch.zeros(2, device=device)
        dispatch.pooled_class_sum_(hidden, mask, labels, s, c, "mean", backend=backend)
        return s

    cases.append(
        Case(
            "pool_mean",
            f"B={B} T={T} D={D}",
            "bf16",
            hidden.numel() * 2 + mask.numel(),
            0,
            lambda b: dispatch.pooled_class_sum_(hidden, mask, labels, sums, counts, "mean", backend=b),
            pool_result,
        )
    )

    # Gram + 2 class Grams.
    N, Dg = (8192, 2048) if gpu else (512, 256)
    x = torch.randn(N, Dg, device=device, dtype=bf16, generator=gen)
    glabels = torch.arange(N, device=device) % 2
    gram, cgram = torch.zeros(Dg, Dg, device=device), torch.zeros(2, Dg, Dg, device=device)

    def gram_result(backend, x=x, glabels=glabels, Dg=Dg):
        g, cg = torch.zeros(Dg, Dg, device=device), torch.zeros(2, Dg, Dg, device=device)
        dispatch.gram_update_(x, g, glabels, cg, backend=backend)
        return torch.cat([g[None], cg])

    cases.append(
        Case(
            "gram+2class",
            f"N={N} D={Dg}",
            "bf16",
            x.numel() * 2 + 3 * Dg * Dg * 4 * 2,
            2 * (2 * N * Dg * Dg),
            lambda b: dispatch.gram_update_(x, gram, glabels, cgram, backend=b),
            gram_result,
        )
    )

    # Joint histogram: S states of dimension D against one answer vector, 32 x 32 bins.
    S, Dh, bins = (4096, 8192, 32) if gpu else (64, 576, 32)
    xs = torch.randn(S, Dh, device=device, generator=gen)
    y = torch.randn(Dh, device=device, generator=gen)
    hcounts = torch.zeros(S, bins, bins, device=device)
    hist_module = sys.modules["deepsight.kernels.histogram"]

    def hist_atomics(xs=xs, y=y, hcounts=hcounts):  # the per-pair-atomics variant (no tl.histogram)
        saved = hist_module._local_hist_ok[0]
        hist_module._local_hist_ok[0] = False
        try:
            dispatch.joint_histogram_(xs, y, hcounts, -3.0, 3.0, -3.0, 3.0, backend="triton")
        finally:
            hist_module._local_hist_ok[0] = saved

    hist_cuda = sys.modules["deepsight.kernels.histogram_cuda"]

    def hist_op(backend, xs=xs, y=y, c=None):  # "triton" = the Triton kernel even where the dispatch takes CuPy
        c = hcounts if c is None else c
        if backend == "triton":
            hist_module.joint_histogram_triton(xs, y, c, -3.0, 3.0, -3.0, 3.0)
        else:
            dispatch.joint_histogram_(xs, y, c, -3.0, 3.0, -3.0, 3.0, backend=backend)

    def hist_result(backend, S=S):
        c = torch.zeros(S, bins, bins, device=device)
        hist_op(backend, c=c)
        return c

    hist_variants = {"triton-atomics": hist_atomics}
    if gpu and hist_cuda.available():
        hist_variants["cuda-smem"] = lambda xs=xs, y=y: hist_cuda.joint_histogram_cuda(xs, y, hcounts, -3.0, 3.0,
                                                                                        -3.0, 3.0)
        check = torch.zeros(S, bins, bins, device=device)
        hist_cuda.joint_histogram_cuda(xs, y, check, -3.0, 3.0, -3.0, 3.0)
        assert torch.equal(check, hist_result("torch")), "cuda-smem histogram differs from the torch reference"

    cases.append(
        Case(
            "joint_hist",
            f"S={S} D={Dh} bins={bins}",
            "fp32",
            xs.numel() * 4 + y.numel() * 4 + hcounts.numel() * 4 * 2,
            0,
            hist_op,
            hist_result,
            hist_variants,
        )
    )

    # Per-sample |grad| sum of one linear layer.
    Sg, Tg, O, I = (16, 512, 2048, 2048) if gpu else (4, 32, 128, 128)
    delta = torch.randn(Sg, Tg, O, device=device, dtype=bf16, generator=gen)
    xin = torch.randn(Sg, Tg, I, device=device, dtype=bf16, generator=gen)
    gacc = torch.zeros(O, I, device=device)

    def grad_result(backend, delta=delta, xin=xin, O=O, I=I):
        a = torch.zeros(O, I, device=device)
        dispatch.grad_abs_sum_(delta, xin, a, None, backend=backend)
        return a

    cases.append(
        Case(
            "grad_abs_sum",
            f"S={Sg} T={Tg} O={O} I={I}",
            "bf16",
            (delta.numel() + xin.numel()) * 2 + gacc.numel() * 4 * 2,
            2 * Sg * Tg * O * I,
            lambda b: dispatch.grad_abs_sum_(delta, xin, gacc, None, backend=b),
            grad_result,
        )
    )

    # Fused |W| * G_W top-k, q = 1e-5.
    Ow, Iw = (4096, 14336) if gpu else (576, 1536)
    w = torch.randn(Ow, Iw, device=device, dtype=bf16, generator=gen)
    gw = torch.rand(Ow, Iw, device=device, generator=gen)
    k = max(1, int(1e-5 * w.numel()))

    def topk_result(backend, w=w, gw=gw, k=k):
        values, _ = dispatch.importance_topk(w, gw, k, backend=backend)
        return values.float()

    cases.append(
        Case(
            "importance_topk",
            f"{Ow}x{Iw} k={k}",
            "bf16 W, fp32 G",
            w.numel() * 2 + gw.numel() * 4,
            0,
            lambda b: dispatch.importance_topk(w, gw, k, backend=b),
            topk_result,
        )
    )
    return cases


# --sweep: CUDA launch parameters tried per op (overrides of the kernel module's CUDA_LAUNCH, one at a time).
SWEEPS: dict[str, tuple[str, list[dict]]] = {
    "pool_mean": (
        "pool",
        [dict(block_t=t, programs_per_sm=p) for t in (32, 64) for p in (2, 4, 8) if (t, p) != (64, 4)],
    ),
    "gram+2class": (
        "gram",
        [dict(num_stages=4), dict(block_m_large=128), dict(programs_per_sm=2), dict(programs_per_sm=8)],
    ),
    "grad_abs_sum": ("grad_abs", [dict(programs_per_sm=2), dict(num_stages=4), dict(block_t=32)]),
    "importance_topk": (
        "topk",
        [dict(block=b, num_warps=w) for b in (2048, 4096, 8192, 16384) for w in (4, 8) if (b, w) != (4096, 4)],
    ),
}


def sweep(cases: list[Case], bench, copy_gbs: float) -> None:
    """Time the Triton path of each case under each launch alternative in SWEEPS; print a table per op,
    ranked by GPU kernel time (the wall time of these sub-millisecond ops varies with the host)."""
    for case in cases:
        if case.op not in SWEEPS:
            continue
        module_name, overrides = SWEEPS[case.op]
        launch = sys.modules[f"deepsight.kernels.{module_name}"].CUDA_LAUNCH
        default = dict(launch)
        ref = case.result("torch").double()
        results = []
        for override in [{}] + overrides:
            launch.update(override)
            label = ", ".join(f"{k}={v}" for k, v in override.items()) or "default " + str(default)
            try:
                ms = bench(lambda case=case: case.run("triton"))
                k_ms = kernel_ms(lambda case=case: case.run("triton"))[0]
                got = case.result("triton").double()
                err = float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
                results.append((k_ms if k_ms == k_ms else ms, ms, label, err))
            except Exception as exc:  # a configuration that does not compile or run: report, go on
                print(f"sweep {case.op} [{label}] FAILED: {exc!r:.200}")
            finally:
                launch.clear()
                launch.update(default)
        if not results:
            continue
        base = results[0][0] if results[0][2].startswith("default") else float("nan")
        print(f"sweep {case.op} ({case.shape}, {case.dtype}): by GPU kernel time, fastest first (and wall ms)")
        for k_ms, ms, label, err in sorted(results):
            gbs = case.bytes / (k_ms * 1e-3) / 1e9
            tflops = f"  {case.flops / (k_ms * 1e-3) / 1e12:7.1f} TFLOP/s" if case.flops else ""
            print(
                f"  {k_ms:9.4f} ms ({ms:7.4f} wall)  {gbs:8.1f} GB/s  {gbs / copy_gbs:6.3f} of copy{tflops}  "
                f"x{base / k_ms:5.2f} vs default  rel diff {err:.1e}  {label}"
            )


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append rows to a CSV, rewriting it with the union of the columns when the new rows bring more."""
    fields = list(rows[0])
    old: list[dict] = []
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            old_fields = list(reader.fieldnames or [])
            if set(fields) <= set(old_fields):
                fields = old_fields
            else:
                old = list(reader)
                fields = old_fields + [c for c in fields if c not in old_fields]
    if old or not path.exists():
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(old)
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=fields, restval="").writerows(rows)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timing repeats")
    parser.add_argument("--ops", default="", help="comma-separated subset of op names (prefix match)")
    parser.add_argument("--sweep", action="store_true", help="GPU: also time the kernels' launch alternatives")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "kernels.csv"), help="CSV to append rows to")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    dispatch = _import_kernels()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    name = torch.cuda.get_device_name(device) if gpu else f"cpu ({torch.get_num_threads()} threads)"
    bench = _timer(device, args.quick)
    copy_gbs = copy_bandwidth(device, bench)
    providers = ["triton", "torch"] if gpu else ["torch"]
    print(f"device: {name}   D2D copy: {copy_gbs:.0f} GB/s (read + write)   providers: {', '.join(providers)}")

    wanted = [o for o in args.ops.split(",") if o]
    cases = [c for c in make_cases(dispatch, device, gpu) if not wanted or any(c.op.startswith(o) for o in wanted)]
    rows, failures, breakdowns = [], 0, []
    for case in cases:
        times: dict[str, float] = {}
        err = float("nan")
        runs = {p: (lambda case=case, p=p: case.run(p)) for p in providers}
        if gpu:
            runs |= case.variants
        for provider, fn in runs.items():
            try:
                times[provider] = bench(fn)
            except Exception as exc:  # report and carry on with the other ops
                failures += 1
                print(f"{case.op} [{provider}] FAILED: {exc!r:.300}")
        if "triton" in times and "torch" in times:
            a, b = case.result("triton").double(), case.result("torch").double()
            err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
        kernel_times = {p: kernel_ms(runs[p]) for p in times} if gpu else {}
        if "triton" in kernel_times:
            breakdowns.append((case, kernel_times["triton"][1]))
        for provider, ms in times.items():
            gbs = case.bytes / (ms * 1e-3) / 1e9
            k_ms = kernel_times.get(provider, (float("nan"), {}))[0]
            rows.append(
                {
                    "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "commit": _git_commit(),
                    "device": name,
                    "op": case.op,
                    "provider": provider,
                    "shape": case.shape,
                    "dtype": case.dtype,
                    "ms": round(ms, 4),
                    "bytes": case.bytes,
                    "GB_s": round(gbs, 1),
                    "frac_copy_bw": round(gbs / copy_gbs, 3),
                    "TFLOP_s": round(case.flops / (ms * 1e-3) / 1e12, 2) if case.flops else "",
                    "speedup_vs_torch": round(times["torch"] / ms, 2) if "torch" in times else "",
                    "max_rel_diff_vs_torch": f"{err:.1e}" if provider == "triton" else "",
                    "copy_GB_s": round(copy_gbs, 1),
                    "kernel_ms": round(k_ms, 4) if gpu else "",
                    "kernel_frac_copy_bw": round(case.bytes / (k_ms * 1e-3) / 1e9 / copy_gbs, 3) if gpu else "",
                }
            )

    if rows:
        path = Path(args.csv)
        append_rows(path, rows)
        cols = ["op", "provider", "shape", "ms", "GB_s", "frac_copy_bw", "TFLOP_s", "speedup_vs_torch"]
        cols += ["max_rel_diff_vs_torch"] + (["kernel_ms", "kernel_frac_copy_bw"] if gpu else [])
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
        print("  ".join(c.ljust(widths[c]) for c in cols))
        for r in rows:
            print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
        print(f"appended {len(rows)} rows to {path}")
    for case, per_name in breakdowns:  # where the Triton path's GPU time goes, kernel by kernel
        print(f"kernels of {case.op} [triton], GPU time per call (GB/s: the op's bytes over that kernel's time):")
        for name, ms in sorted(per_name.items(), key=lambda kv: -kv[1])[:6]:
            gbs = case.bytes / (ms * 1e-3) / 1e9
            print(f"  {ms * 1e3:9.1f} us  {gbs:8.1f} GB/s  {gbs / copy_gbs:6.3f} of copy  {name[:90]}")
    if args.sweep and gpu:
        sweep(cases, bench, copy_gbs)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
