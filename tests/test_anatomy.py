"""deepsight.models.anatomy on tiny random-weight models of every supported decoder family.

Each architecture is built from its transformers config (hidden 32, 3 layers, MoE with
4 experts and top-2), so the file runs in seconds; architectures the installed
transformers lacks are skipped by name.
"""

from __future__ import annotations

import json
import tempfile
import types
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from deepsight.errors import DeepSightError
from deepsight.models.anatomy import (
    LayerIndexError,
    UnsupportedModelError,
    block_output_hidden,
    inspect_model,
    is_transposed_linear,
)

transformers = pytest.importorskip("transformers")
_TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5

HIDDEN, LAYERS, VOCAB, INTER, EXPERTS, TOP_K = 32, 3, 97, 48, 4, 2
_BASE = dict(
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=INTER,
    vocab_size=VOCAB,
    max_position_embeddings=64,
)
_MOE = dict(num_experts_per_tok=TOP_K, moe_intermediate_size=16)


@dataclass
class Arch:
    """A tiny config and what its anatomy must report."""

    model_type: str
    config: dict
    blocks_name: str = "model.layers"
    moe_layers: tuple[int, ...] = ()  # blocks with routed experts
    dense_linears: tuple[str, ...] = ()  # linear names (relative to the block) of a dense block
    moe_linears: tuple[str, ...] = ()  # ... and of an MoE block
    fused_weights: dict[str, tuple[int, ...]] = field(default_factory=dict)  # relative to the block
    transposed: bool = False  # fused expert layout (E, in, out)
    norm_name: str = "model.norm"
    attention_name: str | tuple[str, ...] = "self_attn"  # a tuple gives one per block (hybrid models)
    mlp_name: str = "mlp"
    lm_head_name: str = "lm_head"
    top_k: int = TOP_K
    check_linears: bool = True  # the listed families pin every linear name; related ones only resolve them


_LLAMA_LINEARS = tuple(f"self_attn.{p}_proj" for p in "qkvo") + tuple(f"mlp.{p}_proj" for p in ("gate", "up", "down"))
_ATTN = tuple(f"self_attn.{p}_proj" for p in "qkvo")
_MIXTRAL_FUSED = {
    "mlp.experts.gate_up_proj": (EXPERTS, 2 * INTER, HIDDEN),
    "mlp.experts.down_proj": (EXPERTS, HIDDEN, INTER),
}
_QWEN_FUSED = {"mlp.experts.gate_up_proj": (EXPERTS, 32, HIDDEN), "mlp.experts.down_proj": (EXPERTS, HIDDEN, 16)}
_ALL = list(range(LAYERS))

