"""Element-wise adaptive convolution (EAC) of DeblurDiff ("DeblurDiff: Real-World Image
Deblurring with Generative Diffusion Models", Eq. 4 and appendix C, Eq. 8).

Every latent pixel gets its own k x k kernel per channel (predicted by the LKPN); the EAC
applies it to that pixel's neighbourhood of the blurry latent. Unlike a learned inverse map,
the output is a local re-weighting of the input, which is why the paper says it keeps the
structure of the input.

Our reading of Eq. 8 (the equation is lost from the text we have; reconstructed from its
prose, "a k x k kernel applied to the region centred on each position, r = (k-1)/2"):

    EAC(z)[c, i, j] = sum_{dy, dx = -r..r} K[c, i, j, dy, dx] * z[c, i + dy, j + dx]

with zeros outside the latent. The sum is written as a correlation (tap (dy, dx) weights the
neighbour at offset (dy, dx)); for a learned kernel the flip that a textbook convolution
would add only relabels taps. The paper's prose has no explicit residual; ``residual=True``
adds z (``z + EAC(z)``), the form the project's issue asks for. With it a zero kernel is
the identity, so the zero-initialised LKPN head starts from the blurry latent itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(z: Tensor, kernels: Tensor, k: int) -> None:
    if k < 1 or k % 2 == 0:
        raise ValueError(f"eac: kernel size must be odd and positive (centred taps), got {k}")
    if z.dim() != 4:
        raise ValueError(f"eac: z must be B x C x h x w, got shape {tuple(z.shape)}")
    b, c, h, w = z.shape
    if tuple(kernels.shape) != (b, c * k * k, h, w):
        raise ValueError(f"eac: kernels must be {(b, c * k * k, h, w)} for z {tuple(z.shape)} "
                         f"and k={k}, got {tuple(kernels.shape)}")


def eac(z: Tensor, kernels: Tensor, k: int = 5, residual: bool = True) -> Tensor:
    """Apply each pixel's own k x k kernel to its zero-padded neighbourhood of ``z``.

    ``z``: B x C x h x w. ``kernels``: B x (C*k*k) x h x w; channel ``c``'s taps are
    ``kernels[:, c*k*k:(c+1)*k*k]`` in row-major (dy, dx) order, dy, dx in -k//2..k//2.
    ``residual`` adds ``z`` to the result. One ``F.unfold`` gathers all neighbourhoods, so
    there is no Python loop over pixels; its C-major, then (dy, dx) row-major, channel order is
    the kernels' layout.
    """
    _check(z, kernels, k)
    b, c, h, w = z.shape
    patches = F.unfold(z, k, padding=k // 2).view(b, c, k * k, h, w)
    out = (patches * kernels.view(b, c, k * k, h, w)).sum(dim=2)
    return z + out if residual else out


def eac_reference(z: Tensor, kernels: Tensor, k: int = 5, residual: bool = True) -> Tensor:
    """The same sum written out pixel by pixel and tap by tap (slow; a check for ``eac``)."""
    _check(z, kernels, k)
    b, c, h, w = z.shape
    r = k // 2
    taps = kernels.view(b, c, k, k, h, w)
    out = torch.zeros_like(z)
    for i in range(h):
        for j in range(w):
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    y, x = i + dy, j + dx
                    if 0 <= y < h and 0 <= x < w:
                        out[:, :, i, j] += taps[:, :, dy + r, dx + r, i, j] * z[:, :, y, x]
    return z + out if residual else out
