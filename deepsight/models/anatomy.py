"""Model anatomy: find the decoder blocks and their parts in a loaded causal LM.

Diagnostics hook blocks, attention, MLPs, routers and experts by structure, not
by architecture name. ``inspect_model`` finds them generically in any Hugging
Face decoder (Llama, Mistral, Mixtral, Qwen2/3 and their MoE variants, Gemma 2/3,
Phi-3, GPT-2, GPT-NeoX, OLMoE, DeepSeek-V3, GPT-OSS, ...)::

    anatomy = inspect_model(model)
    block = anatomy.blocks[anatomy.layer_index(-1)]     # last decoder block
    for layer in anatomy.layers:
        layer.linear_modules        # {"model.layers.3.mlp.down_proj": nn.Linear, ...}
        layer.fused_expert_weights  # {"model.layers.3.mlp.experts.down_proj": (E, H, I)} (transformers 5)

How the pieces are found:
- blocks: the ``nn.ModuleList`` closest to the root whose length equals the
  config's number of layers (``num_hidden_layers`` / ``n_layer`` / ...);
  ``decoder`` is the module that holds it (e.g. ``model.model``).
- attention / MLP: the block's child named like ``self_attn``/``attn``/``attention``
  (``linear_attn`` in the linear-attention blocks of hybrids such as Qwen3-Next) and
  ``mlp``/``feed_forward``/``block_sparse_moe``/``moe``; ``attention_name``/``mlp_name`` say which.
- router: the MLP's child ``gate``/``router`` whose weight is (num_experts, hidden).
- experts: the MLP's child ``experts``: an ``nn.ModuleList`` of per-expert MLPs, or
  (transformers 5) one fused module holding 3-D parameters such as
  ``gate_up_proj`` (E, 2I, H) and ``down_proj`` (E, H, I), with no per-expert modules.
- device: where a block computes; under accelerate dispatch/offload that is the
  hook's execution device, else the device of its parameters.

Hidden-state convention (../shared/spec/DIAGNOSTICS.md): ``hidden_states[0]`` is the
embedding output, ``hidden_states[l+1]`` the output of block l. In transformers 5 every
architecture tested here reports ``hidden_states[L]`` *after* the final norm, while a hook
on block L-1 sees the pre-norm state (the spec's "-1 = last block, before the final norm").

Known gaps: DeepSeek-V4's hyper-connections carry (B, T, streams, H) states between blocks
and reduce them before the final norm (its ``hc_head`` is not reported); quantised linear
layers that do not subclass ``nn.Linear`` (e.g. GPTQ) are missing from ``linear_modules``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from deepsight.errors import DeepSightError

# Child names, most common first. Matching is exact on the attribute name.
# Hybrid models (Qwen3-Next, Qwen3.5, OLMo-hybrid) mix tokens in some blocks with linear attention.
_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention", "linear_attn", "mixer")
_MLP_NAMES = ("mlp", "feed_forward", "block_sparse_moe", "moe", "ffn", "mlp_block")
_ROUTER_NAMES = ("gate", "router")
_EXPERTS_NAMES = ("experts",)
_SHARED_EXPERT_NAMES = ("shared_expert", "shared_experts", "shared_mlp")
_FINAL_NORM_NAMES = ("norm", "final_layer_norm", "ln_f", "final_layernorm", "norm_f", "final_norm")
_NUM_LAYERS_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim")
_TOP_K_KEYS = ("num_experts_per_tok", "num_experts_per_token", "moe_topk", "top_k", "num_selected_experts")
# Module lists of other towers (vision, audio) in multimodal wrappers are never the decoder.
_OTHER_TOWER_WORDS = ("vision", "visual", "audio", "image", "encoder")


class UnsupportedModelError(DeepSightError, TypeError):
    """The model's structure was not recognised; the message names the model class and what is missing."""


class LayerIndexError(DeepSightError, IndexError):
    """A layer or hidden-states index outside the model's range (usually from a config key)."""


