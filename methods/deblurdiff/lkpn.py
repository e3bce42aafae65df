"""Latent Kernel Prediction Network (LKPN) of DeblurDiff ("DeblurDiff: Real-World Image
Deblurring with Generative Diffusion Models", Sec. 3.2, Eq. 3 and appendix C).

A timestep-conditioned latent U-Net: it reads concat(x, z_blur) (x is the noisy latent z_t in
training, the current clean estimate while sampling) and predicts, for every latent pixel and
channel, a k x k kernel that the EAC applies to the blurry latent. Per the appendix: 4 encoder
and 4 decoder levels of (ResBlock + self-attention) blocks, the timestep embedding added before
each ResBlock's output layer, and a final linear (1x1) layer to latent_ch * k * k channels.

Choices the paper leaves open, made here: the coarsest encoder and decoder levels meet with no
extra middle block (the paper names none); skips are concatenated once per level; the
attention is global multi-head self-attention over the h*w tokens of a level and may be
switched off per level (``attn_levels``), since at the finest level it is the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurbench.nn.unet import pad_to_multiple


def timestep_embedding(t: Tensor, dim: int, max_period: int = 10000) -> Tensor:
    """Sinusoidal embedding of B timesteps (cos then sin, DDPM/SD layout): B x dim.

    Geometric frequencies from 1 to 1/max_period let the network tell 0..999 apart at every
    scale; an odd ``dim`` gets a zero last column.
    """
    t = t.reshape(-1).float()
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return emb if dim % 2 == 0 else F.pad(emb, (0, 1))


def _norm(ch: int, groups: int) -> nn.GroupNorm:
    """GroupNorm whose group count divides ``ch`` (the largest divisor of ``groups`` that does)."""
    return nn.GroupNorm(math.gcd(groups, ch), ch)


class ResBlock(nn.Module):
    """SD-style residual block: norm-SiLU-conv, + time embedding, norm-SiLU-conv (the "out
    layer"), plus a 1x1 skip where the width changes.

    The embedding is added between the two convs, i.e. before the out layer, as the paper says.
    The convs keep PyTorch's default init (not SD's zeroed out conv): the LKPN's zero head
    already makes the untrained network a no-op, and zeroed inner convs would starve the first
    optimiser steps of any t-dependence.
    """

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(in_ch, groups), nn.SiLU(),
                                       nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, out_ch))
        self.out_layers = nn.Sequential(_norm(out_ch, groups), nn.SiLU(),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.emb_layers(temb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over all h*w positions, added back to the input.

    Global attention lets a pixel's kernel depend on blur evidence far from it (a motion blur
    is the same along a whole object). ``heads`` falls back to a divisor of the channels.
    """

    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = math.gcd(heads, ch)
        self.norm = _norm(ch, groups)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w) \
            .transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # b x heads x hw x c/heads
        return x + self.proj(y.transpose(-1, -2).reshape(b, c, h, w))


class _Block(nn.Module):
    """One of the paper's blocks: a ResBlock, then self-attention where the level has it."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, attn: bool, heads: int,
                 groups: int):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, time_dim, groups)
        self.attn = SelfAttention(out_ch, heads, groups) if attn else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        return self.attn(self.res(x, temb))


class LKPN(nn.Module):
    """Predict a per-latent-pixel, per-channel k x k kernel from (x, z_blur, t).

    Output: B x (latent_ch * kernel_size**2) x h x w in the EAC's layout (channel c's taps at
    ``c*k*k:(c+1)*k*k``, row-major). ``mults`` gives each level's width as a multiple of
    ``width`` (one stride-2 conv between levels, nearest x2 + conv back up, the encoder's level
    output concatenated into the decoder). Any h x w works: the input is padded to a multiple
    of 2**(levels-1) and the output cropped back.
    """

    def __init__(self, latent_ch: int = 4, width: int = 64, mults: Sequence[int] = (1, 2, 4, 4),
                 blocks_per_level: int = 2, attn_levels: Sequence[bool] | None = None,
                 heads: int = 4, time_dim: int | None = None, kernel_size: int = 5,
                 groups: int = 8):
        super().__init__()
        if not mults or blocks_per_level < 1:
            raise ValueError("LKPN: need at least one level and one block per level")
        attn = [True] * len(mults) if attn_levels is None else [bool(a) for a in attn_levels]
        if len(attn) != len(mults):
            raise ValueError(f"LKPN: attn_levels has {len(attn)} entries for {len(mults)} levels")
        self.latent_ch, self.kernel_size, self.width = latent_ch, kernel_size, width
        self.multiple = 2 ** (len(mults) - 1)
        tdim = time_dim or 4 * width
        chs = [width * m for m in mults]

        self.time_embed = nn.Sequential(nn.Linear(width, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(2 * latent_ch, width, 3, padding=1)

        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        prev = width
        for i, ch in enumerate(chs):
            self.encoders.append(nn.ModuleList(
                _Block(prev if j == 0 else ch, ch, tdim, attn[i], heads, groups)
                for j in range(blocks_per_level)))
            prev = ch
            if i < len(chs) - 1:
                self.downs.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))

        # Decoder, coarsest first: the coarsest level continues from the encoder's bottom;
        # each finer one upsamples and concatenates that level's encoder output.
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(chs))):
            ch = chs[i]
            if i < len(chs) - 1:
                self.ups.append(nn.Conv2d(prev, prev, 3, padding=1))
                first_in = prev + ch
            else:
                first_in = prev
            self.decoders.append(nn.ModuleList(
                _Block(first_in if j == 0 else ch, ch, tdim, attn[i], heads, groups)
                for j in range(blocks_per_level)))
            prev = ch

        self.out_norm = nn.Sequential(_norm(prev, groups), nn.SiLU())
        self.head = nn.Conv2d(prev, latent_ch * kernel_size ** 2, 1)
        # Zero head (ControlNet's zero-conv idea): the untrained LKPN predicts all-zero kernels,
        # so the residual EAC returns z_blur unchanged and the new branch cannot disturb the
        # pre-trained SD at the start of training; gradients still reach the head.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor, z_blur: Tensor, t: Tensor) -> Tensor:
        """Kernels for latent ``x`` (z_t, or the current x0 estimate) given ``z_blur`` and
        timesteps ``t`` (B values, or one for all, in 0..999)."""
        if x.shape != z_blur.shape or x.shape[1] != self.latent_ch:
            raise ValueError(f"LKPN: x {tuple(x.shape)} and z_blur {tuple(z_blur.shape)} must "
                             f"both be B x {self.latent_ch} x h x w")
        b, _, h, w = x.shape
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)
        temb = self.time_embed(timestep_embedding(t, self.width).to(x.dtype))

        y = self.conv_in(pad_to_multiple(torch.cat([x, z_blur], dim=1), self.multiple))
        skips = []
        for i, level in enumerate(self.encoders):
            for block in level:
                y = block(y, temb)
            skips.append(y)
            if i < len(self.downs):
                y = self.downs[i](y)
        skips.pop()  # the coarsest level's output is y itself
        for i, level in enumerate(self.decoders):
            if i > 0:
                y = self.ups[i - 1](F.interpolate(y, scale_factor=2.0, mode="nearest"))
                y = torch.cat([y, skips.pop()], dim=1)
            for block in level:
                y = block(y, temb)
        return self.head(self.out_norm(y))[:, :, :h, :w]
