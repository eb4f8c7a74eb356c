"""Overhead of the MoE expert scan's capture + statistics over the bare forward, and the routing kernel.

Same random-weight MoE (Qwen3-MoE layout; default 8 blocks, hidden 512, 64 experts top-8), same
length-bucketed batches at the audit's token budget for the device (``hardware=cpu``: 1024 tokens),
timed alternately (median of ``--repeats``):

- bare:    the forward stopped after the last MoE block (``truncated_forward``'s mechanism, no other hook)
- scan:    the same forward with the ``experts`` scan's capture (``expert_output`` on every MoE block:
           per-pair expert outputs, the eager-order recombination) and its sink (``ExpertRouting``
           selections / gate / entropy per part x class x expert, and per-class expert-output sums)

Prints both medians and the ratio scan / bare, also of each side's fastest run and of the process's CPU
seconds (both robust to other jobs on a shared machine) (target, measured not asserted: <= 1.15x on CPU).
``--kernel`` times ``expert_routing_`` (Triton where CUDA is present, and torch) on N tokens x top-K.

    python benchmarks/experts_overhead.py                  # CPU defaults
    python benchmarks/experts_overhead.py --quick          # gpu_check.sh
    python benchmarks/experts_overhead.py --kernel --quick # kernel timings only
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from deepsight.capture import Capture, CaptureSpec, iter_batches


def build_model(args, device: torch.device, dtype: torch.dtype):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    cfg = Qwen3MoeConfig(vocab_size=4096, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                         moe_intermediate_size=args.hidden // 2, num_hidden_layers=args.layers, num_attention_heads=8,
                         num_key_value_heads=4, head_dim=args.hidden // 8, num_experts=args.experts,
                         num_experts_per_tok=args.top_k, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                         max_position_embeddings=4096, attn_implementation="sdpa")
    if args.experts_impl:
        cfg._experts_implementation = args.experts_impl
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    return model


def audit_batch_tokens(device: torch.device) -> int:
    """The forward token budget an audit uses on this device: ``hardware=cpu`` (the default) on a CPU,
    ``hardware=single_gpu`` on a GPU (conf/hardware/*.yaml), so the benchmark times the batches users run."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    name = "cpu" if device.type == "cpu" else "single_gpu"
    node = OmegaConf.load(str(files("deepsight.conf") / "hardware" / f"{name}.yaml"))
    return int(OmegaConf.select(node, "max_batch_tokens") or OmegaConf.select(node, "hardware.max_batch_tokens"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def overhead(args, device: torch.device, dtype: torch.dtype) -> None:
    from deepsight.diagnostics.experts import expert_sink
    from deepsight.models.anatomy import inspect_model

    model = build_model(args, device, dtype)
    anatomy = inspect_model(model)
    layers = anatomy.moe_layer_indices
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(args.min_len, args.max_len + 1, (args.samples,), generator=g).tolist()
    seqs = [torch.randint(4, 4096, (n,), generator=g).tolist() for n in lengths]
    batches = []
    for b in iter_batches(seqs, max_batch_tokens=args.max_batch_tokens, pad_id=0, side="right", device=device):
        t = b.input_ids.shape[1]
        n_prompt = torch.tensor([lengths[i] // 2 for i in b.index.tolist()])
        meta = {"cls": torch.as_tensor(b.index) % 6, "labels": torch.as_tensor(b.index) % 3,
                "part": (torch.arange(t)[None, :] >= n_prompt[:, None]).long()}
        batches.append((b.input_ids, b.attention_mask, meta))
    stop = max(layers)

    def bare() -> tuple[float, float]:
        with Capture(model, [], anatomy=anatomy, stop_after=stop) as cap:
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for ids, mask, _ in batches:
                cap.forward(ids, mask)
            sync(device)
            return time.perf_counter() - t0, time.process_time() - c0

    def scan() -> tuple[float, float]:
        sink, _, _ = expert_sink(anatomy, 3, args.stat_dtype)
        site = "expert_routing" if args.routing_only else "expert_output"
        with Capture(model, [CaptureSpec(site, layers, reduce="none")], sink, anatomy=anatomy,
                     stop_after=stop) as cap:
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for ids, mask, meta in batches:
                cap.forward(ids, mask, **meta)
            sync(device)
            return time.perf_counter() - t0, time.process_time() - c0

    bare(), scan()  # warm-up (kernel compilation, allocator)
    runs_b, runs_s = [], []
    for _ in range(args.repeats):
        runs_b.append(bare())
        runs_s.append(scan())
    tb, ts = [r[0] for r in runs_b], [r[0] for r in runs_s]
    cb, cs = [r[1] for r in runs_b], [r[1] for r in runs_s]
    mb, ms = statistics.median(tb), statistics.median(ts)
    tokens = sum(lengths)
    impl = getattr(model.config, "_experts_implementation", "?")
    print(f"model: Qwen3-MoE layout, {args.layers} blocks, hidden {args.hidden}, {args.experts} experts "
          f"top-{args.top_k}, {dtype}, experts implementation {impl}, device {device}, "
          f"threads {torch.get_num_threads()}")
    print(f"data: {args.samples} rows, {tokens} tokens, {len(batches)} batches of <= {args.max_batch_tokens} tokens; "
          f"{args.repeats} alternating repeats")
    print(f"bare forward (stop after block {stop}): median {mb:.3f} s  (all: {', '.join(f'{t:.3f}' for t in tb)})")
    print(f"experts scan capture + statistics:     median {ms:.3f} s  (all: {', '.join(f'{t:.3f}' for t in ts)})")
    print(f"scan site: {'expert_routing (no expert outputs)' if args.routing_only else 'expert_output'}")
    print(f"ratio scan / bare: {ms / mb:.3f}x of the medians, {min(ts) / min(tb):.3f}x of the fastest runs "
          "(target <= 1.15x on CPU)")
    print(f"process CPU seconds: bare median {statistics.median(cb):.3f}, scan median {statistics.median(cs):.3f}: "
          f"{statistics.median(cs) / statistics.median(cb):.3f}x ({min(cs) / min(cb):.3f}x of the least)")


def kernel(args, device: torch.device) -> None:
    from deepsight.kernels.dispatch import expert_routing_
    from deepsight.kernels.utils import HAS_TRITON

    n, e, k, c = (8192 if args.quick else 65536), 128, 8, 6
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, e, generator=g).to(device=device, dtype=torch.bfloat16 if device.type == "cuda" else
                                                torch.float32)
    top = torch.topk(logits.float(), k, dim=-1)
    idx, w = top.indices, torch.softmax(top.values, -1)
    cls = torch.randint(0, c, (n,), generator=g).to(device)
    acc = torch.zeros(3, c, e + 1, device=device)
    backends = ["torch"] + (["triton"] if device.type == "cuda" and HAS_TRITON else [])
    for be in backends:
        expert_routing_(idx, w, logits, cls, acc, backend=be)
        if device.type == "cuda":
            import triton.testing

            ms = triton.testing.do_bench(lambda be=be: expert_routing_(idx, w, logits, cls, acc, backend=be))
        else:
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                expert_routing_(idx, w, logits, cls, acc, backend=be)
                ts.append(time.perf_counter() - t0)
            ms = 1e3 * statistics.median(ts)
        gb = (logits.numel() * logits.element_size() + idx.numel() * 8 + w.numel() * 4 + n * 8) / 1e9
        print(f"expert_routing_ {be:6s} N={n} E={e} K={k} C={c}: {ms:.3f} ms  ({gb / (ms / 1e3):.1f} GB/s of inputs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", default=bool(os.environ.get("DEEPSIGHT_BENCH_QUICK")))
    ap.add_argument("--kernel", action="store_true", help="time the routing kernel only")
    ap.add_argument("--routing-only", action="store_true", help="no expert outputs (scan.experts.expert_outputs=false)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--experts-impl", default=None, help="transformers experts implementation (default: the model's)")
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--min-len", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-batch-tokens", type=int, default=None,
                    help="token budget of a batch (default: the audit's, conf/hardware/cpu.yaml or single_gpu.yaml)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--stat-dtype", default="float32")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16}[args.dtype]
    args.max_batch_tokens = args.max_batch_tokens or audit_batch_tokens(device)
    args.samples = args.samples or (16 if args.quick else 48)
    args.repeats = args.repeats or (3 if args.quick else 5)
    if args.kernel:
        kernel(args, device)
        return
    overhead(args, device, dtype)


if __name__ == "__main__":
    main()
