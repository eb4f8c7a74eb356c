"""Generation throughput: the hf backend vs the original toolkit's Hugging Face procedure.

The baseline follows DeepSafe's ``uni_eval/models/huggingface.py`` (the black-box half of the
DeepSight paper): prompts rendered with the chat template, cut into batches of 10 in input order,
tokenized with left padding, one ``model.generate(**inputs, max_new_tokens, greedy, pad/eos ids)``
per batch (its ``prompt.strip()`` is left out so both sides read the same tokens and the outputs
can be compared). ``--baseline naive`` instead runs one prompt at a time with ``generate``. The hf
backend gets the same prompts, greedy settings, model object, process and torch threads, with the
CPU fast paths on as an audit runs it (``--no-fast-paths`` to switch them off). One of them, glibc's
malloc keeping freed memory (``models/cpu_allocator.py``), is process-wide: it takes effect at the
warm-up, so both sides' timed runs have it. Tokens/s =
generated tokens (EOS included, as both count them) / wall-clock seconds. ``--repeat N``
alternates the sides N times (the CPU may be shared) and reports each side's best. Also measured
when available: an OpenAI-compatible server (``--vllm-url`` or env DEEPSIGHT_VLLM_URL, e.g. from
scripts/vllm_server.sh; ``--server-pid`` adds the server's CPU seconds) through the openai backend, and
the in-process vllm engine.

    DEEPSIGHT_DATA_DIR=../shared/data python benchmarks/generation.py   # 60 XSTest prompts x 128 tokens
    python benchmarks/generation.py --prompts synthetic --n-prompts 32 --max-new-tokens 96 --repeat 3

Target: hf batched >= 4x the reference procedure's tokens/s on SmolLM2-135M-Instruct, fp32, CPU.
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
from deepsight.generation.prompts import chat_messages, encode_request, render_chat
from deepsight.models.cpu_fast_paths import cpu_fast_paths
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


def xstest_requests(n: int, data_dir: str) -> list[GenerationRequest]:
    """The first n prompts of XSTest's native ``xstest_prompts.csv`` as single-turn chats."""
    path = Path(data_dir) / "xstest" / "xstest_prompts.csv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < n:
        raise SystemExit(f"{path}: {len(rows)} prompts, {n} asked")
    return [GenerationRequest(f"xstest-{r['id']}", messages=[{"role": "user", "content": r["prompt"]}])
            for r in rows[:n]]


