"""HSIC normalised-CCA mutual information of MI-Peaks (spec section 4), exact and fast.

For a state x and the answer y (both length m = d) the d coordinates are d
paired scalar samples::

    K[i, j] = exp(-(v_i - v_j)^2 / (2 sigma^2)),  Kc = K H,  H = I - 11^T / m
    R = Kc (Kc + eps m I)^-1,                      MI(x, y) = tr(R_x R_y)

Routes, all float64:

- ``hsic_direct``: the formula literally (two inversions), the ground truth.
- ``HSICAnswer(y).mi(X)``: many states against one answer at once on X's device.
  R_y is prepared once. A 1-D Gaussian kernel with sigma = 50 over a range of
  width w is smooth on the scale of sigma, so Chebyshev interpolation in r nodes
  factors it as K ~= T A T^T (T[i, k] = T_k(s_i), the Chebyshev polynomials at
  the scaled values) to ~1e-13 with r small. With F = T A, G = H T,
  Kc = F G^T and Woodbury gives R = F M^-1 G^T, M = lam I + G^T F (lam = eps m), so
  ``tr(R_x R_y) = tr(M_x^-1 (G_x^T F_y) M_y^-1 (G_y^T F_x)) = tr(A_x M_x^-1 C Phi_y C^T)``
  with C = T_x^T H T_y and Phi_y = A_y M_y^-1 prepared once: O(m r^2) per state.
  The rank r is chosen per state from w / sigma by checking the interpolation
  error on a dense grid (cached); states whose rank is not small fall back to
  the direct route ``tr(R_y) - lam tr((Kc_x + lam I)^-1 R_y)`` (one solve).

Usage::

    est = HSICAnswer(y, sigma=50.0, eps=1e-5)
    mi = est.mi(states)          # (B,) float64, states (B, d)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from deepsight.diagnostics._buffers import reused_buffer

# Max |K - T A T^T| accepted for the low-rank route (K entries are <= 1); gives MI within ~1e-8 relative.
INTERP_TOL = 1e-11


def gaussian_kernel(v: torch.Tensor, sigma: float) -> torch.Tensor:
    """(..., m) -> (..., m, m) with exp(-(v_i - v_j)^2 / (2 sigma^2)), in v's dtype."""
    diff = v.unsqueeze(-1) - v.unsqueeze(-2)  # (..., m, m)
    return torch.exp(-(diff * diff) / (2.0 * sigma * sigma))


def _centre_right(k: torch.Tensor) -> torch.Tensor:
    """K H with H = I - 11^T/m: subtract each row's mean."""
    return k - k.mean(dim=-1, keepdim=True)


def hsic_r_matrix(v: torch.Tensor, sigma: float = 50.0, eps: float = 1e-5) -> torch.Tensor:
    """R = Kc (Kc + eps m I)^-1 in float64, literally as defined; v (..., m)."""
    v = v.to(torch.float64)
    m = v.shape[-1]
    kc = _centre_right(gaussian_kernel(v, sigma))
    eye = torch.eye(m, dtype=torch.float64, device=v.device)
    return kc @ torch.linalg.inv(kc + eps * m * eye)


def hsic_direct(x: torch.Tensor, y: torch.Tensor, sigma: float = 50.0, eps: float = 1e-5) -> torch.Tensor:
    """MI = sum_ij R_x[i, j] R_y[j, i], float64, two inversions; x (..., m), y (m,) or (..., m)."""
    rx = hsic_r_matrix(x, sigma, eps)
    ry = hsic_r_matrix(y, sigma, eps)
    return (rx * ry.transpose(-1, -2)).sum(dim=(-1, -2))


# ---------------------------------------------------------------- low-rank factors
def _cheb_nodes(r: int) -> np.ndarray:
    return np.cos(np.pi * (np.arange(r) + 0.5) / r)  # Chebyshev points of the first kind


