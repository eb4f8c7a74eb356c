"""What a diagnostic asks the engine to capture: a site (module kind), layers and a token reduction.

Sites (module kinds inside decoder block l, found through ``ModelAnatomy``):

=================  ==========================================  =================
site               tensor                                      hooked on
=================  ==========================================  =================
hidden_states      HF ``hidden_states[i]``, layers = indices i  block i-1 / final norm
                   0..L (0 = embeddings, L = final norm output,
                   -1 = L)
block_output       hidden state leaving block l (HF ``hidden_states[l+1]``)  block (forward)
attention_output   self-attention output, before the residual   attention (forward)
mlp_input          input of the MLP / MoE block (after its norm) mlp (pre-forward)
mlp_output         output of the MLP / MoE block                mlp (forward)
router_logits      MoE router logits (B, T, E)                  router (forward)
expert_input       token states routed to each expert           experts (pre-forward)
expert_routing     the model's top-k ids, gate weights, logits  router + experts (capture/moe.py)
expert_output      the same + each chosen expert's output       router + experts (capture/moe.py)
=================  ==========================================  =================

Reductions over the tokens of a row (valid tokens = attention mask 1):
``mean`` (masked mean, float32), ``last`` (last valid token; right or left padding),
``all`` (every valid token, rows flattened), ``step`` (during generation: the last position of
each forward call, per row, skipping rows that already finished), ``none`` (the raw (B, T, D)
states and the mask, e.g. to feed a fused pooling kernel).
"""

from __future__ import annotations

from dataclasses import dataclass

from deepsight.errors import ConfigError

SITES = ("hidden_states", "block_output", "attention_output", "mlp_input", "mlp_output", "router_logits",
         "expert_input", "expert_routing", "expert_output")
REDUCTIONS = ("mean", "last", "all", "step", "none")


@dataclass(frozen=True)
class CaptureSpec:
    """``CaptureSpec("block_output", layers=[3, 7], reduce="mean")``; negative layers count from the end.

    ``name`` keys the sink when ``Capture`` gets a dict of sinks (default: the site)."""

    site: str
    layers: tuple[int, ...] | list[int] | int
    reduce: str = "mean"
    name: str | None = None

    def __post_init__(self):
        if self.site not in SITES:
            raise ConfigError(f"capture site {self.site!r} is not one of {SITES}")
        if self.reduce not in REDUCTIONS:
            raise ConfigError(f"capture reduce {self.reduce!r} is not one of {REDUCTIONS}")
        if self.site == "expert_input" and self.reduce not in ("all", "none"):
            raise ConfigError("expert_input supports reduce='all' (every routed valid token) or 'none'")
        if self.site in ("expert_routing", "expert_output") and self.reduce != "none":
            raise ConfigError(f"{self.site} gives every token of the call with its mask: use reduce='none'")
        layers = (self.layers,) if isinstance(self.layers, int) else tuple(int(x) for x in self.layers)
        if not layers:
            raise ConfigError(f"capture of {self.site!r} names no layers")
        object.__setattr__(self, "layers", layers)
        if self.name is None:
            object.__setattr__(self, "name", self.site)

    def resolved_layers(self, num_layers: int) -> tuple[int, ...]:
        """Layers as block indices 0..L-1 (negative counts from the end); out of range -> ConfigError."""
        n = num_layers + 1 if self.site == "hidden_states" else num_layers  # hidden_states: indices 0..L
        out = []
        for layer in self.layers:
            idx = layer + n if layer < 0 else layer
            if not 0 <= idx < n:
                what = "hidden_states index" if self.site == "hidden_states" else "layer"
                raise ConfigError(f"capture {self.name!r}: {what} {layer} outside a model with {num_layers} blocks")
            out.append(idx)
        return tuple(dict.fromkeys(out))
