"""BD-Diff's refined VAE (appendix B, an optional second stage, off by default).

SD's VAE loses detail and the sampler drifts from the input; the refined VAE V' adds
- an **encoder refiner**: after each encoder layer (``conv_in`` and every down block) a residual
  refiner that pre-filters the degraded features; the refined features are kept;
- a **decoder refiner**: after each decoder up block a residual refiner over the decoder
  feature concatenated with the kept encoder feature of the same resolution (a skip), so
  decoding the generated latent can draw on the input image itself.

Both refiners end in zero-initialised convolutions, so an untrained V' is SD's VAE exactly
(tested). Training, two phases after BD-Diff's own (stages ``vae-encoder`` then
``vae-decoder``): the encoder refiner so that V'.encode(blurry) matches V.encode(sharp)
(MSE on the latents); then, the encoder refiner frozen, the decoder refiner so that
V'.decode(BD-Diff(V'.encode(blurry))) matches the sharp image (MSE).

Implemented with forward hooks on the frozen diffusers VAE, active only while ``enabled``; an
encode stores the refined features for the decode that follows, so the refined VAE works on
whole images (VAE tiling is refused while it is on).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deblurbench.sd.latents import encode


class Refiner(nn.Module):
    """x + conv(SiLU(conv(x))) (to ``out_ch`` through a 1x1 skip when widths differ); the
    last conv starts at zero, so a new refiner passes its main input through."""

    def __init__(self, in_ch: int, out_ch: int, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, out_ch, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: Tensor, main: Tensor | None = None) -> Tensor:
        return (x if main is None else main) + self.body(x)


class RefinedVAE(nn.Module):
    """The two refiners of ``vae`` and the hooks that apply them."""

    def __init__(self, vae, width: int = 32):
        super().__init__()
        enc_layers = [vae.encoder.conv_in, *vae.encoder.down_blocks]
        enc_out = [vae.encoder.conv_in.out_channels,
                   *(b.resnets[-1].conv2.out_channels for b in vae.encoder.down_blocks)]
        self.enc = nn.ModuleList(Refiner(c, c, width) for c in enc_out)
        # Each decoder block's skip: the deepest encoder feature at its scale, read off the
        # VAE's layout (which blocks down- or up-sample), so one refiner per block is built
        enc_scale = [1]
        for blk in vae.encoder.down_blocks:
            enc_scale.append(enc_scale[-1] * (2 if blk.downsamplers else 1))
        scale, self.skip_of = enc_scale[-1], []
        for blk in vae.decoder.up_blocks:
            scale //= 2 if blk.upsamplers else 1
            self.skip_of.append(max((i for i, f in enumerate(enc_scale) if f == scale),
                                    default=None))
        dec_out = [b.resnets[-1].conv2.out_channels for b in vae.decoder.up_blocks]
        self.dec = nn.ModuleList(
            nn.Identity() if i is None else Refiner(c + enc_out[i], c, width)
            for c, i in zip(dec_out, self.skip_of, strict=True))
        self.enabled = False
        self._skips: list[Tensor] = []
        for i, layer in enumerate(enc_layers):
            layer.register_forward_hook(self._enc_hook(i))
        for j, layer in enumerate(vae.decoder.up_blocks):
            layer.register_forward_hook(self._dec_hook(j))

    def _enc_hook(self, i: int):
        def hook(module, inputs, out):
            if not self.enabled:
                return None
            if i == 0:
                self._skips = []
            out = self.enc[i](out)
            self._skips.append(out)
            return out
        return hook

    def _dec_hook(self, j: int):
        def hook(module, inputs, out):
            i = self.skip_of[j]
            if not self.enabled or i is None:
                return None
            skip = self._skips[i]
            if skip.shape[0] != out.shape[0] or skip.shape[-2:] != out.shape[-2:]:
                raise ValueError(f"refined VAE: decoder block {j} got {tuple(out.shape)} but "
                                 f"its encoder skip is {tuple(skip.shape)}; decode the latent "
                                 f"of the last encode, whole (no VAE tiling)")
            return self.dec[j](torch.cat([out, skip], 1), main=out)
        return hook

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.enc.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.dec.parameters())


def encoder_loss(refined: RefinedVAE, vae, blurry: Tensor, sharp: Tensor) -> Tensor:
    """Phase 1: ||V'.encode(blurry) - V.encode(sharp)||^2 on the latent means."""
    refined.enabled = False
    with torch.no_grad():
        target = encode(vae, sharp, 1.0)
    refined.enabled = True
    try:
        got = encode(vae, blurry, 1.0)
    finally:
        refined.enabled = False
    return F.mse_loss(got, target)
