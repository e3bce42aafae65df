"""The U-Net skeleton NAFNet, RDDM's pre-deblur module and its denoiser share: stages of blocks,
channels doubled by each pixel-shuffle down-sampling and halved back on the way up, and the
padding to a multiple of the total down-sampling that the skeleton needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deblurbench.nn.layers import Downsample, Upsample


def build_levels(module: nn.Module, width: int, enc: Sequence[int], mid: int,
                 dec: Sequence[int], stage: Callable[[int, int], nn.Module]) -> None:
    """Set ``encoders``, ``downs``, ``middle``, ``ups`` and ``decoders`` on ``module``:
    ``stage(channels, n)`` builds one level's ``n`` blocks."""
    if len(enc) != len(dec):
        raise ValueError(f"{type(module).__name__}: {len(enc)} encoder stages but {len(dec)} "
                         f"decoder stages; they must match")
    module.encoders, module.downs = nn.ModuleList(), nn.ModuleList()
    c = width
    for n in enc:
        module.encoders.append(stage(c, n))
        module.downs.append(Downsample(c))
        c *= 2
    module.middle = stage(c, mid)
    module.ups, module.decoders = nn.ModuleList(), nn.ModuleList()
    for n in dec:
        module.ups.append(Upsample(c))
        c //= 2
        module.decoders.append(stage(c, n))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` padded at the bottom and right to H and W multiples of ``multiple``: reflect, or
    replicate where the pad is not shorter than the side (reflect cannot pad that far)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def run_levels(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The skeleton's pass for stages that take only features: down through the encoders,
    the middle, and up with additive skips (NAFNet's; RDDM's pre-deblur module's)."""
    skips = []
    for enc, down in zip(module.encoders, module.downs, strict=True):
        y = enc(y)
        skips.append(y)
        y = down(y)
    y = module.middle(y)
    for up, dec, skip in zip(module.ups, module.decoders, reversed(skips), strict=True):
        y = dec(up(y) + skip)
    return y
