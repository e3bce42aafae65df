"""Images to latents and back, and latent tiling without seams.

Encoding takes the posterior mean (not a sample), so a restore is a function of its input.
Tiling a whole restore tile by tile would let each tile's sampler wander to its own solution and
leave seams; here a *denoising step* is tiled instead: at every step each overlapping latent tile
is predicted and the predictions are blended (the MultiDiffusion idea), so the tiles agree on
one latent before the next step. The VAE uses diffusers' own blended tiling.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deblurbench.tiling import blend_weight, tile_starts

#: a latent function of (latent tile, window (y0, y1, x0, x1) in latent pixels)
TileFn = Callable[[torch.Tensor, tuple[int, int, int, int]], torch.Tensor]


def encode(vae, x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in [0, 1] (B x 3 x H x W, H and W multiples of 8) -> scaled latent mean."""
    return vae.encode(x * 2 - 1).latent_dist.mean * scale


def decode(vae, z: torch.Tensor, scale: float) -> torch.Tensor:
    """Scaled latent -> image in [0, 1] (clamped: the decoder may overshoot)."""
    return ((vae.decode(z / scale).sample + 1) / 2).clamp(0, 1)


def vae_tiling(vae, image_side: int, tile_px: int) -> None:
    """Switch diffusers' blended VAE tiling on for images larger than ``tile_px``."""
    if tile_px and image_side > tile_px:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


def windows(h: int, w: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    th, tw = min(tile, h), min(tile, w)
    return [(y0, y0 + th, x0, x0 + tw) for y0 in tile_starts(h, th, overlap)
            for x0 in tile_starts(w, tw, overlap)]


def tiled(fn: TileFn, z: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """``fn`` over overlapping ``tile``-sized windows of ``z``, blended linearly across the
    overlaps; one call on the whole latent when it fits (``tile`` <= 0: never tiled)."""
    h, w = z.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(z, (0, h, 0, w))
    out = torch.zeros_like(z, dtype=torch.float32)
    norm = torch.zeros(1, 1, h, w, device=z.device)
    for y0, y1, x0, x1 in windows(h, w, tile, overlap):
        wgt = blend_weight(y1 - y0, x1 - x0, overlap, z.device)
        out[..., y0:y1, x0:x1] += fn(z[..., y0:y1, x0:x1], (y0, y1, x0, x1)).float() * wgt
        norm[..., y0:y1, x0:x1] += wgt
    return (out / norm).to(z.dtype)


def crop(x: torch.Tensor, window: tuple[int, int, int, int], factor: int = 1) -> torch.Tensor:
    """The part of a conditioning map under a latent window (``factor``: its pixels per latent
    pixel, 8 for an image, 1 for a latent-sized map)."""
    y0, y1, x0, x1 = window
    return x[..., y0 * factor:y1 * factor, x0 * factor:x1 * factor]
