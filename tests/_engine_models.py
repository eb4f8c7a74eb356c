"""Tiny random-weight models for the capture/statistics tests (no download)."""

from __future__ import annotations

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    Qwen2MoeConfig,
    Qwen2MoeForCausalLM,
)


def tiny_llama(layers: int = 4, hidden: int = 48, vocab: int = 101, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab, initializer_range=0.2,
                      max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg).eval()


def tiny_mixtral(layers: int = 3, hidden: int = 32, vocab: int = 97, seed: int = 0) -> MixtralForCausalLM:
    torch.manual_seed(seed)
    cfg = MixtralConfig(hidden_size=hidden, intermediate_size=48, num_hidden_layers=layers, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=vocab, num_local_experts=4, num_experts_per_tok=2,
                        initializer_range=0.2, max_position_embeddings=128, pad_token_id=0)
    return MixtralForCausalLM(cfg).eval()


def tiny_qwen2_moe(layers: int = 2, hidden: int = 32, vocab: int = 97, seed: int = 0) -> Qwen2MoeForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen2MoeConfig(hidden_size=hidden, intermediate_size=48, moe_intermediate_size=24,
                         shared_expert_intermediate_size=32, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=vocab, num_experts=4, num_experts_per_tok=2,
                         initializer_range=0.2, max_position_embeddings=128, pad_token_id=0,
                         decoder_sparse_step=1, mlp_only_layers=[])
    return Qwen2MoeForCausalLM(cfg).eval()


def random_seqs(lengths: list[int], vocab: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]