ARCHS = [
    Arch("llama", _BASE, dense_linears=_LLAMA_LINEARS),
    Arch("mistral", _BASE, dense_linears=_LLAMA_LINEARS),
    Arch("qwen2", _BASE, dense_linears=_LLAMA_LINEARS),
    Arch("qwen3", dict(_BASE, head_dim=8), dense_linears=_LLAMA_LINEARS),
    Arch(
        "mixtral",
        dict(_BASE, num_local_experts=EXPERTS, num_experts_per_tok=TOP_K),
        moe_layers=tuple(_ALL),
        moe_linears=_ATTN,
        fused_weights=_MIXTRAL_FUSED,
    ),
    Arch(
        "qwen2_moe",
        dict(_BASE, num_experts=EXPERTS, shared_expert_intermediate_size=24, **_MOE),
        moe_layers=tuple(_ALL),
        moe_linears=_ATTN
        + tuple(f"mlp.shared_expert.{p}_proj" for p in ("gate", "up", "down"))
        + ("mlp.shared_expert_gate",),
        fused_weights=_QWEN_FUSED,
    ),
    Arch(
        "qwen3_moe",
        dict(_BASE, num_experts=EXPERTS, head_dim=8, **_MOE),
        moe_layers=tuple(_ALL),
        moe_linears=_ATTN,
        fused_weights=_QWEN_FUSED,
    ),
    Arch("gemma2", dict(_BASE, head_dim=8, query_pre_attn_scalar=8, sliding_window=16), dense_linears=_LLAMA_LINEARS),
    Arch(
        "gemma3_text", dict(_BASE, head_dim=8, query_pre_attn_scalar=8, sliding_window=16), dense_linears=_LLAMA_LINEARS
    ),
    Arch(
        "phi3",
        dict(_BASE, pad_token_id=0, bos_token_id=1, eos_token_id=2),
        dense_linears=("self_attn.o_proj", "self_attn.qkv_proj", "mlp.gate_up_proj", "mlp.down_proj"),
    ),
    Arch(
        "gpt2",
        dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=4, vocab_size=VOCAB, n_positions=64, bos_token_id=0, eos_token_id=0),
        blocks_name="transformer.h",
        attention_name="attn",
        dense_linears=("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"),
        norm_name="transformer.ln_f",
    ),
    Arch(
        "gpt_neox",
        dict(_BASE, num_key_value_heads=4),
        blocks_name="gpt_neox.layers",
        attention_name="attention",
        dense_linears=("attention.query_key_value", "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"),
        norm_name="gpt_neox.final_layer_norm",
    ),
    Arch(
        "olmoe",
        dict(_BASE, num_experts=EXPERTS, num_experts_per_tok=TOP_K, pad_token_id=0, eos_token_id=1),
        moe_layers=tuple(_ALL),
        moe_linears=_ATTN,
        fused_weights=_MIXTRAL_FUSED,
    ),
    Arch(
        "deepseek_v3",
        dict(
            _BASE,
            num_key_value_heads=4,
            n_routed_experts=EXPERTS,
            n_shared_experts=1,
            first_k_dense_replace=1,  # block 0 dense, blocks 1.. MoE
            n_group=1,
            topk_group=1,
            kv_lora_rank=8,
            q_lora_rank=16,
            qk_rope_head_dim=4,
            qk_nope_head_dim=4,
            v_head_dim=8,
            **_MOE,
        ),
        moe_layers=(1, 2),
        dense_linears=("self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa")
        + ("self_attn.kv_b_proj", "self_attn.o_proj")
        + tuple(f"mlp.{p}_proj" for p in ("gate", "up", "down")),
        moe_linears=("self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa")
        + ("self_attn.kv_b_proj", "self_attn.o_proj")
        + tuple(f"mlp.shared_experts.{p}_proj" for p in ("gate", "up", "down")),
        fused_weights=_QWEN_FUSED,
    ),
    Arch(
        "gpt_oss",
        dict(_BASE, num_local_experts=EXPERTS, num_experts_per_tok=TOP_K, head_dim=8, sliding_window=16),
        moe_layers=tuple(_ALL),
        moe_linears=_ATTN,
        fused_weights={
            "mlp.experts.gate_up_proj": (EXPERTS, HIDDEN, 2 * INTER),
            "mlp.experts.down_proj": (EXPERTS, INTER, HIDDEN),
        },
        transposed=True,
    ),
]

