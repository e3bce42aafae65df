"""Building blocks of NAFNet-style restoration networks (Chen et al., "Simple Baselines for Image
Restoration", ECCV 2022), shared by the learned methods.

All modules take and return float tensors laid out N x C x H x W.
"""

from __future__ import annotations

import torch
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of an NCHW tensor.

    Written out rather than permuting to channels-last for ``nn.LayerNorm``, so that the tensor
    stays contiguous in NCHW and the block needs no layout changes.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """The gate that replaces NAFNet's activations: one half of the channels times the other."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class SimplifiedChannelAttention(nn.Module):
    """Channel reweighting from the global average of each channel, with no nonlinearity."""

    def __init__(self, channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.proj(self.pool(x))


class NAFBlock(nn.Module):
    """NAFNet's block: a gated depthwise-conv branch and a gated feed-forward branch, each added
    back scaled by a learnable per-channel factor that starts at 0, so a new block is the
    identity and deep stacks train stably."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2,
                 drop_out_rate: float = 0.0):
        super().__init__()
        dw = c * dw_expand
        ffn = c * ffn_expand
        if dw % 2 or ffn % 2:
            raise ValueError(f"NAFBlock: expanded widths must be even to gate, got {dw}, {ffn}")
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        self.sca = SimplifiedChannelAttention(dw // 2)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = self.dropout1(self.conv3(self.sca(y)))
        x = x + y * self.beta
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + self.dropout2(y) * self.gamma


class Downsample(nn.Sequential):
    """Halve H and W and double the channels with a 2x2 stride-2 conv (NAFNet's encoder step)."""

    def __init__(self, c: int):
        super().__init__(nn.Conv2d(c, 2 * c, 2, stride=2))


class Upsample(nn.Sequential):
    """Double H and W and halve the channels: 1x1 conv to 2c, then PixelShuffle(2) to c/2."""

    def __init__(self, c: int):
        if c % 2:
            raise ValueError(f"Upsample: channels must be even, got {c}")
        super().__init__(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2))


class PixelShuffleDown(nn.Sequential):
    """Halve H and W and double the channels without discarding pixels: 3x3 conv to c/2, then
    PixelUnshuffle(2) to 2c (Restormer's choice, an alternative to a strided conv)."""

    def __init__(self, c: int):
        if c % 2:
            raise ValueError(f"PixelShuffleDown: channels must be even, got {c}")
        super().__init__(nn.Conv2d(c, c // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

