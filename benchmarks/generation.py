"""Generation throughput: the hf backend vs a naive one-prompt-at-a-time ``generate`` loop.

The naive loop is how the reference toolkit runs Hugging Face models: for each prompt,
``model.generate(ids, max_new_tokens, do_sample=False)`` at batch size 1. The hf backend gets
the same prompts (chat template applied identically), the same greedy settings, the same model
object, in the same process, and the same number of torch threads. Tokens/s = generated tokens
(EOS included, as both count them) / wall-clock seconds. Also measured when available: an
OpenAI-compatible server (``--vllm-url`` or env DEEPSIGHT_VLLM_URL, e.g. from
scripts/vllm_server.sh) through the openai backend, and the in-process vllm engine.

    python benchmarks/generation.py                        # SmolLM2-135M-Instruct on CPU
    python benchmarks/generation.py --n-prompts 64 --max-new-tokens 128 --csv benchmarks/generation.csv

Target: hf batched >= 4x the naive loop's tokens/s on SmolLM2, CPU.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from deepsight.config.schema import ModelConfig
from deepsight.generation.base import Generation, GenerationRequest, SamplingParams
from deepsight.generation.hf import HFGenerator, eos_token_ids
from deepsight.generation.prompts import encode_request
from deepsight.models.loading import load_model

TOPICS = [
    "photosynthesis", "the French revolution", "black holes", "compound interest", "the water cycle",
    "how vaccines work", "the rules of chess", "plate tectonics", "machine learning", "the Roman empire",
    "sourdough bread", "quantum entanglement", "the stock market", "honeybees", "jazz music", "volcanoes",
    "the immune system", "renewable energy", "ancient Egypt", "prime numbers", "climate change",
    "the printing press", "coral reefs", "electric cars", "the Moon landing", "Shakespeare", "tea ceremonies",
    "the human heart", "recycling", "the Silk Road", "earthquakes", "origami",
]
STYLES = [
    "Explain {t} in one short paragraph.",
    "What is {t}?",
    "Give me three surprising facts about {t}, and say briefly why each one matters to ordinary people today.",
    "Write a short poem about {t}.",
    "I am a high-school student preparing for an exam tomorrow and I keep getting confused. Could you explain "
    "{t} step by step, with a simple everyday analogy, and then tell me the most common mistake people make?",
]


def make_requests(n: int) -> list[GenerationRequest]:
    """n chat prompts of varied length (short questions to long multi-sentence requests)."""
    reqs = []
    for i in range(n):
        text = STYLES[i % len(STYLES)].format(t=TOPICS[i % len(TOPICS)])
        reqs.append(GenerationRequest(id=f"b{i}", messages=[{"role": "user", "content": text}]))
    return reqs


@torch.inference_mode()
def naive_loop(model, tokenizer, reqs: list[GenerationRequest], max_new_tokens: int) -> list[list[int]]:
    """One prompt at a time with plain ``generate`` (greedy); returns the generated ids up to and with EOS."""
    eos = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    outs = []
    for r in reqs:
        ids = torch.tensor([encode_request(tokenizer, r)], device=model.device)  # (1, T)
        seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=sorted(eos), pad_token_id=pad)
        new = seq[0, ids.shape[1]:].tolist()
        for k, t in enumerate(new):  # generate pads after EOS only in batches; cut at the first EOS anyway
            if t in eos:
                new = new[: k + 1]
                break
        outs.append(new)
    return outs


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="model.path (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--vllm-url", default=os.environ.get("DEEPSIGHT_VLLM_URL"))
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--csv", default=None, help="append one row per provider to this CSV")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = load_model(ModelConfig(path=args.model, device=args.device))
    model, tok = loaded.model, loaded.tokenizer
    reqs = make_requests(args.n_prompts)
    params = SamplingParams(max_new_tokens=args.max_new_tokens)
    hf = HFGenerator(model, tok, batch_size=args.batch_size, max_batch_tokens=1 << 20)
    # Warm-up (allocator, kernels) for both paths on a prompt outside the measured set.
    warm = [GenerationRequest("warm", messages=[{"role": "user", "content": "Hello!"}])]
    naive_loop(model, tok, warm, 4)
    hf.generate(warm, SamplingParams(max_new_tokens=4))

    rows: list[dict] = []
    hf_outs, hf_s = timed(lambda: hf.generate(reqs, params))
    hf_tokens = sum(g.completion_tokens for g in hf_outs)
    rows.append({"provider": "hf_batched", "tokens": hf_tokens, "seconds": hf_s})
    if not args.skip_naive:
        naive_outs, naive_s = timed(lambda: naive_loop(model, tok, reqs, args.max_new_tokens))
        rows.append({"provider": "naive_generate_loop", "tokens": sum(map(len, naive_outs)), "seconds": naive_s})
        same = sum(g.text == tok.decode([t for t in ids if t not in hf.eos_ids], skip_special_tokens=True)
                   for g, ids in zip(hf_outs, naive_outs))
        print(f"hf vs naive: {same}/{len(reqs)} identical greedy outputs")
    if args.vllm_url:
        from deepsight.generation.openai_server import OpenAIServerGenerator

        server = OpenAIServerGenerator(args.vllm_url, model=None, concurrency=args.batch_size)
        server.generate(warm, SamplingParams(max_new_tokens=4))
        outs, s = timed(lambda: server.generate(reqs, params))
        rows.append({"provider": "openai(vllm server)", "tokens": sum(g.completion_tokens for g in outs), "seconds": s,
                     "errors": sum(g.failed for g in outs)})
        _report_agreement("hf vs vllm server", hf_outs, outs)
    try:
        import vllm  # noqa: F401

        have_vllm = True
    except ImportError:
        have_vllm = False
        print("vllm engine: not importable here (pip install deepsight[vllm]); skipped")
    if have_vllm:
        from deepsight.generation.vllm_engine import VLLMGenerator
        from deepsight.models.default_model import ensure_default_model_dir

        engine = VLLMGenerator(str(ensure_default_model_dir()) if args.model == "default" else args.model,
                               dtype="float32" if args.device == "cpu" else "auto")
        engine.generate(warm, SamplingParams(max_new_tokens=4))
        outs, s = timed(lambda: engine.generate(reqs, params))
        rows.append({"provider": "vllm engine", "tokens": sum(g.completion_tokens for g in outs), "seconds": s})
        engine.close()

    for r in rows:
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
    base = next((r for r in rows if r["provider"] == "naive_generate_loop"), None)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"\nmodel={loaded.info.get('name', args.model)} device={device} threads={torch.get_num_threads()} "
          f"prompts={len(reqs)} max_new_tokens={args.max_new_tokens} batch_size={args.batch_size}")
    print("| provider | tokens | seconds | tokens/s | vs naive |\n|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        print(f"| {r['provider']} | {r['tokens']} | {r['seconds']:.1f} | {r['tokens_per_s']:.1f} | {ratio} |")
    if base:
        ratio = rows[0]["tokens_per_s"] / base["tokens_per_s"]
        print(f"\nhf batched / naive loop = {ratio:.2f}x (target >= 4x): {'PASS' if ratio >= 4 else 'FAIL'}")
    print(json.dumps({"rows": rows}))
    if args.csv:
        new = not Path(args.csv).exists()
        with open(args.csv, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["date", "commit", "device", "threads", "model", "n_prompts", "max_new_tokens",
                            "batch_size", "provider", "tokens", "seconds", "tokens_per_s"])
            for r in rows:
                w.writerow([datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), git_commit(),
                            device, torch.get_num_threads(), args.model, len(reqs), args.max_new_tokens,
                            args.batch_size, r["provider"], r["tokens"], f"{r['seconds']:.3f}",
                            f"{r['tokens_per_s']:.2f}"])


def _report_agreement(label: str, ours: list[Generation], theirs: list[Generation]) -> None:
    same = sum(a.text == b.text for a, b in zip(ours, theirs))
    print(f"{label}: {same}/{len(ours)} identical greedy outputs")


if __name__ == "__main__":
    main()
