"""NAFNet (Chen et al., ECCV 2022): a U-Net of NAFBlocks predicting a residual added to the input.

The paper's GoPro deblurring model is the default configuration (width 32, encoder blocks
[1, 1, 1, 28], 1 middle block, decoder blocks [1, 1, 1, 1]). Measured here: 17,111,907
parameters, the published 17.11 M (width 64 gives 67,888,835, the published 67.89 M), which
checks the block layout against the paper's.

Images are float N x C x H x W, any H and W (padded internally, cropped back).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deblurbench.nn.layers import NAFBlock
from deblurbench.nn.unet import build_levels, pad_to_multiple, run_levels


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (each shared tensor counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _stage(c: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(c) for _ in range(n)))


class NAFNet(nn.Module):
    """Image-to-image NAFNet; ``forward(x) = x + residual(x)``, shape preserved.

    ``zero_init_out`` zeroes the last conv so that the untrained network is exactly the
    identity: training starts from "return the blurry input", the strongest trivial baseline.
    ``zero_mean_residual`` removes the per-image, per-channel spatial mean of the residual: blur
    preserves an image's mean, and on small data sets the network otherwise tends to spend its
    capacity on a global colour shift.
    """

    def __init__(self, img_channel: int = 3, width: int = 32, middle_blk_num: int = 1,
                 enc_blk_nums: Sequence[int] = (1, 1, 1, 28),
                 dec_blk_nums: Sequence[int] = (1, 1, 1, 1),
                 zero_mean_residual: bool = False, zero_init_out: bool = True):
        super().__init__()
        self.zero_mean_residual = zero_mean_residual
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        build_levels(self, width, enc_blk_nums, middle_blk_num, dec_blk_nums, _stage)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        if zero_init_out:
            nn.init.zeros_(self.ending.weight)
            nn.init.zeros_(self.ending.bias)

    @property
    def padder_size(self) -> int:
        """H and W are padded up to a multiple of this (one halving per encoder stage)."""
        return 2 ** len(self.encoders)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.padder_size)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """What ``forward`` adds to ``x``: the network output, cropped, mean-free if asked."""
        h, w = x.shape[-2:]
        y = self.intro(self._pad(x))
        y = run_levels(self, y)
        r = self.ending(y)[..., :h, :w]
        if self.zero_mean_residual:
            r = r - r.mean(dim=(-2, -1), keepdim=True)
        return r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"NAFNet expects N x C x H x W, got shape {tuple(x.shape)}")
        return x + self.residual(x)
