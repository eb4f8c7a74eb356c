"""Overhead of capture + statistics over the bare forward truncated at the same block.

Same model, same length-bucketed batches (already on the device), timed alternately:

- bare:    the forward stopped after block k (``truncated_forward``'s mechanism, no other hook)
- capture: the same forward with each scan's own capture (spec + sink, the code the scan runs):
           X-Boundary (``xboundary.pooled_moments_capture``: hidden_states indices floor(L/3), floor(2L/3)
           pooled and added into float64 class moments by the fused kernel, ``ClassCentroids(spread=True)``)
           and TELLME (``tellme.last_token_capture``: last-token block output at max(0, floor(0.6666 L) - 1)
           into per-class Gram matrices, ``GramMatrix``); k = the scan's deepest block. Each scan is timed
           alone, with the Capture options the scan uses (``causal_right_padding``; TELLME's last-token MLP).

Prints the median time of each pass, the ratio capture / bare (targets, measured not asserted:
<= 1.10x on CPU with SmolLM2, <= 1.03x on H100), the full forward without early exit for scale,
and on CUDA the peak extra memory of the capture, for N and 2N samples (it must not grow with N;
only the statistics' own size, which depends on d, is extra).

    python benchmarks/capture_overhead.py                 # SmolLM2-135M-Instruct (random weights if absent)
    python benchmarks/capture_overhead.py --quick         # fewer samples and repeats (gpu_check.sh)
    python benchmarks/capture_overhead.py --random-weights --samples 256 --max-batch-tokens 16384
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from deepsight.capture import Capture, CaptureSpec, iter_batches
from deepsight.diagnostics.tellme import last_token_capture, resolve_layer
from deepsight.diagnostics.xboundary import pooled_moments_capture, resolve_layers


def load(random_weights: bool, device: torch.device, dtype: torch.dtype):
    """SmolLM2-135M-Instruct, or a random-weight model of the same shape (timings are the same)."""
    if not random_weights:
        try:
            from deepsight.config.schema import ModelConfig
            from deepsight.models.loading import load_model

            cfg = ModelConfig(device=str(device), dtype={torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype])
            return load_model(cfg).model, "SmolLM2-135M-Instruct"
        except Exception as e:  # noqa: BLE001 - any load failure falls back to random weights
            print(f"(could not load SmolLM2: {type(e).__name__}: {e}; using random weights of the same shape)")
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                      tie_word_embeddings=True, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    return model, "random-weight SmolLM2-135M shape"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(n: int, lo: int, hi: int, vocab: int, budget: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    seqs = [torch.randint(10, vocab, (t,), generator=g).tolist() for t in lengths]
    labels = torch.randint(0, 3, (n,), generator=g)
    out = []
    for b in iter_batches(seqs, max_batch_tokens=budget, pad_id=0, device=device):
        out.append((b.input_ids, b.attention_mask, labels[b.index].to(device), b.index.to(device)))
    return out, sum(lengths)


def scan_setups(num_layers: int, n: int, stat_dtype: str) -> dict:
    """Each scan's capture as the scan builds it: name -> (spec, sink, statistics, stop block, Capture options)."""
    xb_spec, xb_sink, moments, _ = pooled_moments_capture(resolve_layers("default", num_layers), n)
    tm_spec, tm_sink, store = last_token_capture(resolve_layer(None, num_layers), n, stat_dtype)

    def tm_labels(ev):  # TELLME's two classes from the benchmark's three labels
        return tm_sink(_Relabel(ev))

    xb_stop = max(xb_spec.layers) - 1  # hidden_states index i = output of block i - 1
    return {
        "X-Boundary": (xb_spec, xb_sink, moments, xb_stop, {"causal_right_padding": True}),
        "TELLME": (tm_spec, tm_labels, store, tm_spec.layers[0], {"causal_right_padding": True}),
    }


class _Relabel:
    """An event whose ``labels`` are clamped to {0, 1} (everything else passes through)."""

    def __init__(self, ev):
        self._ev = ev

    def take(self, key):
        v = self._ev.take(key)
        return v.clamp_max(1) if key == "labels" else v

    def __getattr__(self, name):
        return getattr(self._ev, name)


def run_pass(make_capture, batches, device) -> float:
    """One timed pass over all batches; the hooks are registered inside the timed region."""
    sync(device)
    t0 = time.perf_counter()
    with make_capture() as cap:
        for ids, mask, labels, index in batches:
            cap.forward(ids, mask, labels=labels, index=index)
    sync(device)
    return time.perf_counter() - t0


