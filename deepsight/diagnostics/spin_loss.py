"""SPIN's loss through the LM head in chunks of positions, with its input gradient made on the way.

SPIN's loss is the sum over samples of each sample's mean next-token cross-entropy over its response
tokens. Computed the plain way, the head writes (B, T', V) logits for every kept position (prompt
positions of the batch's other rows and padding included), cross-entropy makes two more tensors of
that size, and the backward a third: for SmolLM2 (V = 49,152) at 1024 tokens a batch, ~200 MB each,
fresh pages every batch. ``response_loss`` instead takes the final hidden states of the response
positions only (N, d) and walks them in chunks (one reused buffer): logits, log-sum-exp, the loss terms and,
since the loss is a plain weighted sum, the gradient (softmax - onehot) * w @ W of each chunk at once
(the fused linear cross-entropy of Liger-Kernel); the backward only scales that by the incoming
gradient. The head's weights are frozen here (SPIN's ``GradCapture`` freezes every parameter).

``plain_head(model)`` says whether the head is a plain ``nn.Linear`` the chunks may use; the caller
also checks each batch that the model's own logits at one position equal that linear map (a model
that scales or soft-caps its logits after the head then keeps the plain path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepsight.diagnostics._buffers import reused_buffer

CHUNK_BYTES = 256 << 20  # logits per chunk: a batch's response positions at once for V ~ 50k (each chunk
# streams the head's weights twice, so small chunks cost more than they save)


def plain_head(model: nn.Module) -> nn.Linear | None:
    """The model's output head when it is an ``nn.Linear`` with frozen parameters, else None."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, nn.Linear) or any(p.requires_grad for p in head.parameters()):
        return None
    return head


class _HeadCrossEntropy(torch.autograd.Function):
    """sum_n w_n * CE(h_n W^T + b, y_n) for h (N, d); the gradient wrt h is made in the forward pass."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, row_weight, chunk: int):  # noqa: D102
        n = h.shape[0]
        dtype = torch.promote_types(h.dtype, torch.float32)  # fp32 at least, fp64 stays fp64
        loss = torch.zeros((), dtype=dtype, device=h.device)
        grad = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            if weight.dtype == dtype:  # into the reused buffer
                logits = reused_buffer("spin_logits", (e - s) * weight.shape[0], h.device, dtype).view(e - s, -1)
                torch.matmul(h[s:e], weight.t(), out=logits)
                if bias is not None:
                    logits += bias
            else:  # low-precision head: its logits, upcast (as the plain path does)
                logits = F.linear(h[s:e], weight, bias).to(dtype)  # (c, V)
            # log-sum-exp and softmax in place in the buffer: torch.logsumexp makes two temporaries of the
            # chunk's size (x - max, then exp), fresh pages every chunk (~155 MB each at 800 positions)
            y = targets[s:e]
            w = row_weight[s:e].to(dtype)
            top = logits.amax(dim=-1, keepdim=True)  # (c, 1)
            target_logit = logits.gather(1, y[:, None]).squeeze(1)  # (c,)
            p = logits.sub_(top).exp_()  # exp(z - max)
            total = p.sum(dim=-1, keepdim=True)  # (c, 1)
            lse = (top + total.log()).squeeze(1)  # (c,)
            loss += ((lse - target_logit) * w).sum()
            if grad is not None:
                p.div_(total)  # softmax
                p[torch.arange(e - s, device=p.device), y] -= 1.0
                p.mul_(w[:, None])
                grad[s:e] = (p.to(weight.dtype) @ weight).to(h.dtype)
        ctx.save_for_backward(grad if grad is not None else h.new_empty(0))
        return loss

    @staticmethod
    def backward(ctx, grad_loss):  # noqa: D102
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype), None, None, None, None, None


def response_loss(
    hidden: torch.Tensor, head: nn.Linear, ids: torch.Tensor, n_prompt: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Sum over rows of the mean next-token cross-entropy over each row's response tokens.

    ``hidden`` (S, T, d) final hidden states (the head's input) of the right-padded ``ids`` (S, T); the
    target of position t is ids[t + 1], counted when n_prompt <= t + 1 < length (``per_sample_loss``'s
    rule). Equals ``per_sample_loss(head(hidden), ids, n_prompt, lengths).sum()`` (rows without response
    tokens, which SPIN skips before batching, add nothing here)."""
    s, t, _ = hidden.shape
    pos = torch.arange(t - 1, device=ids.device)  # positions with a next token
    tgt = pos + 1
    valid = (tgt[None, :] >= n_prompt[:, None]) & (tgt[None, :] < lengths[:, None])  # (S, T - 1)
    rows, cols = valid.nonzero(as_tuple=True)
    counts = valid.sum(1)  # (S,) response tokens per row
    row_weight = 1.0 / counts.to(torch.float64).clamp_min(1)[rows]  # each row's mean
    targets = ids[rows, cols + 1]
    h = hidden[rows.to(hidden.device), cols.to(hidden.device)]  # (N, d)
    chunk = max(1, CHUNK_BYTES // (4 * head.weight.shape[0]))
    return _HeadCrossEntropy.apply(h, head.weight, head.bias, targets.to(h.device), row_weight.to(h.device), chunk)