# Related decoders of the same families that transformers ships (generic checks: no pinned linear names).
_MLA = dict(kv_lora_rank=8, q_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8)
_DEEPSEEK = dict(
    _BASE,
    num_key_value_heads=4,
    n_routed_experts=EXPERTS,
    n_shared_experts=1,
    first_k_dense_replace=1,
    n_group=1,
    topk_group=1,
    **_MLA,
    **_MOE,
)
_HYBRID_LAYERS = ["linear_attention", "linear_attention", "full_attention"]
_HYBRID = dict(
    _BASE,
    head_dim=8,
    layer_types=_HYBRID_LAYERS,
    linear_num_value_heads=4,
    linear_num_key_heads=2,
    linear_key_head_dim=8,
    linear_value_head_dim=8,
)
_HYBRID_ATTENTION = ("linear_attn", "linear_attn", "self_attn")
_NO_LINEARS = dict(check_linears=False)
RELATED = [
    Arch("gemma", dict(_BASE, head_dim=8), **_NO_LINEARS),
    Arch(
        "gemma4_text",
        dict(
            _BASE,
            head_dim=8,
            global_head_dim=8,
            vocab_size_per_layer_input=VOCAB,
            hidden_size_per_layer_input=8,
            sliding_window=16,
        ),
        **_NO_LINEARS,
    ),
    Arch("phi", dict(_BASE, num_key_value_heads=4), norm_name="model.final_layernorm", **_NO_LINEARS),
    Arch(
        "phimoe",
        dict(_BASE, num_local_experts=EXPERTS, num_experts_per_tok=TOP_K),
        moe_layers=tuple(_ALL),
        **_NO_LINEARS,
    ),
    Arch("olmo", _BASE, **_NO_LINEARS),
    Arch("olmo2", _BASE, **_NO_LINEARS),
    Arch("olmo3", dict(_BASE, sliding_window=16), **_NO_LINEARS),
    Arch(
        "flex_olmo",
        dict(_BASE, num_experts=EXPERTS, num_experts_per_tok=TOP_K, pad_token_id=0),
        moe_layers=tuple(_ALL),
        **_NO_LINEARS,
    ),
    Arch("olmo_hybrid", dict(_BASE, head_dim=8, pad_token_id=0), attention_name=_HYBRID_ATTENTION, **_NO_LINEARS),
    Arch("deepseek_v2", _DEEPSEEK, moe_layers=(1, 2), **_NO_LINEARS),
    Arch("deepseek_v32", _DEEPSEEK, moe_layers=(1, 2), **_NO_LINEARS),
    Arch(
        "llama4_text",
        dict(
            _BASE,
            head_dim=8,
            num_local_experts=EXPERTS,
            num_experts_per_tok=1,
            intermediate_size_mlp=INTER,
            interleave_moe_layer_step=1,
        ),
        moe_layers=tuple(_ALL),
        mlp_name="feed_forward",
        top_k=1,
        transposed=True,
        **_NO_LINEARS,
    ),
    Arch(
        "qwen3_next",
        dict(_HYBRID, num_experts=EXPERTS, shared_expert_intermediate_size=24, **_MOE),
        moe_layers=tuple(_ALL),
        attention_name=_HYBRID_ATTENTION,
        **_NO_LINEARS,
    ),
    Arch("qwen3_5_text", _HYBRID, attention_name=_HYBRID_ATTENTION, **_NO_LINEARS),
    Arch(
        "qwen3_5_moe_text",
        dict(_HYBRID, num_experts=EXPERTS, shared_expert_intermediate_size=24, **_MOE),
        moe_layers=tuple(_ALL),
        attention_name=_HYBRID_ATTENTION,
        **_NO_LINEARS,
    ),
    Arch(
        "gpt_neox_japanese",
        dict(_BASE, num_key_value_heads=4),
        blocks_name="gpt_neox_japanese.layers",
        attention_name="attention",
        norm_name="gpt_neox_japanese.final_layer_norm",
        lm_head_name="embed_out",
        **_NO_LINEARS,
    ),
]
ALL_ARCHS = ARCHS + RELATED
_MOE_ARCHS = [a for a in ALL_ARCHS if a.moe_layers]


def _build(arch: Arch) -> nn.Module:
    try:
        config = transformers.AutoConfig.for_model(arch.model_type, **arch.config)
    except (ValueError, KeyError):
        pytest.skip(f"installed transformers {transformers.__version__} has no architecture {arch.model_type}")
    return transformers.AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module")
def built() -> dict[str, nn.Module]:
    return {}


def _model(arch: Arch, built: dict[str, nn.Module]) -> nn.Module:
    if arch.model_type not in built:
        torch.manual_seed(0)
        built[arch.model_type] = _build(arch)
    return built[arch.model_type]


