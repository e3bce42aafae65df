"""JDRL's deblurring module (Sec. 3.3.1): ``I_hat = D(F(I_B, E(I_B)))`` (Eq. 9) with a blur-map
estimator ``E`` (2 convs, 3 residual layers), the deformable cross-attention fusion ``F``
(Eq. 10: 5 heads, 4 sampling points, bilinear sampling with ``grid_sample`` so it runs on CPU)
and a backbone ``D`` (NAFNet, or a plain UNet, the paper's light option). With
``prior=False`` it is the backbone alone: the ``l1`` variant, the same ``D``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deblurbench.nn import NAFNet

from .reblur import ResBlock


class Estimator(nn.Module):
    """``E``: blurry image -> M-channel defocus map (conv, 3 residual blocks, conv)."""

    def __init__(self, n_out: int, width: int = 40):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
                                 *(ResBlock(width) for _ in range(3)),
                                 nn.Conv2d(width, n_out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DeformableFusion(nn.Module):
    """Eq. 10: ``I_f = I_B + W_o sum_n (W_q(n) I_B) * (W_v(n) B_hat(p + d_n))``.

    The M channels are split into ``heads`` groups; each head has its own ``points`` offsets
    ``d_n`` (predicted from the blurry image by a 3x3 conv, zero-initialised so sampling
    starts on the grid). ``W_v(n)`` is applied before sampling (a 1x1 conv commutes with the
    bilinear sampling). ``W_o`` is zero-initialised: the untrained fusion passes ``I_B``.
    """

    def __init__(self, m_ch: int, heads: int = 5, points: int = 4):
        super().__init__()
        if m_ch % heads:
            raise ValueError(f"fusion: {m_ch} map channels do not split into {heads} heads")
        self.m, self.heads, self.points = m_ch, heads, points
        self.q = nn.Conv2d(3, m_ch * points, 1)
        self.v = nn.Conv2d(m_ch, m_ch * points, 1)
        self.offset = nn.Conv2d(3, heads * points * 2, 3, padding=1)
        self.o = nn.Conv2d(m_ch, 3, 1)
        for layer in (self.offset, self.o):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, blurry: torch.Tensor, bmap: torch.Tensor) -> torch.Tensor:
        n, _, h, w = blurry.shape
        hd, p, c = self.heads, self.points, self.m // self.heads
        q = self.q(blurry).view(n, p, self.m, h, w)
        v = self.v(bmap).view(n, p, hd, c, h, w)
        off = self.offset(blurry).view(n, hd, p, 2, h, w)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=blurry.dtype, device=blurry.device),
                                torch.arange(w, dtype=blurry.dtype, device=blurry.device),
                                indexing="ij")
        gx = (xs + off[:, :, :, 0]) * (2 / max(w - 1, 1)) - 1  # n, hd, p, h, w
        gy = (ys + off[:, :, :, 1]) * (2 / max(h - 1, 1)) - 1
        grid = torch.stack([gx, gy], -1).permute(0, 2, 1, 3, 4, 5).reshape(n * p * hd, h, w, 2)
        sampled = F.grid_sample(v.reshape(n * p * hd, c, h, w), grid, mode="bilinear",
                                padding_mode="border", align_corners=True)
        sampled = sampled.view(n, p, self.m, h, w)
        return blurry + self.o((q * sampled).sum(1))


class UNet(nn.Module):
    """A plain 4-level convolutional UNet predicting a residual (the paper's light backbone)."""

    def __init__(self, width: int = 32, levels: int = 4, zero_init_out: bool = True):
        super().__init__()
        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                 nn.Conv2d(b, b, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        chans = [width * 2 ** i for i in range(levels)]
        self.enc = nn.ModuleList([block(3, chans[0])] +
                                 [block(chans[i - 1], chans[i]) for i in range(1, levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i], chans[i - 1], 2, stride=2)
                                 for i in range(levels - 1, 0, -1)])
        self.dec = nn.ModuleList([block(chans[i - 1] * 2, chans[i - 1])
                                  for i in range(levels - 1, 0, -1)])
        self.out = nn.Conv2d(width, 3, 1)
        self.padder_size = 2 ** (levels - 1)
        if zero_init_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.padder_size, -w % self.padder_size
        y = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        skips = []
        for i, enc in enumerate(self.enc):
            y = enc(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1]), strict=True):
            y = dec(torch.cat([up(y), skip], 1))
        return x + self.out(y)[..., :h, :w]


def build_backbone(params: dict) -> nn.Module:
    kind = str(params.get("backbone", "nafnet"))
    if kind == "nafnet":
        return NAFNet(width=int(params["width"]), middle_blk_num=int(params["middle_blk_num"]),
                      enc_blk_nums=list(params["enc_blk_nums"]),
                      dec_blk_nums=list(params["dec_blk_nums"]),
                      zero_mean_residual=bool(params["zero_mean_residual"]), zero_init_out=True)
    if kind == "unet":
        return UNet(width=int(params["unet_width"]))
    raise ValueError(f"jdrl: backbone must be nafnet or unet, got {kind!r}")


class Deblur(nn.Module):
    """``forward(blurry) -> (restored, blur_map)``; ``blur_map`` is None without the prior."""

    def __init__(self, params: dict, n_map: int):
        super().__init__()
        self.prior = bool(params.get("prior", True))
        self.backbone = build_backbone(params)
        if self.prior:
            self.estimator = Estimator(n_map, int(params["estimator_width"]))
            self.fusion = DeformableFusion(n_map, int(params["heads"]), int(params["points"]))

    def forward(self, blurry: torch.Tensor, ramp: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.prior:
            return self.backbone(blurry), None
        bmap = self.estimator(blurry)
        fused = self.fusion(blurry, bmap * ramp if ramp != 1.0 else bmap)
        return self.backbone(fused), bmap