def _cheb_coeff_matrix(r: int) -> np.ndarray:
    """Q (r, r) with Q[k, p] = (2/r) w_k T_k(s_p), w_0 = 1/2: Lagrange basis = T(s) @ Q."""
    s = _cheb_nodes(r)
    k = np.arange(r)[:, None]
    q = (2.0 / r) * np.cos(k * np.arccos(s)[None, :])
    q[0] *= 0.5
    return q


def _middle(half: np.ndarray | torch.Tensor, r: int, sigma: float, q: torch.Tensor) -> torch.Tensor:
    """A = Q K(t, t) Q^T for nodes t = mid + half * s (the kernel only depends on half)."""
    s = torch.as_tensor(_cheb_nodes(r), dtype=torch.float64, device=q.device)
    half = torch.as_tensor(half, dtype=torch.float64, device=q.device).reshape(-1, 1, 1)
    d = half * (s[:, None] - s[None, :])  # (B, r, r)
    ktt = torch.exp(-(d * d) / (2.0 * sigma * sigma))
    return q @ ktt @ q.T


@lru_cache(maxsize=4096)
def _rank_for(rho_bucket: float, r_max: int) -> int:
    """Smallest r whose Chebyshev interpolation of s -> exp(-rho^2 (s - c)^2 / 2) on [-1, 1] (the kernel
    column of a point c, in units of sigma) is within INTERP_TOL / 4 for every c; 0 if above r_max.
    The 2-D (tensor) interpolant's error is at most (1 + Lebesgue constant) times that."""
    grid = np.linspace(-1.0, 1.0, 257)
    centres = np.linspace(-1.0, 1.0, 17)
    r = 2
    while r <= r_max:
        s = _cheb_nodes(r)
        q = _cheb_coeff_matrix(r)
        basis = np.cos(np.arange(r)[None, :] * np.arccos(grid)[:, None])  # (G, r)
        f_nodes = np.exp(-0.5 * (rho_bucket * (s[:, None] - centres[None, :])) ** 2)  # (r, C)
        f_grid = np.exp(-0.5 * (rho_bucket * (grid[:, None] - centres[None, :])) ** 2)  # (G, C)
        if np.abs(basis @ (q @ f_nodes) - f_grid).max() <= INTERP_TOL / 4:
            return r
        r += 2 if r < 16 else 4
    return 0


def _rho_bucket(rho: float) -> float:
    """Round rho = half-width / sigma up to a coarse grid (the error grows with rho)."""
    return math.ceil(rho * 32.0) / 32.0 if rho > 0 else 0.0