@pytest.mark.parametrize("arch", ALL_ARCHS, ids=[a.model_type for a in ALL_ARCHS])
def test_structure(arch: Arch, built):
    model = _model(arch, built)
    anatomy = inspect_model(model)

    assert anatomy.architecture == arch.model_type
    assert anatomy.num_layers == LAYERS and len(anatomy.layers) == LAYERS
    assert anatomy.hidden_size == HIDDEN and anatomy.vocab_size == VOCAB
    blocks = model.get_submodule(arch.blocks_name)
    assert anatomy.blocks_name == arch.blocks_name
    assert len(anatomy.blocks) == LAYERS and all(a is b for a, b in zip(anatomy.blocks, blocks))
    assert anatomy.decoder is model.get_submodule(arch.blocks_name.rpartition(".")[0])
    assert anatomy.final_norm is model.get_submodule(arch.norm_name)
    assert anatomy.lm_head is model.get_submodule(arch.lm_head_name)
    assert anatomy.embeddings is model.get_input_embeddings()
    assert anatomy.block_devices == [torch.device("cpu")] * LAYERS

    assert anatomy.is_moe == bool(arch.moe_layers)
    summary = anatomy.describe()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["num_layers"] == LAYERS and summary["moe_layers"] == list(arch.moe_layers)
    assert summary["block_devices"] == ["cpu"] * LAYERS and summary["fused_experts"] == bool(arch.moe_layers)
    assert anatomy.moe_layer_indices == list(arch.moe_layers)
    assert anatomy.num_experts == (EXPERTS if arch.moe_layers else 0)
    assert anatomy.num_experts_per_tok == (arch.top_k if arch.moe_layers else 0)

    for layer in anatomy.layers:
        assert layer.block is blocks[layer.index] and layer.name == f"{arch.blocks_name}.{layer.index}"
        attention_name = arch.attention_name
        if isinstance(attention_name, tuple):
            attention_name = attention_name[layer.index]
        assert layer.attention_name == attention_name and layer.mlp_name == arch.mlp_name
        assert layer.attention is layer.block.get_submodule(attention_name)
        assert layer.mlp is layer.block.get_submodule(arch.mlp_name)
        assert layer.device == torch.device("cpu")
        moe = layer.index in arch.moe_layers
        if arch.check_linears:
            rel = arch.moe_linears if moe else arch.dense_linears
            assert sorted(layer.linear_modules) == sorted(f"{layer.name}.{n}" for n in rel)
        assert layer.linear_modules and all(
            n.startswith(f"{layer.name}.{attention_name}.") for n in layer.attention_linear_names()
        )
        for name, module in layer.linear_modules.items():
            assert model.get_submodule(name) is module
            assert isinstance(module, nn.Linear) or is_transposed_linear(module)
        if not moe:
            assert layer.router is None and layer.experts is None and not layer.fused_experts
            assert layer.num_experts == 0 and layer.fused_expert_weights == {}
            continue
        assert layer.num_experts == EXPERTS and layer.num_experts_per_tok == arch.top_k
        assert layer.router.weight.shape == (EXPERTS, HIDDEN)
        assert layer.router in list(layer.mlp.children()) and layer.experts in list(layer.mlp.children())
        if not _TRANSFORMERS_5 and not layer.fused_experts:  # transformers 4: one module per expert
            assert len(layer.expert_modules) == EXPERTS and layer.fused_expert_weights == {}
            continue
        # transformers 5 implements every MoE family here with fused 3-D expert weights.
        assert layer.fused_experts and layer.expert_modules == []
        assert layer.experts_transposed == arch.transposed
        if arch.fused_weights:
            want = {f"{layer.name}.{n}": shape for n, shape in arch.fused_weights.items()}
            assert layer.fused_expert_weights == want
        experts_prefix = f"{layer.name}.{arch.mlp_name}.experts."
        assert layer.fused_expert_weights and all(n.startswith(experts_prefix) for n in layer.fused_expert_weights)
        for name, shape in layer.fused_expert_weights.items():
            assert tuple(model.get_parameter(name).shape) == shape and shape[0] == EXPERTS
        # Per-expert matrices: hidden is the input of gate/up and the output of down, in either layout.
        down = next(shape for name, shape in layer.fused_expert_weights.items() if "down" in name)
        assert down[2 if layer.experts_transposed else 1] == HIDDEN


