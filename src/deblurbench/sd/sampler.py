"""DDIM sampling with the settings the papers vary: steps, guidance scale, and where it starts.

``start``: ``noise`` (plain text-to-image sampling from x_T ~ N(0, I)) or ``lr-embedding``
(SeeSR's trick, which MBSD adopts: x_T is the *blurry* latent noised to the first timestep, so
low frequencies come from the input rather than from noise). The initial noise comes from a
generator seeded with ``seed``, so a restore is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from deblurbench.sd.latents import tiled

#: eps(z_t tile, t, window, conditional?) -> predicted noise for that tile
EpsFn = Callable[[torch.Tensor, torch.Tensor, tuple[int, int, int, int], bool], torch.Tensor]
#: on_step(index, t, x0 estimate of the whole latent)
StepHook = Callable[[int, torch.Tensor, torch.Tensor], None]

STARTS = ("noise", "lr-embedding")


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 20
    guidance: float = 1.0  # classifier-free guidance scale; 1: the conditional prediction only
    start: str = "noise"
    eta: float = 0.0  # DDIM's stochasticity; 0: deterministic
    seed: int = 0
    tile: int = 0  # latent pixels per tile side (0: never tiled)
    tile_overlap: int = 16

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise ValueError(f"sampler start must be one of {STARTS}, got {self.start!r}")
        if self.steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {self.steps}")

    @classmethod
    def from_params(cls, p: dict) -> SamplerSettings:
        return cls(steps=int(p["sample_steps"]), guidance=float(p.get("guidance_scale", 1.0)),
                   start=str(p.get("sample_start", "noise")), eta=float(p.get("eta", 0.0)),
                   seed=int(p.get("sample_seed", 0)), tile=int(p.get("latent_tile", 0)),
                   tile_overlap=int(p.get("latent_tile_overlap", 16)))


def cfg(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance; at scale 1 the conditional prediction itself (not recomputed,
    so it is bit-identical)."""
    if scale == 1.0:
        return eps_cond
    return eps_uncond + scale * (eps_cond - eps_uncond)


def ddim_sample(scheduler, eps_fn: EpsFn, z_lr: torch.Tensor, settings: SamplerSettings,
                on_step: StepHook | None = None) -> torch.Tensor:
    """The sharp latent after ``settings.steps`` DDIM steps; ``z_lr`` (the blurry latent) gives
    the shape, and the start for ``lr-embedding``."""
    scheduler.set_timesteps(settings.steps, device=z_lr.device)
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    noise = torch.randn(z_lr.shape, generator=gen, dtype=torch.float32).to(z_lr)
    ts = scheduler.timesteps
    if settings.start == "lr-embedding":
        z = scheduler.add_noise(z_lr, noise, ts[:1].repeat(z_lr.shape[0]))
    else:
        z = noise * scheduler.init_noise_sigma
    for i, t in enumerate(ts):
        def step_eps(zt: torch.Tensor, window: tuple[int, int, int, int],
                     t: torch.Tensor = t) -> torch.Tensor:
            e_c = eps_fn(zt, t, window, True)
            if settings.guidance == 1.0:
                return e_c
            return cfg(eps_fn(zt, t, window, False), e_c, settings.guidance)

        eps = tiled(step_eps, z, settings.tile, settings.tile_overlap)
        out = scheduler.step(eps, t, z, eta=settings.eta, generator=gen if settings.eta else None)
        z = out.prev_sample
        if on_step is not None:
            on_step(i, t, out.pred_original_sample)
    return z