def is_transposed_linear(module: nn.Module) -> bool:
    """True for GPT-2 style ``Conv1D`` layers, whose weight is stored (in, out) rather than (out, in)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or is_transposed_linear(module)


def block_output_hidden(output: object) -> torch.Tensor:
    """The hidden-state tensor in a decoder block's forward output (a tensor, or a tuple led by one)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"unrecognised decoder block output of type {type(output).__name__}")


@dataclass
class BlockAnatomy:
    """One decoder block and its parts; qualified names are relative to the model root."""

    index: int
    name: str  # e.g. "model.layers.3"
    block: nn.Module
    attention_name: str  # child name of the token mixer: "self_attn", "attn", "linear_attn" (hybrid models), ...
    mlp_name: str  # child name of the MLP / MoE block: "mlp", "feed_forward", "block_sparse_moe", ...
    attention: nn.Module | None
    mlp: nn.Module | None
    router: nn.Module | None = None  # MoE gate (nn.Linear or a router module with weight (E, H))
    experts: nn.Module | None = None  # ModuleList of experts, or one fused module with 3-D weights
    expert_modules: list[nn.Module] = field(default_factory=list)  # per-expert MLPs; empty when fused
    shared_expert: nn.Module | None = None  # always-on expert of Qwen2-MoE / DeepSeek
    fused_experts: bool = False
    experts_transposed: bool = False  # fused weights stored (E, in, out) (GPT-OSS) instead of (E, out, in)
    num_experts: int = 0
    num_experts_per_tok: int = 0
    # the router's score over experts: "softmax", or "sigmoid" (DeepSeek-V3: sigmoid + correction bias, groups)
    router_scoring: str = "softmax"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # Every linear layer in the block, including per-expert ones; GPT-2's Conv1D counts (see
    # is_transposed_linear). Routers that are not nn.Linear are not listed here.
    linear_modules: dict[str, nn.Module] = field(default_factory=dict)
    # Fused experts: qualified parameter name -> shape of each 3-D weight (E, out, in) or (E, in, out).
    fused_expert_weights: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def is_moe(self) -> bool:
        return self.experts is not None

    def attention_linear_names(self) -> list[str]:
        """Qualified names of the linear layers inside the attention (token mixer)."""
        prefix = f"{self.name}.{self.attention_name}."
        return [n for n in self.linear_modules if n.startswith(prefix)]

    def mlp_linear_names(self) -> list[str]:
        """Qualified names of the linear layers inside the MLP / MoE block (experts, shared expert, gate)."""
        prefix = f"{self.name}.{self.mlp_name}."
        return [n for n in self.linear_modules if n.startswith(prefix)]