@pytest.mark.parametrize("arch", ALL_ARCHS, ids=[a.model_type for a in ALL_ARCHS])
def test_block_hooks_match_hidden_states(arch: Arch, built):
    """A hook on block l sees hidden_states[l+1]; the last entry may carry the final norm."""
    model = _model(arch, built)
    anatomy = inspect_model(model)
    seen: dict[int, torch.Tensor] = {}
    handles = [
        block.register_forward_hook(lambda _m, _a, out, l=l: seen.__setitem__(l, block_output_hidden(out)))
        for l, block in enumerate(anatomy.blocks)
    ]
    ids = torch.randint(0, VOCAB, (2, 7))
    try:
        with torch.no_grad():
            hidden_states = model(ids, output_hidden_states=True).hidden_states
    finally:
        for h in handles:
            h.remove()
    assert len(hidden_states) == LAYERS + 1
    for l in range(LAYERS - 1):
        assert anatomy.hidden_states_index_to_block(l + 1) == l
        assert torch.equal(seen[l], hidden_states[anatomy.block_to_hidden_states_index(l)])
    last = seen[LAYERS - 1]
    if torch.equal(last, hidden_states[-1]):
        return  # this architecture reports the pre-norm state
    # transformers 5 reports hidden_states[L] after the final norm: the anatomy's final_norm must reproduce it.
    with torch.no_grad():
        assert torch.equal(anatomy.final_norm(last), hidden_states[-1])


@pytest.mark.parametrize("arch", _MOE_ARCHS, ids=[a.model_type for a in _MOE_ARCHS])
def test_router_and_fused_expert_gradients(arch: Arch, built):
    """The router sees every token; a backward reaches the named 3-D expert weights (what SPIN needs)."""
    model = _model(arch, built)
    anatomy = inspect_model(model)
    layer = anatomy.layers[arch.moe_layers[-1]]
    tokens: list[int] = []
    handle = layer.router.register_forward_hook(
        lambda _m, args, _o: tokens.append(args[0].reshape(-1, HIDDEN).shape[0])
    )
    model.zero_grad(set_to_none=True)
    ids = torch.randint(0, VOCAB, (2, 9))
    try:
        model(ids, labels=ids).loss.backward()
    finally:
        handle.remove()
    assert tokens == [2 * 9]
    for name, shape in layer.fused_expert_weights.items():
        grad = model.get_parameter(name).grad
        assert grad is not None and tuple(grad.shape) == shape and grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_every_listed_family_is_known_to_transformers():
    """Only GPT-OSS (transformers >= 4.55) may be absent; the others predate the supported range."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    missing = [a.model_type for a in ARCHS if a.model_type not in CONFIG_MAPPING_NAMES]
    # GPT-OSS is the only optional one (added in transformers 4.55); the rest predate the supported range.
    assert set(missing) <= {"gpt_oss"}, f"missing architectures: {missing}"


def test_multimodal_wrapper_finds_the_text_decoder():
    """Gemma 3 with its vision tower (as 4B+ checkpoints ship): the vision encoder's layer list is never taken."""
    config = transformers.Gemma3Config(
        text_config=dict(_BASE, head_dim=8, vocab_size=300, sliding_window=16, query_pre_attn_scalar=8),
        vision_config=dict(
            hidden_size=16,
            num_hidden_layers=LAYERS,
            num_attention_heads=2,
            intermediate_size=24,
            image_size=28,
            patch_size=14,
        ),
        mm_tokens_per_image=4,
        image_token_index=299,
        boi_token_index=297,
        eoi_token_index=298,
    )
    model = transformers.AutoModelForImageTextToText.from_config(config).eval()
    anatomy = inspect_model(model)
    assert anatomy.architecture == "gemma3" and anatomy.blocks_name == "model.language_model.layers"
    assert anatomy.num_layers == LAYERS and anatomy.hidden_size == HIDDEN and anatomy.vocab_size == 300
    assert anatomy.final_norm is model.model.language_model.norm and anatomy.lm_head is model.lm_head
    seen = {}
    handles = [
        b.register_forward_hook(lambda _m, _a, out, l=l: seen.__setitem__(l, block_output_hidden(out)))
        for l, b in enumerate(anatomy.blocks)
    ]
    with torch.no_grad():
        hidden_states = model(input_ids=torch.randint(0, 290, (2, 7)), output_hidden_states=True).hidden_states
    for h in handles:
        h.remove()
    assert all(torch.equal(seen[l], hidden_states[l + 1]) for l in range(LAYERS - 1))


