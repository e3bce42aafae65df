"""Unsharp masking with a separable Gaussian, in torch so it runs on CPU or GPU alike."""

import math

import torch
import torch.nn.functional as F

from deblurbench.methods.base import Method


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian (radius 3 sigma) with reflect padding; x is Bx3xHxW."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_h = min(radius, x.shape[2] - 1)
    pad_w = min(radius, x.shape[3] - 1)
    if pad_h < radius or pad_w < radius:
        x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    else:
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


class UnsharpMask(Method):
    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        sigma = float(self.params.get("sigma", 2.0))
        amount = float(self.params.get("amount", 1.0))
        sharpened = batch + amount * (batch - gaussian_blur(batch, sigma))
        return sharpened.clamp(0, 1)
