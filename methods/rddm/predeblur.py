"""RDDM's pre-deblur module p_theta: a cheap first guess I_p of the sharp image.

The paper down-samples the input to 1/8 and runs a U-Net of Pre-deblur Blocks there. Here the
down-sampling is a pixel-unshuffle (8 x 8 pixels become 64 channels: no pixel is discarded, and
the 1/8 grid still sees the whole image) and the way back a pixel-shuffle; the U-Net adds
NAFNet's 2x2 stride-2 down and pixel-shuffle up steps with additive skips. The output is the
blurry image plus a predicted correction, the correction conv starting at zero, so the untrained
module returns the blurry image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deblurbench.nn.unet import build_levels, run_levels

from .blocks import PreDeblurBlock


class PreDeblur(nn.Module):
    """``forward(blurry, blur_map=None) -> I_p``; blurry N x 3 x H x W, map N x 1 x H x W in
    [0, 1]; H and W multiples of :attr:`multiple`."""

    def __init__(self, in_ch: int = 4, width: int = 32, enc_blks: Sequence[int] = (1, 1),
                 mid_blks: int = 1, dec_blks: Sequence[int] = (1, 1), scale: int = 8,
                 group_channels: int = 16, impl: str = "auto"):
        super().__init__()
        if len(enc_blks) != len(dec_blks):
            raise ValueError(f"PreDeblur: {len(enc_blks)} encoder levels but {len(dec_blks)} "
                             f"decoder levels")
        self.in_ch, self.scale = in_ch, scale
        self.unshuffle, self.shuffle = nn.PixelUnshuffle(scale), nn.PixelShuffle(scale)
        self.intro = nn.Conv2d(in_ch * scale * scale, width, 3, padding=1)

        def stage(c: int, n: int) -> nn.Sequential:
            return nn.Sequential(*(PreDeblurBlock(c, group_channels, impl) for _ in range(n)))

        build_levels(self, width, enc_blks, mid_blks, dec_blks, stage)
        self.ending = nn.Conv2d(width, 3 * scale * scale, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    @property
    def multiple(self) -> int:
        return self.scale * 2 ** len(self.encoders)

    def forward(self, blurry: torch.Tensor, blur_map: torch.Tensor | None = None) -> torch.Tensor:
        x = blurry if blur_map is None else torch.cat([blurry, blur_map], dim=1)
        if x.shape[1] != self.in_ch:
            raise ValueError(f"PreDeblur: built for {self.in_ch} input channels, got "
                             f"{x.shape[1]}")
        y = self.intro(self.unshuffle(x))
        y = run_levels(self, y)
        return blurry + self.shuffle(self.ending(y))
