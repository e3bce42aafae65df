"""RDDM's two blocks (Feng et al., AAAI 2025, "Pre-deblur Block and RDD Block").

Both are NAFBlocks (Chen et al. 2022) whose 3x3 depth-wise conv is a deformable one. The paper
uses DCNv4 (Xiong et al. 2024): a depth-wise deformable aggregation with one set of offsets per
group of channels, the offsets and weights predicted by a cheap depth-wise conv and a linear
layer. Here the sampling is DCNv2's (``deblurbench.nn.DeformConv2d``: bilinear taps and a
modulation mask, depth-wise with ``groups`` = channels), the nearest substitute this project
has, fed by a DCNv4-style predictor (depth-wise 3x3, then 1x1). (The shared
``ModulatedDeformConv`` predicts offsets with a full 3x3 conv: at the denoiser's deepest level,
2048 channels, that alone is about 60 M parameters.)

Tensors are float N x C x H x W.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deblurbench.nn import DeformConv2d, LayerNorm2d, SimpleGate, SimplifiedChannelAttention


class DeformDW(nn.Module):
    """3x3 depth-wise modulated deformable conv with ``c // group_channels`` offset groups.

    Offsets and the mask (``2 * sigmoid``) come from a depth-wise 3x3 conv and a 1x1 conv that
    starts at zero, so a new module is exactly a plain depth-wise 3x3 conv."""

    def __init__(self, c: int, group_channels: int = 16, impl: str = "auto"):
        super().__init__()
        g = max(1, c // max(1, group_channels))
        while c % g:
            g -= 1
        self.groups, self.taps = g, 9
        self.dcn = DeformConv2d(c, c, 3, padding=1, groups=c, offset_groups=g, impl=impl)
        self.offset_dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.offset_proj = nn.Conv2d(c, 3 * g * self.taps, 1)
        nn.init.zeros_(self.offset_proj.weight)
        nn.init.zeros_(self.offset_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.offset_proj(self.offset_dw(x))
        n_off = 2 * self.groups * self.taps
        return self.dcn(x, o[:, :n_off], 2 * torch.sigmoid(o[:, n_off:]))


def deform_dw(c: int, group_channels: int, impl: str) -> DeformDW:
    return DeformDW(c, group_channels, impl)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al.; DDPM's) of B timesteps: B x dim."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return emb if dim % 2 == 0 else torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)


class _GatedFFN(nn.Module):
    """NAFNet's feed-forward half: LayerNorm, 1x1 to 2c, SimpleGate, 1x1 back."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = LayerNorm2d(c)
        self.conv_in = nn.Conv2d(c, 2 * c, 1)
        self.gate = SimpleGate()
        self.conv_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.gate(self.conv_in(self.norm(x))))


class PreDeblurBlock(nn.Module):
    """A NAFBlock whose depth-wise conv is deformable (the paper's Pre-deblur Block): LayerNorm,
    1x1 to 2c, deformable 3x3, SimpleGate, simplified channel attention, 1x1; then the gated
    feed-forward. Both branches are added back scaled by factors that start at 0."""

    def __init__(self, c: int, group_channels: int = 16, impl: str = "auto"):
        super().__init__()
        self.norm = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.dcn = deform_dw(2 * c, group_channels, impl)
        self.gate = SimpleGate()
        self.sca = SimplifiedChannelAttention(c)
        self.conv3 = nn.Conv2d(c, c, 1)
        self.ffn = _GatedFFN(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.sca(self.gate(self.dcn(self.conv1(self.norm(x))))))
        x = x + y * self.beta
        return x + self.ffn(x) * self.gamma


class RDDBlock(nn.Module):
    """The Residual Diffusion Deblur block (Eq. 11): 1x1 conv and 3x3 deformable conv (the
    learnable receptive field), SimpleGate, simplified channel attention, then the semantic
    guidance ``s`` of this scale concatenated and fused by a 1x1 conv (after the attention,
    as the paper says, following Ren et al. 2023); then the gated feed-forward.

    The timestep enters as a per-channel shift after the first 1x1 conv (the paper does not
    say how t is injected; this is DDPM's way)."""

    def __init__(self, c: int, guide_ch: int, temb_ch: int, group_channels: int = 16,
                 impl: str = "auto"):
        super().__init__()
        self.norm = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.temb = nn.Linear(temb_ch, 2 * c)
        self.dcn = deform_dw(2 * c, group_channels, impl)
        self.gate = SimpleGate()
        self.sca = SimplifiedChannelAttention(c)
        self.fuse = nn.Conv2d(c + guide_ch, c, 1)
        self.ffn = _GatedFFN(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor, s: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.norm(x)) + self.temb(temb)[:, :, None, None]
        y = self.sca(self.gate(self.dcn(y)))
        y = self.fuse(torch.cat([y, s], dim=1))
        x = x + y * self.beta
        return x + self.ffn(x) * self.gamma