@dataclass
class ModelAnatomy:
    """The parts of a decoder-only language model that diagnostics hook."""

    architecture: str  # config.model_type of the whole model ("gemma3" for Gemma 3 with its vision tower)
    model_class: str
    decoder: nn.Module  # the module that holds the block list (e.g. model.model)
    decoder_name: str  # its qualified name ("model", "transformer", "gpt_neox", ...)
    blocks_name: str  # qualified name of the ModuleList ("model.layers")
    blocks: list[nn.Module]
    layers: list[BlockAnatomy]
    embeddings: nn.Module | None
    final_norm: nn.Module | None
    lm_head: nn.Module | None
    num_layers: int
    hidden_size: int
    vocab_size: int
    block_devices: list[torch.device]

    @property
    def is_moe(self) -> bool:
        return any(layer.is_moe for layer in self.layers)

    @property
    def num_experts(self) -> int:
        """Experts per MoE block (0 for dense models)."""
        return max((layer.num_experts for layer in self.layers), default=0)

    @property
    def num_experts_per_tok(self) -> int:
        return max((layer.num_experts_per_tok for layer in self.layers), default=0)

    @property
    def moe_layer_indices(self) -> list[int]:
        return [layer.index for layer in self.layers if layer.is_moe]

    def layer_index(self, l: int) -> int:
        """Block index in [0, L) for l in [-L, L); -1 = last block."""
        if not isinstance(l, int) or isinstance(l, bool):
            raise TypeError(f"layer index must be an int, got {l!r}")
        if not -self.num_layers <= l < self.num_layers:
            raise LayerIndexError(
                f"layer {l} out of range for {self.model_class} with {self.num_layers} blocks "
                f"(valid: {-self.num_layers}..{self.num_layers - 1})"
            )
        return l % self.num_layers

    def hidden_states_index_to_block(self, idx: int) -> int | None:
        """Block whose output is ``hidden_states[idx]``; None for index 0 (the embeddings).

        ``hidden_states`` has L+1 entries; negative indices count from its end (-1 -> block L-1).
        Note that transformers reports ``hidden_states[L]`` after the final norm (see module docstring).
        """
        n = self.num_layers + 1
        if not -n <= idx < n:
            raise LayerIndexError(f"hidden_states index {idx} out of range for {n} entries ({self.model_class})")
        idx %= n
        return None if idx == 0 else idx - 1

    def block_to_hidden_states_index(self, l: int) -> int:
        """Index into ``hidden_states`` of block l's output (negative l allowed)."""
        return self.layer_index(l) + 1

    def describe(self) -> dict:
        """A JSON-ready summary for results.json and reports (no modules, devices as strings)."""
        moe = [layer for layer in self.layers if layer.is_moe]
        return {
            "architecture": self.architecture,
            "model_class": self.model_class,
            "blocks": self.blocks_name,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "is_moe": self.is_moe,
            "moe_layers": self.moe_layer_indices,
            "num_experts": self.num_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "fused_experts": bool(moe) and all(layer.fused_experts for layer in moe),
            "attention_kinds": sorted({layer.attention_name for layer in self.layers}),
            "block_devices": [str(d) for d in self.block_devices],
        }

    def linear_modules(self, layers: list[int] | None = None) -> dict[str, nn.Module]:
        """All linear layers of the chosen blocks (default all), by qualified name, in block order."""
        chosen = self.layers if layers is None else [self.layers[self.layer_index(i)] for i in layers]
        return {name: module for layer in chosen for name, module in layer.linear_modules.items()}