@torch.inference_mode()
def reference_batched(model, tokenizer, reqs: list[GenerationRequest], max_new_tokens: int,
                      batch_size: int = 10) -> list[list[int]]:
    """DeepSafe's HF procedure: chat-template strings, batches of ``batch_size`` in input order, left
    padding, one greedy ``generate`` per batch; returns each row's new ids up to and with its first EOS."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    outs = []
    try:
        for start in range(0, len(reqs), batch_size):
            texts = [render_chat(tokenizer, chat_messages(r)) for r in reqs[start : start + batch_size]]
            inputs = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
            seq = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad, eos_token_id=eos)
            for row in seq[:, inputs["input_ids"].shape[1] :].tolist():
                outs.append(row[: row.index(eos) + 1] if eos in row else row)
    finally:
        tokenizer.padding_side = side
    return outs


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


def timed_cpu(fn):
    """(value, wall seconds, CPU seconds of this process): on a shared CPU the CPU time is the work done."""
    c0, t0 = time.process_time(), time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0, time.process_time() - c0


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
    ap.add_argument("--prompts", choices=["xstest", "synthetic"], default="xstest")
    ap.add_argument("--data-dir", default=os.environ.get("DEEPSIGHT_DATA_DIR"), help="holds xstest/xstest_prompts.csv")
    ap.add_argument("--n-prompts", type=int, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64, help="hf backend rows per batch")
    ap.add_argument("--baseline", choices=["reference", "naive", "none"], default="reference")
    ap.add_argument("--reference-batch-size", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="alternate hf / baseline this many times; best of each")
    ap.add_argument("--no-fast-paths", action="store_true", help="hf backend without the audit's CPU fast paths")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--vllm-url", default=os.environ.get("DEEPSIGHT_VLLM_URL"))
    ap.add_argument("--server-pid", type=int, default=None,
                    help="pid of the vLLM server (its process tree's CPU seconds are reported beside wall time)")
    ap.add_argument("--csv", default=None, help="append one row per provider to this CSV")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = load_model(ModelConfig(path=args.model, device=args.device))
    model, tok = loaded.model, loaded.tokenizer
    if args.prompts == "xstest":
        if not args.data_dir:
            raise SystemExit("--prompts xstest needs --data-dir or DEEPSIGHT_DATA_DIR (or use --prompts synthetic)")
        reqs = xstest_requests(args.n_prompts, args.data_dir)
    else:
        reqs = make_requests(args.n_prompts)
    params = SamplingParams(max_new_tokens=args.max_new_tokens)
    hf = HFGenerator(model, tok, batch_size=args.batch_size, max_batch_tokens=1 << 20)
    baseline = {
        "reference": ("reference_hf_batched", lambda rs, n: reference_batched(model, tok, rs, n,
                                                                              args.reference_batch_size)),
        "naive": ("naive_generate_loop", lambda rs, n: naive_loop(model, tok, rs, n)),
    }.get(args.baseline)
    packed = None
    if not args.no_fast_paths and args.device == "cpu":
        from deepsight.models.cpu_linears import PackedLinears

        packed = PackedLinears(model)  # packed once, as the audit does at load

    def run_hf(rs, p):
        with cpu_fast_paths(model, enabled=packed is not None, packed=packed):
            return hf.generate(rs, p)

    # Warm-up (allocator, kernels) for both paths on a prompt outside the measured set.
    warm = [GenerationRequest("warm", messages=[{"role": "user", "content": "Hello!"}])]
    if baseline:
        baseline[1](warm, 4)
    run_hf(warm, SamplingParams(max_new_tokens=4))

    hf_times, base_times, hf_cpu, base_cpu = [], [], [], []
    hf_outs, base_outs = [], []
    for _ in range(max(1, args.repeat)):  # alternate the sides so load changes hit both
        hf_outs, s, c = timed_cpu(lambda: run_hf(reqs, params))
        hf_times.append(s)
        hf_cpu.append(c)
        if baseline:
            base_outs, s, c = timed_cpu(lambda: baseline[1](reqs, args.max_new_tokens))
            base_times.append(s)
            base_cpu.append(c)
        print(f"round: hf {hf_times[-1]:.1f} s wall / {hf_cpu[-1]:.1f} s CPU"
              + (f"; {baseline[0]} {base_times[-1]:.1f} s wall / {base_cpu[-1]:.1f} s CPU" if baseline else ""),
              flush=True)
    rows: list[dict] = []
    hf_tokens = sum(g.completion_tokens for g in hf_outs)
    rows.append({"provider": "hf_batched", "tokens": hf_tokens, "seconds": min(hf_times), "cpu_seconds": min(hf_cpu),
                 "all_seconds": [round(t, 2) for t in hf_times]})
    if baseline:
        rows.append({"provider": baseline[0], "tokens": sum(map(len, base_outs)), "seconds": min(base_times),
                     "cpu_seconds": min(base_cpu), "all_seconds": [round(t, 2) for t in base_times]})
        same_tokens = sum(g.completion_tokens == len(ids) and g.text == tok.decode(
            [t for t in ids if t not in hf.eos_ids], skip_special_tokens=True) for g, ids in zip(hf_outs, base_outs))
        print(f"hf vs {baseline[0]}: {same_tokens}/{len(reqs)} identical greedy outputs")
    if args.vllm_url:
        from deepsight.generation.openai_server import OpenAIServerGenerator

        server = OpenAIServerGenerator(args.vllm_url, model=None, concurrency=args.batch_size)
        server.generate(warm, SamplingParams(max_new_tokens=4))
        c0 = _tree_cpu_seconds(args.server_pid)
        outs, s = timed(lambda: server.generate(reqs, params))
        rows.append({"provider": "openai(vllm server)", "tokens": sum(g.completion_tokens for g in outs), "seconds": s,
                     "errors": sum(g.failed for g in outs)})
        if c0 is not None:  # the server's own CPU seconds (API server + engine core), comparable to the others'
            rows[-1]["cpu_seconds"] = _tree_cpu_seconds(args.server_pid) - c0
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
    base = rows[1] if baseline else None
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"\nmodel={loaded.info.get('name', args.model)} device={device} threads={torch.get_num_threads()} "
          f"prompts={len(reqs)} ({args.prompts}) max_new_tokens={args.max_new_tokens} batch_size={args.batch_size} "
          f"fast_paths={packed is not None} repeat={args.repeat} load_avg={os.getloadavg()[0]:.1f}")
    print("| provider | tokens | best s | tokens/s | vs baseline | best CPU s | tokens/CPU-s | vs baseline (CPU) |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        cpu = r.get("cpu_seconds")
        cpu_cols = "| - | - | -"
        if cpu:
            r["tokens_per_cpu_s"] = r["tokens"] / cpu
            cpu_ratio = f"{r['tokens_per_cpu_s'] / (base['tokens'] / base['cpu_seconds']):.2f}x" if base else "-"
            cpu_cols = f"| {cpu:.1f} | {r['tokens_per_cpu_s']:.1f} | {cpu_ratio}"
        tps = r["tokens_per_s"]
        print(f"| {r['provider']} | {r['tokens']} | {r['seconds']:.1f} | {tps:.1f} | {ratio} {cpu_cols} |")
    if base:
        ratio = rows[0]["tokens_per_s"] / base["tokens_per_s"]
        print(f"\nhf batched / {base['provider']} = {ratio:.2f}x (target >= 4x): {'PASS' if ratio >= 4 else 'FAIL'}")
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


def _tree_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` and its children so far (None without a pid)."""
    if pid is None:
        return None
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _report_agreement(label: str, ours: list[Generation], theirs: list[Generation]) -> None:
    same = sum(a.text == b.text for a, b in zip(ours, theirs))
    print(f"{label}: {same}/{len(ours)} identical greedy outputs")


if __name__ == "__main__":
    main()
