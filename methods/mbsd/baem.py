"""BAEM, MBSD's blur-adaptive expert mixer (paper 000, Sec. "Blur-Adaptive Expert Mixer").

A NAFNet-style U-Net whose blocks are PMoECBs: NAFBlocks whose spatial convolution is a mixture
of 4 expert kernels, mixed per patch by weights omega_l (Eq. 5). omega_l comes from the MSBE
probabilities R_l of scale l through a two-layer 1x1 head (:class:`ExpertHead`). The U-Net has
one level per scale (the paper's "L down-sampling/up-sampling branches"): level l runs at
1 / 2^l of the image and uses omega_l, on both the encoder and the decoder side.

Eq. 5 mixes kernels, ``(sum_i w_i K_i) * f``. Convolution is linear, so each output pixel equals
``sum_i w_i (K_i * f)`` with that pixel's weights: :class:`PMoEConv` computes the 4 convolutions
and mixes their outputs (one conv each, rather than a kernel per patch), which is the same
function, tested against the mixed kernel.

Outputs: f_PBF, the encoder's deepest features (1/16 of the image) projected to ``pbf_ch``
channels, which guide the diffusion model; and the fidelity restoration I_hat = x + decoder
residual (the pretext task of Eq. 6, zero-initialised so an untrained BAEM returns x).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deblurbench.nn.layers import NAFBlock
from deblurbench.nn.unet import build_levels, pad_to_multiple

EXPERTS = 4


def patch_weights(w: torch.Tensor, height: int, width: int, stride: int,
                  patch_size: int) -> torch.Tensor:
    """Spread a per-patch weight grid (B x E x gh x gw, patches of ``patch_size`` image pixels
    anchored top-left) onto a feature map of ``height`` x ``width`` whose pixels are ``stride``
    image pixels: each pixel takes its patch's weights; pixels past the last whole patch (the
    ragged edge, or padding) take the last one, as PBA's pixel maps do."""
    gh, gw = w.shape[-2:]
    rows = torch.clamp(torch.arange(height, device=w.device) * stride // patch_size, max=gh - 1)
    cols = torch.clamp(torch.arange(width, device=w.device) * stride // patch_size, max=gw - 1)
    return w[:, :, rows][:, :, :, cols]


class PMoEConv(nn.Module):
    """4 expert convolutions with the same shape, mixed per pixel: ``sum_i w_i * conv_i(x)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, groups: int = 1,
                 experts: int = EXPERTS):
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, groups=groups)
            for _ in range(experts))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``w``: B x E x H x W expert weights at the resolution of ``x``."""
        if w.shape[1] != len(self.experts) or w.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"PMoEConv: weights {tuple(w.shape)} for {len(self.experts)} "
                             f"experts on features {tuple(x.shape)}")
        return sum(w[:, i:i + 1] * conv(x) for i, conv in enumerate(self.experts))

    def mixed_kernel(self, weights: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum_i w_i K_i, sum_i w_i b_i): the single kernel Eq. 5 applies for these weights."""
        k = sum(float(a) * c.weight for a, c in zip(weights, self.experts, strict=True))
        b = sum(float(a) * c.bias for a, c in zip(weights, self.experts, strict=True))
        return k, b


class PMoECB(NAFBlock):
    """A NAFBlock whose 3x3 depthwise convolution (its one spatial convolution) is a
    :class:`PMoEConv`; the 1x1 convs, gate, channel attention and FFN are NAFNet's."""

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__(c, dw_expand, ffn_expand)
        dw = c * dw_expand
        self.conv2 = PMoEConv(dw, dw, 3, groups=dw)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x)), w))
        x = x + self.conv3(self.sca(y)) * self.beta
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + y * self.gamma


class ExpertHead(nn.Module):
    """omega_l from R_l: two 1x1 convs (4 -> hidden -> 4) with a ReLU between, then a softmax
    over the experts so the mix is convex (the paper names the two convs, not the output
    normalisation)."""

    def __init__(self, hidden: int = 16, levels: int = 4, experts: int = EXPERTS):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(levels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, experts, 1))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(r), dim=1)


class _Stage(nn.Module):
    def __init__(self, c: int, n: int):
        super().__init__()
        self.blocks = nn.ModuleList(PMoECB(c) for _ in range(n))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x, w)
        return x


class BAEM(nn.Module):
    """``forward(x, weights, patch_sizes)`` -> (f_PBF, restored image); ``weights[l]`` is
    omega_l on the patch grid of ``patch_sizes[l]``, one per U-Net level."""

    def __init__(self, in_ch: int = 3, width: int = 32, enc_blks: Sequence[int] = (1, 1, 1, 1),
                 mid_blks: int = 1, dec_blks: Sequence[int] = (1, 1, 1, 1), pbf_ch: int = 320):
        super().__init__()
        self.pbf_ch = int(pbf_ch)
        self.levels = len(enc_blks)
        self.intro = nn.Conv2d(in_ch, width, 3, padding=1)
        build_levels(self, width, enc_blks, mid_blks, dec_blks, _Stage)
        self.to_pbf = nn.Conv2d(width * 2 ** self.levels, self.pbf_ch, 1)
        self.ending = nn.Conv2d(width, in_ch, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    @property
    def multiple(self) -> int:
        """H and W are padded to a multiple of this internally (one halving per level)."""
        return 2 ** self.levels

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor],
                patch_sizes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(weights) != self.levels or len(patch_sizes) != self.levels:
            raise ValueError(f"BAEM: {self.levels} levels need {self.levels} weight maps and "
                             f"patch sizes, got {len(weights)} and {len(patch_sizes)}")
        h, w = x.shape[-2:]
        y = self.intro(pad_to_multiple(x, self.multiple))
        maps = []
        skips = []
        for lvl, (enc, down) in enumerate(zip(self.encoders, self.downs, strict=True)):
            m = patch_weights(weights[lvl], y.shape[-2], y.shape[-1], 2 ** lvl,
                              int(patch_sizes[lvl]))
            maps.append(m)
            y = enc(y, m)
            skips.append(y)
            y = down(y)
        deep = patch_weights(weights[-1], y.shape[-2], y.shape[-1], 2 ** self.levels,
                             int(patch_sizes[-1]))
        y = self.middle(y, deep)
        f_pbf = self.to_pbf(y)
        for up, dec, skip, m in zip(self.ups, self.decoders, reversed(skips), reversed(maps),
                                    strict=True):
            y = dec(up(y) + skip, m)
        restored = x + self.ending(y)[..., :h, :w]
        hp, wp = -(-h // self.multiple), -(-w // self.multiple)
        return f_pbf[..., :hp, :wp], restored


def restoration_loss(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ``|| I_hat - I ||_2^2``, as a per-pixel mean (the MSE the paper names)."""
    return F.mse_loss(restored.float(), sharp.float())