def _config_int(config: object, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _text_config(model: nn.Module) -> object:
    config = getattr(model, "config", None)
    if config is None:
        raise UnsupportedModelError(f"{type(model).__name__} has no .config; inspect_model needs a transformers model")
    get_text = getattr(config, "get_text_config", None)
    if callable(get_text):
        text = get_text()
        if text is not None:
            return text
    return config


def _find_blocks(model: nn.Module, num_layers: int | None) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder blocks: closest to the root, length = number of layers."""
    candidates: list[tuple[int, str, nn.ModuleList]] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0 or _is_linear(module[0]):
            continue
        if any(word in name.lower() for word in _OTHER_TOWER_WORDS):
            continue
        if num_layers is not None and len(module) != num_layers:
            continue
        candidates.append((name.count("."), name, module))
    if not candidates:
        want = f"of length {num_layers}" if num_layers is not None else "(config gives no layer count)"
        raise UnsupportedModelError(
            f"{type(model).__name__}: no nn.ModuleList of decoder blocks {want} found; "
            "inspect_model supports decoder-only transformers models"
        )
    candidates.sort(key=lambda c: c[0])
    # Among lists at the same depth, one whose entries look like decoder blocks wins.
    looks_like_blocks = [c for c in candidates if _named_child(c[2][0], _ATTENTION_NAMES + _MLP_NAMES) is not None]
    _, name, blocks = (looks_like_blocks or candidates)[0]
    return name, blocks


def _named_child(module: nn.Module, names: tuple[str, ...]) -> tuple[str, nn.Module] | None:
    children = dict(module.named_children())
    for name in names:
        if name in children and children[name] is not None:
            return name, children[name]
    return None


def _child_by_class_word(module: nn.Module, words: tuple[str, ...]) -> tuple[str, nn.Module] | None:
    for name, child in module.named_children():
        cls = type(child).__name__.lower()
        if any(word in cls for word in words):
            return name, child
    return None


def _fused_weights(experts: nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in experts.named_parameters(recurse=False) if p.dim() == 3}


def _experts_of(mlp: nn.Module) -> tuple[nn.Module, list[nn.Module], bool] | None:
    found = _named_child(mlp, _EXPERTS_NAMES)
    if found is None:
        return None
    experts = found[1]
    if isinstance(experts, nn.ModuleList):
        return experts, list(experts), False
    if _fused_weights(experts):
        return experts, [], True
    return None


def _num_fused_experts(experts: nn.Module) -> int:
    value = getattr(experts, "num_experts", None)
    if isinstance(value, int):
        return value
    shapes = {p.shape[0] for p in _fused_weights(experts).values()}
    assert len(shapes) == 1, f"fused expert weights disagree on the expert count: {shapes}"
    return shapes.pop()


def _experts_transposed(experts: nn.Module, hidden_size: int) -> bool:
    """Whether fused expert weights are stored (E, in, out) rather than (E, out, in).

    transformers 5 marks this on experts built with ``use_experts_implementation``; otherwise
    (e.g. Llama 4) it is read off the shapes: hidden is the input of up/gate and the output of down.
    """
    flag = getattr(experts, "is_transposed", None)
    if isinstance(flag, bool):
        return flag
    for name, weight in _fused_weights(experts).items():
        rows_hidden, cols_hidden = weight.shape[1] == hidden_size, weight.shape[2] == hidden_size
        if rows_hidden == cols_hidden:
            continue  # square per-expert matrix: ambiguous
        return cols_hidden if "down" in name else rows_hidden
    return False


def _router_of(mlp: nn.Module, num_experts: int, hidden_size: int) -> nn.Module | None:
    """The MoE gate: a child named gate/router whose weight is (num_experts, hidden)."""
    for name in _ROUTER_NAMES:
        child = getattr(mlp, name, None)
        weight = getattr(child, "weight", None)
        if isinstance(child, nn.Module) and isinstance(weight, torch.Tensor) and weight.dim() == 2:
            if weight.shape[0] == num_experts and weight.shape[1] == hidden_size:
                return child
    return None


def _top_k(router: nn.Module | None, mlp: nn.Module, config: object) -> int:
    for owner in (router, mlp):
        value = getattr(owner, "top_k", None) if owner is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return _config_int(config, _TOP_K_KEYS) or 0


def _router_scoring(router: nn.Module, config: object) -> str:
    """"sigmoid" for DeepSeek-V3-style routers (a score-correction bias, or config scoring_func), else "softmax"."""
    if hasattr(router, "e_score_correction_bias") or getattr(config, "scoring_func", None) == "sigmoid":
        return "sigmoid"
    return "softmax"


def _hook_execution_device(module: nn.Module) -> torch.device | None:
    hook = getattr(module, "_hf_hook", None)
    hooks = list(getattr(hook, "hooks", ())) or ([hook] if hook is not None else [])
    for h in hooks:
        device = getattr(h, "execution_device", None)
        if device is not None:
            return torch.device(device)
    return None


def _block_device(model: nn.Module, name: str, block: nn.Module) -> torch.device:
    """Where the block computes: an accelerate hook's execution device (on it or an ancestor), else its weights."""
    device = _hook_execution_device(block)
    if device is not None:
        return device
    for tensor in list(block.parameters()) + list(block.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    parts = name.split(".")
    for depth in range(len(parts) - 1, -1, -1):  # offloaded weights live on meta: ask the ancestors' hooks
        ancestor = model.get_submodule(".".join(parts[:depth])) if depth else model
        device = _hook_execution_device(ancestor)
        if device is not None:
            return device
    return torch.device("meta")


def _inspect_block(
    model: nn.Module, index: int, name: str, block: nn.Module, hidden_size: int, config: object
) -> BlockAnatomy:
    attention = _named_child(block, _ATTENTION_NAMES) or _child_by_class_word(block, ("attention",))
    mlp = _named_child(block, _MLP_NAMES) or _child_by_class_word(block, ("mlp", "moe"))
    if attention is None or mlp is None:
        missing = " and ".join(w for w, x in (("attention", attention), ("MLP", mlp)) if x is None)
        raise UnsupportedModelError(
            f"{type(model).__name__}: block {name} ({type(block).__name__}) has no recognisable {missing}; "
            f"children: {[n for n, _ in block.named_children()]}"
        )
    anatomy = BlockAnatomy(
        index=index,
        name=name,
        block=block,
        attention_name=attention[0],
        mlp_name=mlp[0],
        attention=attention[1],
        mlp=mlp[1],
        device=_block_device(model, name, block),
    )
    mlp_module = mlp[1]
    experts = _experts_of(mlp_module)
    if experts is not None:
        anatomy.experts, anatomy.expert_modules, anatomy.fused_experts = experts
        if anatomy.fused_experts:
            anatomy.num_experts = _num_fused_experts(anatomy.experts)
            anatomy.experts_transposed = _experts_transposed(anatomy.experts, hidden_size)
            prefix = f"{name}.{mlp[0]}.{_named_child(mlp_module, _EXPERTS_NAMES)[0]}"
            anatomy.fused_expert_weights = {
                f"{prefix}.{pname}": tuple(p.shape) for pname, p in _fused_weights(anatomy.experts).items()
            }
        else:
            anatomy.num_experts = len(anatomy.expert_modules)
        anatomy.router = _router_of(mlp_module, anatomy.num_experts, hidden_size)
        if anatomy.router is None:
            raise UnsupportedModelError(
                f"{type(model).__name__}: block {name} has {anatomy.num_experts} experts but no router "
                f"(a child named {'/'.join(_ROUTER_NAMES)} with weight ({anatomy.num_experts}, {hidden_size}))"
            )
        anatomy.num_experts_per_tok = _top_k(anatomy.router, mlp_module, config)
        anatomy.router_scoring = _router_scoring(anatomy.router, config)
        shared = _named_child(mlp_module, _SHARED_EXPERT_NAMES)
        anatomy.shared_expert = shared[1] if shared is not None else None
    anatomy.linear_modules = {
        f"{name}.{sub}": module for sub, module in block.named_modules() if sub and _is_linear(module)
    }
    return anatomy


def _final_norm(decoder: nn.Module, blocks: nn.ModuleList) -> nn.Module | None:
    found = _named_child(decoder, _FINAL_NORM_NAMES)
    if found is not None:
        return found[1]
    # Fallback: the last norm-like child registered after the blocks.
    after_blocks, result = False, None
    for _, child in decoder.named_children():
        if child is blocks:
            after_blocks = True
        elif after_blocks and "norm" in type(child).__name__.lower():
            result = child
    return result


def inspect_model(model: nn.Module) -> ModelAnatomy:
    """Find the decoder blocks and their parts of a transformers causal LM (see module docstring)."""
    config = _text_config(model)
    num_layers = _config_int(config, _NUM_LAYERS_KEYS)
    blocks_name, block_list = _find_blocks(model, num_layers)
    decoder_name = blocks_name.rpartition(".")[0]
    decoder = model.get_submodule(decoder_name) if decoder_name else model

    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    embeddings = get_in() if callable(get_in) else None
    lm_head = get_out() if callable(get_out) else None

    hidden_size = _config_int(config, _HIDDEN_KEYS)
    if hidden_size is None and isinstance(embeddings, nn.Embedding):
        hidden_size = embeddings.embedding_dim
    if hidden_size is None:
        raise UnsupportedModelError(f"{type(model).__name__}: hidden size not found in the config or embeddings")
    vocab_size = getattr(config, "vocab_size", None)
    if not isinstance(vocab_size, int) and isinstance(embeddings, nn.Embedding):
        vocab_size = embeddings.num_embeddings

    layers = [
        _inspect_block(model, i, f"{blocks_name}.{i}", block, hidden_size, config) for i, block in enumerate(block_list)
    ]
    return ModelAnatomy(
        architecture=str(getattr(model.config, "model_type", "") or type(model).__name__),
        model_class=type(model).__name__,
        decoder=decoder,
        decoder_name=decoder_name,
        blocks_name=blocks_name,
        blocks=list(block_list),
        layers=layers,
        embeddings=embeddings,
        final_norm=_final_norm(decoder, block_list),
        lm_head=lm_head,
        num_layers=len(block_list),
        hidden_size=hidden_size,
        vocab_size=int(vocab_size) if isinstance(vocab_size, int) else 0,
        block_devices=[layer.device for layer in layers],
    )
