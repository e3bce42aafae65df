"""MSBE, MBSD's multi-scale blur estimator (paper 000, Sec. "Multi-Scale Blur Estimator").

A patch blur-aware extractor (PBE: 8 conv3x3 + ReLU blocks at full resolution) encodes the
image into f_P; L = 4 classifier branches, one per PBA patch scale, each average-pool and apply
two 1x1 convs down to the 4 blur levels, giving logits R_l on the patch grid of scale l.

The paper gives the branches' pooling rates {1, 2, 4, 8} but not how f_P (at image resolution)
reaches the grid of the finest scale. Here f_P is first averaged over each finest-scale patch
(``avg_pool`` with kernel and stride p_1): that is exactly the patch grid PBA labels, anchored
top-left with the ragged bottom/right edge dropped (``deblurbench.annotate.pba.grid_shape``).
A branch's rate r_l then reaches the grid of patch size p_1 * r_l, which must equal p_l; a
card whose patch sizes do not follow the pooling rates is rejected. A scale whose grid would be
empty (image side < patch) is one patch, the whole image, as PBA does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deblurbench.annotate.pba import grid_shape

LEVELS = 4  # PBA's blur levels: slight, mild, moderate, severe


class MSBE(nn.Module):
    """``forward(x)`` -> one logit map B x 4 x gh_l x gw_l per scale (PBA's grids)."""

    def __init__(self, in_ch: int = 3, width: int = 64, n_blocks: int = 8,
                 pools: Sequence[int] = (1, 2, 4, 8),
                 patch_sizes: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        pools, patch_sizes = tuple(int(p) for p in pools), tuple(int(s) for s in patch_sizes)
        if len(pools) != len(patch_sizes):
            raise ValueError(f"MSBE: {len(pools)} pooling rates for {len(patch_sizes)} patch "
                             f"sizes; one branch per scale")
        if any(s != patch_sizes[0] * r for s, r in zip(patch_sizes, pools, strict=True)):
            raise ValueError(f"MSBE: patch sizes {patch_sizes} must be the finest size times "
                             f"the pooling rates {pools}, so each branch lands on its PBA grid")
        self.pools, self.patch_sizes = pools, patch_sizes
        layers: list[nn.Module] = []
        for i in range(n_blocks):
            layers += [nn.Conv2d(in_ch if i == 0 else width, width, 3, padding=1),
                       nn.ReLU(inplace=True)]
        self.pbe = nn.Sequential(*layers)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
                          nn.Conv2d(width, LEVELS, 1)) for _ in pools)

    def grids(self, height: int, width: int) -> list[tuple[int, int]]:
        return [grid_shape(height, width, s) for s in self.patch_sizes]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        f_p = self.pbe(x)
        p1 = self.patch_sizes[0]
        fine = f_p.mean((-2, -1), keepdim=True) if h < p1 or w < p1 else F.avg_pool2d(f_p, p1)
        out = []
        for branch, rate, (gh, gw) in zip(self.branches, self.pools, self.grids(h, w),
                                          strict=True):
            if (gh, gw) == (h // (p1 * rate), w // (p1 * rate)):
                g = F.avg_pool2d(fine, rate) if rate > 1 else fine
            else:  # the whole image is one patch
                g = f_p.mean((-2, -1), keepdim=True)
            out.append(branch(g))
        return out


def probabilities(logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """R_l: softmax over the 4 blur levels."""
    return [torch.softmax(lg, dim=1) for lg in logits]


def msbe_loss(logits: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 4: the cross-entropy summed over every patch of every scale, divided by the number of
    patches of all scales (and averaged over the batch). ``labels``: B x gh_l x gw_l levels."""
    if len(logits) != len(labels):
        raise ValueError(f"msbe_loss: {len(logits)} scales of logits, {len(labels)} of labels")
    total, count = logits[0].new_zeros(()), 0
    for lg, lab in zip(logits, labels, strict=True):
        if lg.shape[0] != lab.shape[0] or lg.shape[-2:] != lab.shape[-2:]:
            raise ValueError(f"msbe_loss: logits {tuple(lg.shape)} do not match labels "
                             f"{tuple(lab.shape)}")
        total = total + F.cross_entropy(lg.float(), lab.long(), reduction="sum")
        count += lab.numel()
    return total / count