# ---------------------------------------------------------------- layer indices


def test_layer_index_and_hidden_state_indices(built):
    anatomy = inspect_model(_model(ARCHS[0], built))
    assert [anatomy.layer_index(l) for l in range(-LAYERS, LAYERS)] == [0, 1, 2, 0, 1, 2]
    for bad in (LAYERS, -LAYERS - 1, 100):
        with pytest.raises(LayerIndexError, match="LlamaForCausalLM"):
            anatomy.layer_index(bad)
    assert issubclass(LayerIndexError, IndexError) and issubclass(LayerIndexError, DeepSightError)
    with pytest.raises(TypeError):
        anatomy.layer_index(1.0)
    assert [anatomy.hidden_states_index_to_block(i) for i in range(LAYERS + 1)] == [None, 0, 1, 2]
    assert anatomy.hidden_states_index_to_block(-1) == LAYERS - 1
    assert anatomy.hidden_states_index_to_block(-(LAYERS + 1)) is None
    with pytest.raises(IndexError):
        anatomy.hidden_states_index_to_block(LAYERS + 1)
    assert anatomy.block_to_hidden_states_index(-1) == LAYERS
    assert list(anatomy.linear_modules([-1])) == list(anatomy.layers[-1].linear_modules)
    assert len(anatomy.linear_modules()) == LAYERS * len(_LLAMA_LINEARS)


def test_conv1d_is_reported_as_transposed_linear(built):
    anatomy = inspect_model(_model(next(a for a in ARCHS if a.model_type == "gpt2"), built))
    modules = list(anatomy.layers[0].linear_modules.values())
    assert modules and all(is_transposed_linear(m) for m in modules)
    c_fc = anatomy.layers[0].linear_modules["transformer.h.0.mlp.c_fc"]
    assert c_fc.weight.shape == (HIDDEN, 4 * HIDDEN)  # (in, out)


def test_block_output_hidden():
    x = torch.randn(2, 3)
    assert block_output_hidden(x) is x and block_output_hidden((x, None)) is x
    with pytest.raises(TypeError):
        block_output_hidden({"h": x})


# ---------------------------------------------------------------- per-expert modules and unknown models


class _ToyExpert(nn.Module):
    def __init__(self, hidden: int, inter: int):
        super().__init__()
        self.w1, self.w2 = nn.Linear(hidden, inter, bias=False), nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.w2(torch.relu(self.w1(x)))


