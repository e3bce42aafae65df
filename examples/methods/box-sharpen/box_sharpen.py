"""Sharpening with a box filter: the README's example of a submitted method."""

import torch
import torch.nn.functional as F

from deblurbench.methods.base import Method


class BoxSharpen(Method):
    def restore(self, batch: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        k = int(self.params.get("size", 5))
        amount = float(self.params.get("amount", 0.8))
        pad = k // 2
        padded = F.pad(batch, (pad, pad, pad, pad), mode="replicate")
        smooth = F.avg_pool2d(padded, k, stride=1)
        return (batch + amount * (batch - smooth)).clamp(0, 1)
