"""Overhead of capture + statistics over the bare forward truncated at the same block.

Same model, same length-bucketed batches (already on the device), timed alternately:

- bare:    the forward stopped after block k (``truncated_forward``'s mechanism, no other hook)
- capture: the same forward with the X-Boundary and TELLME captures feeding their statistics:
           block outputs at hidden_states indices floor(L/3), floor(2L/3) pooled (masked mean) into
           per-class sums in the fused kernel (``ClassCentroids``), and the last-token block output
           at max(0, floor(0.6666 L) - 1) into per-class Gram matrices (``GramMatrix``); k = deepest.

The capture runs whole blocks (``last_token_mlp=False``): the overhead is measured on the same work.
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
from deepsight.stats import ClassCentroids, GramMatrix


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
        out.append((b.input_ids, b.attention_mask, labels[b.index].to(device)))
    return out, sum(lengths)


def scan_setup(model, num_layers: int, stat_dtype: str, backend: str = "auto"):
    xb = sorted({max(0, num_layers // 3 - 1), max(0, 2 * num_layers // 3 - 1)})  # hidden_states idx i = block i-1
    tellme = max(0, int(0.6666 * num_layers) - 1)
    cents: dict[int, ClassCentroids] = {}
    grams: dict[int, GramMatrix] = {}

    def sink_xb(ev):
        if ev.layer not in cents:
            cents[ev.layer] = ClassCentroids(3, ev.hidden.shape[-1], dtype=stat_dtype, device=ev.device,
                                            backend=backend)
        cents[ev.layer].update(ev.hidden, ev.take("labels"), mask=ev.mask, pooling="mean")

    def sink_tellme(ev):
        if ev.layer not in grams:
            grams[ev.layer] = GramMatrix(ev.value.shape[-1], num_classes=2, dtype=stat_dtype, device=ev.device,
                                        backend=backend)
        grams[ev.layer].update(ev.value, ev.take("labels").clamp_max(1))

    specs = [CaptureSpec("block_output", xb, "none", name="xboundary"),
             CaptureSpec("block_output", [tellme], "last", name="tellme")]
    return specs, {"xboundary": sink_xb, "tellme": sink_tellme}, cents, grams, max(xb + [tellme])


def run_pass(make_capture, batches, device) -> float:
    """One timed pass over all batches; the hooks are registered inside the timed region."""
    sync(device)
    t0 = time.perf_counter()
    with make_capture() as cap:
        for ids, mask, labels in batches:
            cap.forward(ids, mask, labels=labels)
    sync(device)
    return time.perf_counter() - t0


def peak_extra(model, batches, specs, sinks, stop, device) -> tuple[float, float]:
    """(bare peak, capture peak) bytes above the memory allocated before the pass (CUDA only)."""
    peaks = []
    for make in (lambda: Capture(model, [], stop_after=stop),
                 lambda: Capture(model, specs, sinks, last_token_mlp=False)):
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run_pass(make, batches, device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    return peaks[0], peaks[1]


def breakdown(model, anatomy, specs, sinks, stop, batches, device, repeats: int) -> None:
    """Median ratio over the bare pass of: hooks with no-op sinks, each capture alone; then a CPU profile."""
    import cProfile
    import pstats

    variants = {
        "hooks, no-op sinks": ([CaptureSpec(s.site, s.layers, "none", name=s.name) for s in specs],
                               {s.name: (lambda ev: None) for s in specs}),
        "X-Boundary capture only": ([specs[0]], {specs[0].name: sinks[specs[0].name]}),
        "TELLME capture only": ([specs[1]], {specs[1].name: sinks[specs[1].name]}),
    }
    def bare_capture():
        return Capture(model, [], stop_after=stop, anatomy=anatomy)

    for label, (sp, sk) in variants.items():
        def make(sp=sp, sk=sk):
            return Capture(model, sp, sk, anatomy=anatomy, stop_after=stop, last_token_mlp=False)

        run_pass(make, batches, device)
        b_t, v_t = [], []
        for _ in range(repeats):  # interleaved with its own bare passes
            b_t.append(run_pass(bare_capture, batches, device))
            v_t.append(run_pass(make, batches, device))
        b, t = statistics.median(b_t), statistics.median(v_t)
        print(f"  {label:26s}: {t * 1e3:9.1f} ms vs bare {b * 1e3:9.1f} ms  ratio {t / b:.3f}x")
    prof = cProfile.Profile()
    prof.enable()
    run_pass(lambda: Capture(model, specs, sinks, anatomy=anatomy, last_token_mlp=False), batches, device)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


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
    specs, sinks, cents, grams, stop = scan_setup(model, num_layers, args.stat_dtype, args.stat_backend)
    batches, tokens = make_batches(n, lo, hi, model.config.vocab_size, budget, device)
    dev_name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"model: {name}, {num_layers} blocks, d={anatomy.hidden_size}, dtype={dtype}; device: {dev_name}")
    print(f"{n} samples, {tokens} tokens, {len(batches)} length-bucketed batches (budget {budget} tokens); "
          f"captures: block outputs {specs[0].layers} (mean -> class sums), {specs[1].layers} (last -> class Gram); "
          f"both passes stop after block {stop}")

    def bare_capture():
        return Capture(model, [], stop_after=stop, anatomy=anatomy)

    def scan_capture():
        return Capture(model, specs, sinks, anatomy=anatomy, last_token_mlp=False)

    run_pass(bare_capture, batches, device)  # warm-up (allocator, kernels' JIT)
    run_pass(scan_capture, batches, device)
    bare_t, cap_t = [], []
    for _ in range(repeats):  # alternate so that drift hits both sides alike
        bare_t.append(run_pass(bare_capture, batches, device))
        cap_t.append(run_pass(scan_capture, batches, device))
    full_t = float("nan")
    if not args.quick:
        full_t = run_pass(lambda: Capture(model, [], early_exit=False, anatomy=anatomy), batches, device)
    bare, capt = statistics.median(bare_t), statistics.median(cap_t)
    if args.breakdown:
        breakdown(model, anatomy, specs, sinks, stop, batches, device, repeats)
    print(f"bare truncated forward : {bare * 1e3:9.1f} ms  ({tokens / bare:,.0f} tokens/s)")
    print(f"capture + statistics   : {capt * 1e3:9.1f} ms")
    print(f"full forward (no exit) : {full_t * 1e3:9.1f} ms")
    target = 1.03 if gpu else 1.10
    print(f"RATIO capture/bare = {capt / bare:.3f}x  (target <= {target:.2f}x; "
          f"min-based {min(cap_t) / min(bare_t):.3f}x)")
    stat_bytes = sum(t.numel() * t.element_size() for s in [*cents.values(), *grams.values()]
                     for t in s._tensors().values())
    print(f"statistics size: {stat_bytes / 2**20:.2f} MiB (grows with d and classes, not with samples)")
    assert all(float(c.class_counts.sum()) > 0 for c in cents.values())
    if gpu:
        half = batches[: max(1, len(batches) // 2)]
        for label, bs in (("N/2 samples", half), ("N samples", batches)):
            b_peak, c_peak = peak_extra(model, bs, specs, sinks, stop, device)
            print(f"peak memory above model, {label}: bare {b_peak / 2**20:.1f} MiB, capture {c_peak / 2**20:.1f} MiB, "
                  f"extra {(c_peak - b_peak) / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
