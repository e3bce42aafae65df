"""JDRL's reblurring module (Ren et al., Sec. 3.2): per-pixel isotropic kernels from kernel seeds
(KPN, Eq. 3-4), per-pixel weights over blur levels (WPN, Eq. 5), the reblurred image (Eq. 6) and
the pseudo defocus map (Eq. 8).

Seeds: for kernel ``i`` = 2..m the seed is ``a_0..a_{i-1}`` (``M = sum_{i=2}^m i`` channels, 35
for m = 8); kernel ``i`` is ``(2i-1) x (2i-1)``. Eq. 4 gives each tap the seed value linearly
interpolated at its radius ``rho`` (0 beyond ``i-1``, as printed), then a softmax over all taps.

Because a kernel depends on a tap only through ``rho``, blurring with it is a sum over rings:
``sum_r k(r) R_r(x)`` with ``R_r`` the fixed sum of the image over the taps at radius ``r`` (one
static depthwise convolution shared by all kernels), plus the box sum of the taps beyond ``i-1``.
That is exact and much cheaper than unfolding 15 x 15 neighbourhoods per pixel;
:func:`kernels` and :func:`blur_explicit` build the explicit version the tests compare with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def seed_slices(m: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each seed ``i`` = 2..m in the M-channel seed volume."""
    out, s = [], 0
    for i in range(2, m + 1):
        out.append((s, i))
        s += i
    return out


def _hat(rho: torch.Tensor, i: int) -> torch.Tensor:
    """``len(rho) x i``: Eq. 4's linear interpolation weights of ``a_0..a_{i-1}`` at ``rho``
    (a zero row beyond ``rho = i-1``)."""
    j = torch.arange(i, dtype=torch.float32)
    hat = (1 - (rho[:, None] - j[None]).abs()).clamp(min=0)
    hat[rho > i - 1 + 1e-6] = 0
    return hat


def interp_weights(i: int) -> torch.Tensor:
    """``(2i-1)^2 x i`` matrix: tap values (before the softmax) = this @ seed."""
    h = i - 1
    ys, xs = torch.meshgrid(torch.arange(-h, h + 1.0), torch.arange(-h, h + 1.0), indexing="ij")
    return _hat(torch.sqrt(xs ** 2 + ys ** 2).flatten(), i)


def kernels(seeds: torch.Tensor, m: int) -> list[torch.Tensor]:
    """Explicit kernels: per seed ``i`` a tensor ``N x (2i-1) x (2i-1) x H x W``, each summing
    to 1 over its taps (Eq. 4 and the softmax)."""
    out = []
    for i, (s, n) in zip(range(2, m + 1), seed_slices(m), strict=True):
        a = seeds[:, s:s + n]  # N x i x H x W
        vals = torch.einsum("tj,njhw->nthw", interp_weights(i).to(a), a)
        k = torch.softmax(vals, dim=1)
        out.append(k.reshape(a.shape[0], 2 * i - 1, 2 * i - 1, *a.shape[-2:]))
    return out