class _ToyMoe(nn.Module):
    """Pre-transformers-5 Mixtral layout: an nn.Linear gate and a ModuleList of experts."""

    def __init__(self, hidden: int, experts: int, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(hidden, experts, bias=False)
        self.experts = nn.ModuleList(_ToyExpert(hidden, 5) for _ in range(experts))


class _ToyBlock(nn.Module):
    def __init__(self, hidden: int, moe: bool):
        super().__init__()
        self.self_attn = nn.Linear(hidden, hidden)
        self.block_sparse_moe = _ToyMoe(hidden, 3, 1) if moe else _ToyExpert(hidden, 7)


class _ToyModel(nn.Module):
    def __init__(self, layers: int = 2, hidden: int = 8, moe: bool = True):
        super().__init__()
        self.config = types.SimpleNamespace(
            num_hidden_layers=layers, hidden_size=hidden, vocab_size=11, model_type="toy"
        )
        self.embed = nn.Embedding(11, hidden)
        self.layers = nn.ModuleList(_ToyBlock(hidden, moe) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)


def test_per_expert_module_list():
    model = _ToyModel()
    anatomy = inspect_model(model)
    assert anatomy.decoder is model and anatomy.blocks_name == "layers" and anatomy.final_norm is model.ln_f
    assert anatomy.embeddings is None and anatomy.lm_head is None and anatomy.vocab_size == 11
    layer = anatomy.layers[1]
    moe = model.layers[1].block_sparse_moe
    assert layer.mlp is moe and layer.router is moe.gate and layer.experts is moe.experts
    assert not layer.fused_experts and layer.expert_modules == list(moe.experts) and layer.fused_expert_weights == {}
    assert layer.num_experts == 3 and layer.num_experts_per_tok == 1
    want = ["layers.1.self_attn", "layers.1.block_sparse_moe.gate"]
    want += [f"layers.1.block_sparse_moe.experts.{e}.w{i}" for e in range(3) for i in (1, 2)]
    assert list(layer.linear_modules) == want


def test_expert_count_equal_to_layer_count_picks_the_blocks():
    model = _ToyModel(layers=3)
    for block in model.layers:  # three experts per block, as many as blocks
        assert len(block.block_sparse_moe.experts) == 3
    assert inspect_model(model).blocks_name == "layers"


def test_sibling_list_of_equal_length_is_not_taken_for_the_blocks():
    model = _ToyModel(layers=2)
    model.norms = nn.ModuleList(nn.LayerNorm(8) for _ in range(2))  # same depth and length as the blocks
    model.layers = model._modules.pop("layers")  # registered after the norms: order alone would pick the norms
    anatomy = inspect_model(model)
    assert anatomy.blocks_name == "layers" and anatomy.blocks == list(model.layers)


def test_unrecognised_models_name_the_class():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = types.SimpleNamespace(num_hidden_layers=2, hidden_size=4)
            self.body = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))

    with pytest.raises(UnsupportedModelError, match="Plain.*ModuleList"):
        inspect_model(Plain())
    with pytest.raises(UnsupportedModelError, match="no .config"):
        inspect_model(nn.Linear(2, 2))

    model = _ToyModel()
    model.layers[0].block_sparse_moe = None
    with pytest.raises(UnsupportedModelError, match=r"_ToyModel: block layers\.0 .*MLP"):
        inspect_model(model)

    model = _ToyModel()
    model.layers[1].block_sparse_moe.gate = nn.Linear(8, 2)  # router width disagrees with the 3 experts
    with pytest.raises(UnsupportedModelError, match="3 experts but no router"):
        inspect_model(model)


# ---------------------------------------------------------------- devices under sharding


