"""Tiny random-weight models and a character-level chat tokenizer for the X-Boundary / TELLME tests; a free
loopback port for the gloo tests."""

from __future__ import annotations

import socket

import torch
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerFast

from deepsight.data.labeled_chats import LabeledChat

CHAT_TEMPLATE = "{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }}\n{% endfor %}"


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character (others -> unk); a BOS token added by default."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors

    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {"<unk>": 0, "<pad>": 1, "<s>": 2, "</s>": 3}
    vocab.update({c: i + 4 for i, c in enumerate(chars)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>")
    out.chat_template = CHAT_TEMPLATE
    return out


VOCAB = 4 + 96


def tiny_llama(layers: int = 4, dtype=torch.float64) -> LlamaForCausalLM:
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=24, intermediate_size=40, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaForCausalLM(cfg).to(dtype).eval()


def tiny_moe(layers: int = 3, dtype=torch.float64) -> MixtralForCausalLM:
    cfg = MixtralConfig(vocab_size=VOCAB, hidden_size=24, intermediate_size=32, num_hidden_layers=layers,
                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                        max_position_embeddings=512)
    model = MixtralForCausalLM(cfg).to(dtype).eval()
    model.config._experts_implementation = "eager"  # torch's grouped_mm has no float64 kernel
    return model


def random_chats(n: int, num_classes: int, gen: torch.Generator, max_len: int = 40) -> list[LabeledChat]:
    """Chats of random printable text with varied lengths; labels cycle through the classes."""
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ.,?!0123456789"

    def text(lo: int, hi: int) -> str:
        k = int(torch.randint(lo, hi, (1,), generator=gen))
        idx = torch.randint(0, len(alphabet), (k,), generator=gen)
        return "".join(alphabet[i] for i in idx.tolist())

    chats = []
    for i in range(n):
        msgs = [{"role": "user", "content": text(1, max_len)}, {"role": "assistant", "content": text(1, max_len)}]
        chats.append(LabeledChat(msgs, i % num_classes, "synthetic", i))
    return chats


def _first(o):
    return o[0] if isinstance(o, tuple) else o


@torch.no_grad()
def reference_states(model, tokenizer, chats, add_special_tokens: bool, max_length: int | None = None):
    """Per chat, batch 1, no padding: the tuple of all HF hidden states (each (T, d), float64) and,
    via hooks, every block's raw output (the last block's before the final norm)."""
    blocks = model.model.layers
    out = []
    for c in chats:
        text = tokenizer.apply_chat_template(c.messages, tokenize=False, add_generation_prompt=False)
        ids = tokenizer(text, add_special_tokens=add_special_tokens, truncation=max_length is not None,
                        max_length=max_length)["input_ids"]
        raw: dict[int, torch.Tensor] = {}
        hs = [b.register_forward_hook(lambda m, i, o, k=k, raw=raw: raw.__setitem__(k, _first(o)))
              for k, b in enumerate(blocks)]
        try:
            res = model(torch.tensor([ids]), output_hidden_states=True)
        finally:
            for h in hs:
                h.remove()
        out.append(([h[0].double() for h in res.hidden_states], [raw[k][0].double() for k in range(len(blocks))]))
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a gloo process group's init_method)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