def _scaled(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of v (B, m) mapped onto [-1, 1] by their own range: (s (B, m), half-width (B,))."""
    lo = v.min(dim=-1, keepdim=True).values
    hi = v.max(dim=-1, keepdim=True).values
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    safe_half = torch.where(half > 0, half, torch.ones_like(half))
    return torch.where(half > 0, (v - mid) / safe_half, torch.zeros_like(v)), half.squeeze(-1)


# States per batched low-rank call: bounds the (r, B, m) Chebyshev basis to a few MB (r ~ 50, m = 576).
LOW_RANK_CHUNK = 32


def _cheb_basis_and_moments(s: torch.Tensor, r: int,
                            out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """T (r, B, m) with T[k, b, i] = T_k(s_bi), and the moments mu (B, 2r - 1) = sum_i T_n(s_bi).

    T by the three-term recurrence T_{n+1} = 2 s T_n - T_{n-1} (stable on [-1, 1]), each step on one
    contiguous (B, m) slice of the buffer (``out``, r * B * m elements, or a new tensor); mu_n for n < r
    as row sums, and for n = r - 1 + k (k = 1 .. r - 1) from the product identity
    T_{r-1} T_k = (T_{r-1+k} + T_{r-1-k}) / 2: one batched product instead of r - 1 more steps."""
    b, m = s.shape
    if out is None:
        out = torch.empty(r * b * m, dtype=s.dtype, device=s.device)
    t = out.view(r, b, m)
    t[0] = 1.0
    if r > 1:
        t[1] = s
    two_s = 2 * s
    for n in range(1, r - 1):
        torch.mul(two_s, t[n], out=t[n + 1])
        t[n + 1] -= t[n - 1]
    mu = torch.empty(b, 2 * r - 1, dtype=s.dtype, device=s.device)
    mu[:, :r] = t.sum(-1).T
    if r > 1:  # sum_i T_k T_{r-1} for k = 1 .. r - 1: (B, r - 1)
        cross = torch.bmm(t[1:].permute(1, 0, 2), t[r - 1].unsqueeze(-1)).squeeze(-1)
        mu[:, r:] = 2 * cross - mu[:, : r - 1].flip(-1)  # minus mu_{r-1-k}
    return t, mu


def _centred_gram_from_moments(mu: torch.Tensor, r: int, m: int) -> torch.Tensor:
    """T^T H T (B, r, r) from the moments: T_j T_k = (T_{j+k} + T_{|j-k|}) / 2, minus mu_j mu_k / m."""
    j = torch.arange(r, device=mu.device)
    plus, minus = (j[:, None] + j[None, :]), (j[:, None] - j[None, :]).abs()
    gram = 0.5 * (mu[:, plus] + mu[:, minus])  # (B, r, r)
    return gram - mu[:, :r, None] * mu[:, None, :r] / m


def _cheb_factors(v: torch.Tensor, r: int, sigma: float,
                  out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K ~= T^T A T per row of v (B, m): T (r, B, m) (in ``out`` if given), A (B, r, r), S = T H T^T (B, r, r)."""
    s, half = _scaled(v)
    q = torch.as_tensor(_cheb_coeff_matrix(r), dtype=torch.float64, device=v.device)
    t, mu = _cheb_basis_and_moments(s, r, out)
    return t, _middle(half, r, sigma, q), _centred_gram_from_moments(mu, r, v.shape[-1])


class HSICAnswer:
    """One answer vector y: R_y (or its low-rank factors) prepared once; ``mi(X)`` for many states."""

    def __init__(
        self,
        y: torch.Tensor,
        sigma: float = 50.0,
        eps: float = 1e-5,
        max_rank: int | None = None,
        direct_chunk_bytes: int = 1 << 30,
    ):
        assert y.dim() == 1, f"answer state must be a vector, got shape {tuple(y.shape)}"
        self.sigma, self.eps = float(sigma), float(eps)
        self.y = y.detach().to(torch.float64)
        self.m = int(self.y.numel())
        self.lam = self.eps * self.m
        # Low rank pays off while m r^2 << m^3; beyond this rank the direct route is used.
        self.max_rank = max_rank if max_rank is not None else max(8, min(192, self.m // 3))
        self.direct_chunk = max(1, direct_chunk_bytes // (8 * 4 * self.m * self.m))
        self.r_y = self.rank_of(self.y[None])[0]
        self.fy: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.r_y:
            t_y, a_y, s_y = _cheb_factors(self.y[None], self.r_y, self.sigma)
            t_y, a_y, s_y = t_y[:, 0], a_y[0], s_y[0]  # T_y (r_y, m)
            eye = torch.eye(self.r_y, dtype=torch.float64, device=self.y.device)
            # Phi_y = A_y M_y^-1 with M_y = lam I + S_y A_y, i.e. Phi_y^T = (lam I + A_y S_y)^-1 A_y
            phi_y = torch.linalg.solve(self.lam * eye + a_y @ s_y, a_y).T
            g_y_t = (t_y - t_y.mean(dim=1, keepdim=True)).contiguous()  # (H T_y)^T: (r_y, m)
            self.fy = (g_y_t, phi_y)
        self._ry_dense: torch.Tensor | None = None
        self.stats = {"low_rank": 0, "direct": 0}

    def rank_of(self, v: torch.Tensor) -> list[int]:
        """Interpolation rank per row of v (B, m); 0 = not small, use the direct route."""
        half = ((v.max(dim=-1).values - v.min(dim=-1).values) / 2).tolist()
        return [_rank_for(_rho_bucket(h / self.sigma), self.max_rank) for h in half]

    @property
    def ry_dense(self) -> torch.Tensor:
        if self._ry_dense is None:
            self._ry_dense = hsic_r_matrix(self.y, self.sigma, self.eps)
        return self._ry_dense

    def mi(self, states: torch.Tensor) -> torch.Tensor:
        """(B, m) states -> (B,) float64 MI against the answer, on the states' device."""
        assert states.dim() == 2 and states.shape[1] == self.m, (
            f"states must be (B, {self.m}), got {tuple(states.shape)}"
        )
        x = states.detach().to(device=self.y.device, dtype=torch.float64)
        out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
        if x.shape[0] == 0:
            return out
        ranks = self.rank_of(x) if self.fy is not None else [0] * x.shape[0]
        low = [i for i, r in enumerate(ranks) if r > 0]
        high = [i for i, r in enumerate(ranks) if r == 0]
        for r in sorted({ranks[i] for i in low}):  # batched calls per rank
            same = [i for i in low if ranks[i] == r]
            for start in range(0, len(same), LOW_RANK_CHUNK):
                idx = torch.tensor(same[start : start + LOW_RANK_CHUNK], device=x.device)
                out[idx] = self._mi_low_rank(x[idx], r)
        for start in range(0, len(high), self.direct_chunk):
            idx = torch.tensor(high[start : start + self.direct_chunk], device=x.device)
            out[idx] = self._mi_direct(x[idx])
        self.stats["low_rank"] += len(low)
        self.stats["direct"] += len(high)
        return out

    def _mi_low_rank(self, x: torch.Tensor, r: int) -> torch.Tensor:
        """tr(R_x R_y) = tr(A_x M_x^-1 C Phi_y C^T) with C = T_x^T H T_y, M_x = lam I + S_x A_x, S_x = T_x^T H T_x."""
        assert self.fy is not None
        g_y_t, phi_y = self.fy
        b, m = x.shape
        work = reused_buffer("hsic_basis", r * b * m, x.device, torch.float64)  # no fresh pages per call
        t_x, a_x, s_x = _cheb_factors(x, r, self.sigma, work)  # (r, B, m), (B, r, r), (B, r, r)
        # T_x^T H T_y: (B, r, r_y), one GEMM, computed transposed (a wide output runs ~25% faster in BLAS)
        c = (g_y_t @ t_x.view(r * b, m).T).view(-1, r, b).permute(2, 1, 0)
        p = (c.reshape(b * r, -1) @ phi_y).view(b, r, -1) @ c.transpose(1, 2)  # C Phi_y C^T: (B, r, r)
        eye = torch.eye(r, dtype=torch.float64, device=x.device)
        zt = torch.linalg.solve(self.lam * eye + a_x @ s_x, a_x)  # (A_x M_x^-1)^T: (B, r, r)
        return (zt * p).sum(dim=(1, 2))

    def _mi_direct(self, x: torch.Tensor) -> torch.Tensor:
        """tr(R_x R_y) = tr(R_y) - lam tr((Kc_x + lam I)^-1 R_y), one LU solve per state."""
        ry = self.ry_dense
        kc = _centre_right(gaussian_kernel(x, self.sigma))  # (B, m, m)
        kc.diagonal(dim1=1, dim2=2).add_(self.lam)
        sol = torch.linalg.solve(kc, ry.expand(x.shape[0], -1, -1))  # (B, m, m)
        return torch.diagonal(ry).sum() - self.lam * sol.diagonal(dim1=1, dim2=2).sum(dim=1)


def hsic_mi(states: torch.Tensor, answer: torch.Tensor, sigma: float = 50.0, eps: float = 1e-5) -> torch.Tensor:
    """Convenience: MI of every state row (B, m) against one answer vector (m,)."""
    return HSICAnswer(answer.to(states.device), sigma=sigma, eps=eps).mi(states)