def peak_extra(make_bare, make_capture, batches, device) -> tuple[float, float]:
    """(bare peak, capture peak) bytes above the memory allocated before the pass (CUDA only)."""
    peaks = []
    for make in (make_bare, make_capture):
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run_pass(make, batches, device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    return peaks[0], peaks[1]


def timed_pair(make_bare, make_capture, batches, device, repeats: int) -> tuple[list[float], list[float]]:
    run_pass(make_bare, batches, device)  # warm-up (allocator, kernels' JIT)
    run_pass(make_capture, batches, device)
    bare_t, cap_t = [], []
    for _ in range(repeats):  # alternate so that drift hits both sides alike
        bare_t.append(run_pass(make_bare, batches, device))
        cap_t.append(run_pass(make_capture, batches, device))
    return bare_t, cap_t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", default=bool(os.environ.get("DEEPSIGHT_BENCH_QUICK")))
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--max-batch-tokens", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16")
    ap.add_argument("--stat-dtype", default="float32")
    ap.add_argument("--stat-backend", default="auto", help="kernel backend of the statistics: auto | triton | torch")
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--breakdown", action="store_true", help="also time hooks only / each capture alone + a profile")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    gpu = device.type == "cuda"
    dtype = {"auto": torch.bfloat16 if gpu else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16}[args.dtype]
    n = args.samples or (256 if gpu else 32) // (2 if args.quick else 1)
    repeats = args.repeats or (3 if args.quick else 7)
    budget = args.max_batch_tokens or (16384 if gpu else 1024)
    lo, hi = (64, 512) if gpu else (16, 128)

    model, name = load(args.random_weights, device, dtype)
    from deepsight.models.anatomy import inspect_model

    anatomy = inspect_model(model)
    num_layers = anatomy.num_layers
    setups = scan_setups(num_layers, n, args.stat_dtype)
    batches, tokens = make_batches(n, lo, hi, model.config.vocab_size, budget, device)
    dev_name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"model: {name}, {num_layers} blocks, d={anatomy.hidden_size}, dtype={dtype}; device: {dev_name}")
    print(f"{n} samples, {tokens} tokens, {len(batches)} length-bucketed batches (budget {budget} tokens)")
    if args.stat_backend != "auto":
        from deepsight.kernels import dispatch

        dispatch.set_default_backend(args.stat_backend)
    target = 1.03 if gpu else 1.10
    for scan, (spec, sink, _stats, stop, options) in setups.items():
        def bare_capture(stop=stop, options=options):
            return Capture(model, [], stop_after=stop, anatomy=anatomy, **options)

        def scan_capture(spec=spec, sink=sink, options=options):
            return Capture(model, [spec], sink, anatomy=anatomy, **options)

        bare_t, cap_t = timed_pair(bare_capture, scan_capture, batches, device, repeats)
        bare, capt = statistics.median(bare_t), statistics.median(cap_t)
        print(f"== {scan}: capture {spec.site} {list(spec.layers)} reduce={spec.reduce}, both passes stop after "
              f"block {stop}")
        if args.breakdown:
            def hooks_only(spec=spec, stop=stop, options=options):
                return Capture(model, [CaptureSpec(spec.site, spec.layers, "none")], lambda ev: None,
                               anatomy=anatomy, stop_after=stop, last_token_mlp=False, **options)

            b_t, h_t = timed_pair(bare_capture, hooks_only, batches, device, repeats)
            print(f"  hooks, no-op sink    : ratio {statistics.median(h_t) / statistics.median(b_t):.3f}x")
        print(f"  bare truncated forward : {bare * 1e3:9.1f} ms  ({tokens / bare:,.0f} tokens/s)")
        print(f"  capture + statistics   : {capt * 1e3:9.1f} ms")
        print(f"  RATIO capture/bare = {capt / bare:.3f}x  (target <= {target:.2f}x; "
              f"min-based {min(cap_t) / min(bare_t):.3f}x)")
        if gpu:
            half = batches[: max(1, len(batches) // 2)]
            for label, bs in (("N/2 samples", half), ("N samples", batches)):
                b_peak, c_peak = peak_extra(bare_capture, scan_capture, bs, device)
                print(f"  peak memory above model, {label}: bare {b_peak / 2**20:.1f} MiB, capture "
                      f"{c_peak / 2**20:.1f} MiB, extra {(c_peak - b_peak) / 2**20:.2f} MiB")
    if not args.quick:
        full_t = run_pass(lambda: Capture(model, [], early_exit=False, anatomy=anatomy), batches, device)
        print(f"full forward (no exit) : {full_t * 1e3:9.1f} ms")
    moments = setups["X-Boundary"][2]
    assert moments and all(float(c.class_counts.sum()) > 0 for c in moments.values())
    if args.breakdown:
        import cProfile
        import pstats

        spec, sink, _, _, options = setups["X-Boundary"]
        prof = cProfile.Profile()
        prof.enable()
        run_pass(lambda: Capture(model, [spec], sink, anatomy=anatomy, **options), batches, device)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
