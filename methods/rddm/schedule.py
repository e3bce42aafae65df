"""The residual diffusion of RDDM (Feng et al., AAAI 2025): noise schedule, forward noising and
the DDIM update with sigma = 0.

Indices are 1-based as in the paper: ``alpha_bar[t]`` for t = 1..T, with ``alpha_bar[0] = 1``
(no noise), so the last DDIM step, to t = 0, returns the predicted residual itself.

The paper gives no schedule. Default ``linear`` (beta from 1e-4 to 0.02, Ho et al. 2020): the
DDPM the paper's method section is written on, and with T = 1300 it ends at alpha_bar_T ~ 2e-6,
so x_T is pure noise as Algorithm 1 samples it. ``cosine`` (Nichol & Dhariwal 2021) is the
variant.

The paper's Eq. 8 is misprinted: its first equation has alpha_bar_t where sqrt(alpha_bar_t)
belongs, and its m_t divides by 1 - alpha_bar_{t-1} instead of sqrt(1 - alpha_bar_t).
:func:`ddim_step` is the standard update of Song et al. with sigma = 0:
x_{t-1} = m_t x_t + k_t f, m_t = sqrt(1 - ab_{t-1}) / sqrt(1 - ab_t),
k_t = sqrt(ab_{t-1}) - m_t sqrt(ab_t).
"""

from __future__ import annotations

import math

import torch


def alpha_bars(T: int, kind: str = "linear", beta_start: float = 1e-4,
               beta_end: float = 0.02) -> torch.Tensor:
    """alpha_bar[0..T] in float64: ``alpha_bar[0] = 1``, decreasing to ~0 at T."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    elif kind == "cosine":  # Nichol & Dhariwal 2021, s = 0.008, betas capped at 0.999
        s = 0.008
        t = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        raise ValueError(f"unknown noise schedule {kind!r}; expected linear or cosine")
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """Algorithm 1's ``range(T, 1, T / steps)``: T, T - T/n, ... (rounded), ``steps`` of them."""
    if not 1 <= steps <= T:
        raise ValueError(f"inference steps must be in 1..{T}, got {steps}")
    return [round(T - i * T / steps) for i in range(steps)]


def q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
             ab: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Eq. 3); ``t`` holds B indices."""
    a = ab.to(x0.device)[t].to(x0.dtype).view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def ddim_step(x_t: torch.Tensor, x0_hat: torch.Tensor, ab_t: float,
              ab_prev: float) -> torch.Tensor:
    """One DDIM step with sigma = 0 from a predicted x0 (here: the residual R):
    x_prev = m x_t + k x0_hat with the corrected Eq. 8 coefficients (:func:`ddim_coefficients`);
    the same as re-noising x0_hat with the noise that x_t implies."""
    m, k = ddim_coefficients(ab_t, ab_prev)
    return m * x_t + k * x0_hat


def ddim_coefficients(ab_t: float, ab_prev: float) -> tuple[float, float]:
    """(m_t, k_t) of x_{t-1} = m_t x_t + k_t x0 for sigma = 0 (Song et al. 2021, Eq. 12)."""
    m = math.sqrt(1.0 - ab_prev) / math.sqrt(1.0 - ab_t)
    return m, math.sqrt(ab_prev) - m * math.sqrt(ab_t)
