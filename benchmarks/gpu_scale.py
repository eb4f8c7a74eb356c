"""The engine at real model size: Qwen3-30B-A3B's dimensions, random bf16 weights built on the GPU.

Builds the first ``--layers`` of Qwen3-30B-A3B's 48 blocks (dimensions read from
conf/model/qwen3_30b_a3b.yaml: d = 2048, 128 experts of width 768, 8 active, 32/4 heads) directly on
the GPU in bf16, makes synthetic batches of realistic lengths (128..1024 tokens, length-bucketed at
``--max-batch-tokens``) and times, each the median of ``--repeats`` alternating passes:

- bare:      the forward truncated after the deepest block the captures need (``truncated_forward``)
- capture:   the same forward with X-Boundary's captures (masked-mean pooled hidden states at indices
             floor(L/3), floor(2L/3) into per-class centroids) and TELLME's (last-token block output at
             max(0, floor(0.6666 L) - 1) into per-class Grams); overhead = capture / bare
- reference: the procedure of ../shared/spec/DIAGNOSTICS.md: a full forward with output_hidden_states
             and every needed layer pooled and copied to the host per batch; speed-up = reference / capture
- SPIN:      G_W of one layer group (the middle block's MLP: router and fused experts, the scan's
             per-sample weight-gradient route) over ``--spin-samples`` samples
- MI-Peaks:  greedy generation of ``--new-tokens`` tokens with the per-step capture of the last block
             against the reference's generate(output_hidden_states) with a host copy per step
- experts:   the router-logit capture of every MoE block, when deepsight.diagnostics.experts imports
             (skipped with a message otherwise)

It prints tokens/s, peak memory, the ratios, and the device's measured bf16 matmul rate and copy
bandwidth (the values ``hardware.throughput_tflops`` / ``memory_bandwidth_gbs`` of ``deepsight plan``).
Phases are skipped, with a message, once ``--budget-s`` is spent (benchmarks/gpu_scale.sh: < 8 min).

    python benchmarks/gpu_scale.py                 # GPU, 12 layers
    python benchmarks/gpu_scale.py --layers 24     # more of the 48 blocks
    python benchmarks/gpu_scale.py --tiny          # the same phases on CPU with tiny dimensions (CI)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from deepsight.capture import Capture, CaptureSpec, iter_batches
from deepsight.capture.engine import truncated_forward
from deepsight.stats import ClassCentroids, GramMatrix

REPO = Path(__file__).resolve().parents[1]
TINY = {"hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 32, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "num_experts": 8, "num_experts_per_tok": 2, "vocab_size": 512}


def build(layers: int, tiny: bool, device: torch.device, dtype: torch.dtype):
    from omegaconf import OmegaConf
    from transformers import AutoConfig, AutoModelForCausalLM

    d = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "qwen3_30b_a3b.yaml"))["config"]
    d.update(TINY if tiny else {})
    d["num_hidden_layers"] = layers
    model_type = d.pop("model_type")
    cfg = AutoConfig.for_model(model_type, **d)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.eval().requires_grad_(False)
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device("cpu" if args.tiny else "cuda")
        self.dtype = torch.float32 if args.tiny else torch.bfloat16
        self.t0 = time.perf_counter()
        self.out: dict = {"layers": args.layers, "device": str(self.device), "dtype": str(self.dtype)}
        if self.device.type == "cuda":
            self.out["gpu"] = torch.cuda.get_device_name(0)

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def phase(self, name: str, fn) -> None:
        if self.left() <= 0:
            print(f"{name}: skipped (time budget of {self.args.budget_s:.0f} s spent)", flush=True)
            self.out[name] = "skipped: time budget"
            return
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        res = fn()
        res["wall_s"] = round(time.perf_counter() - t, 2)
        if self.device.type == "cuda":
            res["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        self.out[name] = res
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in res.items()), flush=True)

    # ------------------------------------------------------------------ phases
    def hardware(self) -> dict:
        n = 512 if self.args.tiny else 8192
        a = torch.randn(n, n, device=self.device, dtype=self.dtype)
        mm = median_time(lambda: a @ a, self.device, 5)
        x = torch.empty(256 << 20 if not self.args.tiny else 4 << 20, dtype=torch.uint8, device=self.device)
        cp = median_time(lambda: x.clone(), self.device, 5)
        return {"matmul_tflops": round(2 * n**3 / mm / 1e12, 3), "copy_gbs": round(2 * x.numel() / cp / 1e9, 1)}

    def setup(self) -> dict:
        a = self.args
        self.model = build(a.layers, a.tiny, self.device, self.dtype)
        from deepsight.models.anatomy import inspect_model

        self.anatomy = inspect_model(self.model)
        g = torch.Generator().manual_seed(1)
        lo, hi = (8, 48) if a.tiny else (128, 1024)
        vocab = self.model.config.vocab_size
        lengths = torch.randint(lo, hi + 1, (a.samples,), generator=g).tolist()
        self.seqs = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]
        self.labels = torch.randint(0, 3, (a.samples,), generator=g)
        self.batches = list(iter_batches(self.seqs, max_batch_tokens=a.max_batch_tokens, pad_id=0,
                                         device=self.device))
        self.tokens = sum(lengths)
        params = sum(p.numel() for p in self.model.parameters())
        return {"params_b": round(params / 1e9, 3), "samples": a.samples, "tokens": self.tokens,
                "batches": len(self.batches)}

    def capture_vs_bare(self) -> dict:
        L = self.anatomy.num_layers
        xb = sorted({L // 3, 2 * L // 3})  # hidden_states indices
        tl = max(0, int(L * 0.6666) - 1)  # block
        stop = max(max(xb) - 1, tl)
        labels = self.labels.to(self.device)
        stats: dict = {}

        def sink(ev):
            if ev.spec.site == "hidden_states":
                key = ("xb", ev.layer)
                if key not in stats:
                    stats[key] = ClassCentroids(3, ev.hidden.shape[-1], device=ev.device)
                stats[key].update(ev.hidden, ev.take("labels"), mask=ev.mask, pooling="mean")
            else:
                if "tellme" not in stats:
                    stats["tellme"] = GramMatrix(ev.value.shape[-1], num_classes=2, device=ev.device)
                stats["tellme"].update(ev.value, ev.take("labels") % 2)

        specs = [CaptureSpec("hidden_states", xb, reduce="none"), CaptureSpec("block_output", [tl], reduce="last")]

        def bare():
            for b in self.batches:
                truncated_forward(self.model, b.input_ids, b.attention_mask, stop, anatomy=self.anatomy)

        def captured():
            with Capture(self.model, specs, sink, anatomy=self.anatomy, stop_after=stop,
                         last_token_mlp=False) as cap:
                for b in self.batches:
                    cap.forward(b.input_ids, b.attention_mask, labels=labels[b.index])

        def reference():  # full forward with every hidden state, pooled and copied to the host per layer
            for b in self.batches:
                out = self.model(input_ids=b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
                m = b.attention_mask.unsqueeze(-1).to(out.hidden_states[0].dtype)
                for i in xb:
                    h = out.hidden_states[i]
                    (h * m).sum(1).div(m.sum(1)).float().cpu()
                last = b.attention_mask.sum(1) - 1
                out.hidden_states[tl + 1][torch.arange(len(last), device=last.device), last].float().cpu()
                del out

        captured()  # warm-up (kernels, allocator)
        bare()
        r = self.args.repeats
        times = {"bare": [], "capture": []}
        for _ in range(r):  # alternate, so drift hits both alike
            times["bare"].append(median_time(bare, self.device, 1))
            times["capture"].append(median_time(captured, self.device, 1))
        tb, tc = statistics.median(times["bare"]), statistics.median(times["capture"])
        tr = median_time(reference, self.device, max(1, r // 2))
        return {"stop_block": stop, "bare_s": round(tb, 4), "capture_s": round(tc, 4),
                "capture_overhead_x": round(tc / tb, 3), "reference_s": round(tr, 4),
                "speedup_vs_reference_x": round(tr / tc, 2), "tokens_per_s": round(self.tokens / tc, 1)}

    def spin(self) -> dict:
        from deepsight.diagnostics.spin import grad_abs_sums
        from deepsight.diagnostics.spin_math import weights_of_model

        layer = self.anatomy.num_layers // 2
        refs = [r for r in weights_of_model(self.anatomy, "mlp") if r.layer == layer]
        samples = [(s, len(s) // 2) for s in self.seqs[: self.args.spin_samples]]
        t = time.perf_counter()
        sums, info = grad_abs_sums(self.model, self.anatomy, refs, samples, batch_size=8,
                                   max_batch_tokens=self.args.max_batch_tokens, layer_group_size=1)
        sync(self.device)
        dt = time.perf_counter() - t
        assert all(torch.isfinite(v.total).all() for v in sums.values()), "non-finite G_W"
        toks = sum(len(s) for s, _ in samples)
        return {"layer": layer, "matrices": len(refs), "route": info.get("route"), "samples": len(samples),
                "seconds": round(dt, 3), "tokens_per_s": round(toks / dt, 1)}

    def mi_peaks(self) -> dict:
        new = self.args.new_tokens
        prompts = self.seqs[: self.args.gen_rows]
        b = next(iter(iter_batches(prompts, max_batch_tokens=10**9, pad_id=0, side="left", device=self.device)))
        states: list = []

        def sink(ev):
            states.append(ev.value)

        kw = {"max_new_tokens": new, "min_new_tokens": new, "do_sample": False, "pad_token_id": 0}

        def ours():
            states.clear()
            with Capture(self.model, [CaptureSpec("block_output", -1, reduce="step")], sink,
                         anatomy=self.anatomy) as cap:
                cap.generate(b.input_ids, b.attention_mask, **kw)

        def reference():  # generate with every hidden state returned, each step's last block copied to host
            out = self.model.generate(input_ids=b.input_ids, attention_mask=b.attention_mask,
                                      output_hidden_states=True, return_dict_in_generate=True, **kw)
            for step in out.hidden_states:
                step[-2][:, -1].float().cpu()

        ours()
        to = median_time(ours, self.device, 2)
        tr = median_time(reference, self.device, 2)
        assert len(states) == new, f"{len(states)} captured steps for {new} new tokens"
        return {"rows": len(prompts), "new_tokens": new, "ours_s": round(to, 3), "reference_s": round(tr, 3),
                "speedup_vs_reference_x": round(tr / to, 2), "tokens_per_s": round(len(prompts) * new / to, 1)}

    def experts(self) -> dict:
        try:
            import deepsight.diagnostics.experts  # noqa: F401
        except ImportError as e:
            return {"status": f"skipped: deepsight.diagnostics.experts not importable ({e})"}
        moe = self.anatomy.moe_layer_indices
        E = self.anatomy.num_experts
        counts = {}

        def sink(ev):  # co-routing counts of the top-k experts per token
            top = ev.value.topk(self.anatomy.num_experts_per_tok, dim=-1).indices
            onehot = torch.zeros(top.shape[0], E, device=top.device).scatter_(1, top, 1.0)
            counts[ev.layer] = counts.get(ev.layer, 0) + onehot.T @ onehot

        def run():
            with Capture(self.model, [CaptureSpec("router_logits", moe, reduce="all")], sink,
                         anatomy=self.anatomy) as cap:
                for b in self.batches:
                    cap.forward(b.input_ids, b.attention_mask)

        t = median_time(run, self.device, 1)
        return {"status": "router-logit capture of every MoE block (the experts scan's site)", "seconds": round(t, 3),
                "tokens_per_s": round(self.tokens / t, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="CPU, tiny dimensions (CI)")
    p.add_argument("--layers", type=int, default=None, help="blocks of the 48 to build (default 12; tiny 3)")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--max-batch-tokens", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--spin-samples", type=int, default=None)
    p.add_argument("--gen-rows", type=int, default=None)
    p.add_argument("--new-tokens", type=int, default=None)
    p.add_argument("--budget-s", type=float, default=None, help="skip phases after this many seconds")
    p.add_argument("--json", type=str, default=None, help="also write the results here")
    args = p.parse_args(argv)
    defaults = ({"layers": 3, "samples": 24, "max_batch_tokens": 256, "repeats": 3, "spin_samples": 4,
                 "gen_rows": 4, "new_tokens": 8, "budget_s": 120.0} if args.tiny else
                {"layers": 12, "samples": 256, "max_batch_tokens": 16384, "repeats": 5, "spin_samples": 8,
                 "gen_rows": 16, "new_tokens": 64, "budget_s": 420.0})
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not args.tiny and not torch.cuda.is_available():
        p.error("no CUDA device: pass --tiny for the CPU run")
    bench = Bench(args)
    bench.phase("hardware", bench.hardware)
    bench.phase("model", bench.setup)
    if isinstance(bench.out.get("model"), dict):
        bench.phase("xboundary+tellme", bench.capture_vs_bare)
        bench.phase("spin", bench.spin)
        bench.phase("mi_peaks", bench.mi_peaks)
        bench.phase("experts", bench.experts)
    print("RESULT " + json.dumps(bench.out), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(bench.out, indent=1))
    return bench.out


if __name__ == "__main__":
    main()
