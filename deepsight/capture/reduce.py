"""Token reductions of (B, T, D) states under a (B, T) validity mask (1 = real token)."""

from __future__ import annotations

import torch


def last_valid_index(mask: torch.Tensor | None, batch: int, length: int, device: torch.device) -> torch.Tensor:
    """(B,) position of each row's last valid token (right or left padding); 0 for an all-pad row."""
    if mask is None:
        return torch.full((batch,), length - 1, dtype=torch.long, device=device)
    pos = torch.arange(length, device=mask.device)
    return torch.where(mask.bool(), pos, -1).amax(1).clamp_min(0)


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, D) float32 sum_t m_t h_t / max(sum_t m_t, 1e-9) (an all-pad row gives zeros)."""
    hf = h.float()
    if mask is None:
        return hf.mean(1)
    m = mask.to(torch.float32)  # (B, T)
    return torch.einsum("btd,bt->bd", hf, m) / m.sum(1, keepdim=True).clamp_min(1e-9)


def last_token(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, D) state of each row's last valid token, in the activation dtype."""
    b, t = h.shape[:2]
    idx = last_valid_index(mask, b, t, h.device)
    return h[torch.arange(b, device=h.device), idx]


def valid_tokens(h: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every valid token: ((N, D) states, (N,) row index of each), rows in order."""
    b, t = h.shape[:2]
    if mask is None:
        rows = torch.arange(b, device=h.device).repeat_interleave(t)
        return h.reshape(b * t, -1), rows  # (B*T, D)
    keep = mask.bool()
    rows = torch.arange(b, device=h.device)[:, None].expand(b, t)[keep]
    return h[keep], rows