def test_block_devices_under_dispatch_with_disk_offload(built):
    """Blocks offloaded by accelerate keep meta weights but compute on the hook's execution device."""
    accelerate = pytest.importorskip("accelerate")
    arch = ARCHS[0]
    torch.manual_seed(0)
    model = _build(arch)
    ids = torch.randint(0, VOCAB, (1, 6))
    with torch.no_grad():
        reference = model(ids, output_hidden_states=True).hidden_states
    device_map = {
        "model.embed_tokens": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "model.layers.2": "disk",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
    }
    with tempfile.TemporaryDirectory() as offload_dir:
        model = accelerate.dispatch_model(model, device_map=device_map, main_device="cpu", offload_dir=offload_dir)
        assert next(model.model.layers[2].parameters()).device.type == "meta"
        anatomy = inspect_model(model)
        assert anatomy.block_devices == [torch.device("cpu")] * LAYERS
        seen = {}
        handle = anatomy.blocks[1].register_forward_hook(
            lambda _m, _a, out: seen.setdefault(1, block_output_hidden(out))
        )
        with torch.no_grad():
            hidden_states = model(ids, output_hidden_states=True).hidden_states
        handle.remove()
    assert torch.equal(seen[1], hidden_states[2])  # the hook saw the very tensor the model reports
    # a reload may align weights differently, and some BLAS builds then round differently
    torch.testing.assert_close(hidden_states[2], reference[2], rtol=1e-5, atol=1e-6)


def test_block_devices_when_loaded_with_a_device_map(tmp_path):
    """from_pretrained with a per-block device map (CPU + disk offload): every block reports where it runs."""
    torch.manual_seed(0)
    model = _build(ARCHS[0])
    model.save_pretrained(tmp_path / "tiny")
    ids = torch.randint(0, VOCAB, (1, 6))
    with torch.no_grad():
        reference = model(ids).logits
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk"}
    device_map |= {"model.layers.2": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "tiny", device_map=device_map, offload_folder=str(tmp_path / "offload")
    ).eval()
    assert [next(b.parameters()).device.type for b in loaded.model.layers] == ["cpu", "meta", "meta"]
    anatomy = inspect_model(loaded)
    assert anatomy.block_devices == [torch.device("cpu")] * LAYERS
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, reference, rtol=1e-5, atol=1e-6)  # BLAS may round apart


def test_block_devices_follow_weights(built):
    model = _build(ARCHS[0])
    model.model.layers[2].to("meta")  # as a half-materialised shard would look
    assert inspect_model(model).block_devices == [torch.device("cpu")] * 2 + [torch.device("meta")]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_block_devices_split_between_cuda_and_cpu():
    """Weights placed per block report their device; accelerate's "cpu" entries are offload run on the GPU."""
    accelerate = pytest.importorskip("accelerate")
    model = _build(ARCHS[0])
    ids = torch.randint(0, VOCAB, (1, 6))
    with torch.no_grad():
        reference = model(ids, output_hidden_states=True).hidden_states

    placed = _build(ARCHS[0]).to("cuda")
    placed.model.layers[2].to("cpu")  # a hand-made split without hooks: the weights decide
    cuda = torch.device("cuda", torch.cuda.current_device())
    assert inspect_model(placed).block_devices == [cuda, cuda, torch.device("cpu")]

    device_map = {"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": 0, "model.layers.2": "cpu"}
    device_map |= {"model.norm": 0, "model.rotary_emb": 0, "lm_head": 0}
    model = accelerate.dispatch_model(model, device_map=device_map)
    assert next(model.model.layers[2].parameters()).device.type == "meta"  # CPU offload: weights stream in
    anatomy = inspect_model(model)
    assert anatomy.block_devices == [torch.device("cuda", 0)] * LAYERS
    seen = {}
    handles = [
        b.register_forward_hook(lambda _m, _a, out, l=l: seen.__setitem__(l, block_output_hidden(out)))
        for l, b in enumerate(anatomy.blocks)
    ]
    with torch.no_grad():
        hidden_states = model(ids.to("cuda"), output_hidden_states=True).hidden_states
    for h in handles:
        h.remove()
    assert [seen[l].device for l in range(LAYERS)] == anatomy.block_devices
    for l in range(LAYERS - 1):
        assert torch.equal(seen[l], hidden_states[l + 1])
        torch.testing.assert_close(hidden_states[l + 1].cpu(), reference[l + 1], rtol=1e-4, atol=1e-5)