def blur_explicit(img: torch.Tensor, seeds: torch.Tensor, m: int) -> list[torch.Tensor]:
    """The blur levels ``I_B^i`` (i = 2..m) by unfolding: the reference for :class:`RingBlur`."""
    n, c, h, w = img.shape
    out = []
    for k in kernels(seeds, m):
        size = k.shape[1]
        cols = F.unfold(F.pad(img, [size // 2] * 4, mode="replicate"), size)
        cols = cols.view(n, c, size * size, h, w)
        out.append((cols * k.reshape(n, 1, size * size, h, w)).sum(2))
    return out


class RingBlur(nn.Module):
    """Per-pixel isotropic blurs of sizes 3..2m-1 via fixed ring sums (see the module doc);
    the image is replicate-padded."""

    def __init__(self, m: int):
        super().__init__()
        self.m = m
        h = m - 1
        d2 = sorted({dx * dx + dy * dy for dx in range(h + 1) for dy in range(h + 1)
                     if dx * dx + dy * dy <= h * h})
        self.radii = [math.sqrt(v) for v in d2]
        ys, xs = torch.meshgrid(torch.arange(-h, h + 1), torch.arange(-h, h + 1), indexing="ij")
        r2 = xs ** 2 + ys ** 2
        rings = torch.stack([(r2 == v).float() for v in d2])  # R x S x S
        self.register_buffer("rings", rings[:, None], persistent=False)
        self.register_buffer("counts", rings.flatten(1).sum(1), persistent=False)
        rho = torch.tensor(self.radii)
        self.inside = [[r for r, rad in enumerate(self.radii) if rad <= i - 1 + 1e-6]
                       for i in range(2, m + 1)]
        for idx, i in enumerate(range(2, m + 1)):
            self.register_buffer(f"hat{idx}", _hat(rho[self.inside[idx]], i), persistent=False)

    def forward(self, img: torch.Tensor, seeds: torch.Tensor) -> list[torch.Tensor]:
        n, c, hh, ww = img.shape
        h = self.m - 1
        pad = F.pad(img, [h] * 4, mode="replicate")
        nr = self.rings.shape[0]
        ring = F.conv2d(pad.reshape(n * c, 1, *pad.shape[-2:]), self.rings).view(n, c, nr, hh, ww)
        out = []
        for idx, (s, ln) in enumerate(seed_slices(self.m)):
            i, inside = idx + 2, self.inside[idx]
            vals = torch.einsum("rj,njhw->nrhw", getattr(self, f"hat{idx}"), seeds[:, s:s + ln])
            top = vals.amax(1, keepdim=True).clamp(min=0)  # taps beyond i-1 have value 0
            e, e0 = torch.exp(vals - top), torch.exp(-top)
            cnt = self.counts[inside]
            n_out = float((2 * i - 1) ** 2 - cnt.sum())
            r_in = ring[:, :, inside]
            off = h - (i - 1)
            box = F.avg_pool2d(pad[..., off:off + hh + 2 * (i - 1), off:off + ww + 2 * (i - 1)],
                               2 * i - 1, stride=1) * (2 * i - 1) ** 2
            num = (e[:, None] * r_in).sum(2) + e0 * (box - r_in.sum(2))
            z = (e * cnt.view(1, -1, 1, 1)).sum(1, keepdim=True) + e0 * n_out
            out.append(num / z)
        return out


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv_res_net(cin: int, cout: int, width: int, blocks: int) -> nn.Sequential:
    """conv -> ReLU -> ``blocks`` residual blocks -> conv: the plain nets of Fig. 4."""
    return nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True),
                         *(ResBlock(width) for _ in range(blocks)),
                         nn.Conv2d(width, cout, 3, padding=1))


class Reblur(nn.Module):
    """``forward(restored, blurry) -> (reblurred, seeds, weights)``: Eq. 3, 5, 6."""

    def __init__(self, m: int = 8, width: int = 32, blocks: int = 2):
        super().__init__()
        self.m = m
        self.n_seed = sum(range(2, m + 1))
        self.kpn = conv_res_net(6, self.n_seed, width, blocks)
        self.wpn = conv_res_net(6, m, width, blocks)
        self.blur = RingBlur(m)

    def forward(self, restored: torch.Tensor, blurry: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.cat([restored, blurry], 1)
        seeds = self.kpn(x)
        weights = torch.softmax(self.wpn(x), dim=1)
        levels = [restored, *self.blur(restored, seeds)]  # level 1 is I_hat itself
        reblurred = sum(weights[:, i:i + 1] * lv for i, lv in enumerate(levels))
        return reblurred, seeds, weights


def pseudo_defocus_map(seeds: torch.Tensor, weights: torch.Tensor, m: int,
                       repmat: bool = True) -> torch.Tensor:
    """Eq. 8: ``B_P = Repmat(W_2..W_m) * S`` (W_1, the unblurred level, is left out);
    ``repmat=False`` returns the raw seeds (the released code)."""
    if not repmat:
        return seeds
    rep = torch.cat([weights[:, i - 1:i].expand(-1, i, -1, -1) for i in range(2, m + 1)], 1)
    return rep * seeds
