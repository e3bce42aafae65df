"""The tiny SD VAE's reconstruction after a short training, per recipe (docs/sd-tiny-base.md).

``python bench/tiny_vae.py RECIPE [STEPS]``: trains a diffusers ``AutoencoderKL`` of the recipe
on random 96 px crops of six ``skimage.data`` photos (L1 plus 1e-6 KL, Adam, batch 4) and prints
the mean reconstruction PSNR of 8 fixed crops (a seventh photo held out, and two of the six).
``plain`` is an 8-conv autoencoder with the same 8x latent, for scale.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry", "cat"]
RECIPES = {
    "tiny": {"block": (8, 16, 32, 32)},  # deblurbench.sd.base.TINY_VAE
    "tiny-mean": {"block": (8, 16, 32, 32), "mean": True},
    "tiny-mse": {"block": (8, 16, 32, 32), "loss": "mse"},
    "tiny-lr3": {"block": (8, 16, 32, 32), "lr": 3e-3},
    "tiny-noattn": {"block": (8, 16, 32, 32), "attn": False},
    "tiny-g1": {"block": (8, 16, 32, 32), "groups": 1},
    "tiny-g2": {"block": (8, 16, 32, 32), "groups": 2},
    "tiny-g4": {"block": (8, 16, 32, 32), "groups": 4},
    "wide": {"block": (16, 32, 64, 64), "groups": 16},
    "w32": {"block": (32, 32, 32, 32)},
    "plain": {"plain": True},
}


def crops(pool, n, gen, side=96):
    out = []
    for _ in range(n):
        im = pool[int(torch.randint(len(pool), (1,), generator=gen))]
        y = int(torch.randint(im.shape[1] - side, (1,), generator=gen))
        x = int(torch.randint(im.shape[2] - side, (1,), generator=gen))
        out.append(im[:, y:y + side, x:x + side])
    return torch.stack(out)


def plain_autoencoder() -> tuple[nn.Module, nn.Module]:
    act = nn.SiLU
    enc = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), act(), nn.Conv2d(32, 32, 3, 2, 1), act(),
                        nn.Conv2d(32, 32, 3, 2, 1), act(), nn.Conv2d(32, 4, 3, 1, 1))
    dec = nn.Sequential(nn.Conv2d(4, 32, 3, 1, 1), act(), nn.Upsample(scale_factor=2),
                        nn.Conv2d(32, 32, 3, 1, 1), act(), nn.Upsample(scale_factor=2),
                        nn.Conv2d(32, 32, 3, 1, 1), act(), nn.Upsample(scale_factor=2),
                        nn.Conv2d(32, 3, 3, 1, 1))
    return enc, dec


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    r = RECIPES[name]
    imgs = [torch.from_numpy(getattr(data, n)().astype(np.float32) / 255).permute(2, 0, 1)
            for n in PHOTOS]
    train, held = imgs[:-1], imgs[-1:]
    gen = torch.Generator().manual_seed(0)
    val = crops(held + train[:2], 8, gen)
    torch.manual_seed(0)
    if r.get("plain"):
        enc, dec = plain_autoencoder()
        params = [*enc.parameters(), *dec.parameters()]
    else:
        from diffusers import AutoencoderKL

        block = r["block"]
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                            block_out_channels=block, layers_per_block=1,
                            down_block_types=("DownEncoderBlock2D",) * len(block),
                            up_block_types=("UpDecoderBlock2D",) * len(block),
                            norm_num_groups=r.get("groups", 8),
                            mid_block_add_attention=r.get("attn", True))
        params = list(vae.parameters())
    opt = torch.optim.Adam(params, lr=r.get("lr", 1e-3))
    t0 = time.perf_counter()
    for _ in range(steps):
        x = crops(train, 4, gen)
        if r.get("plain"):
            rec, kl = dec(enc(x * 2 - 1)) / 2 + 0.5, torch.zeros(())
        else:
            post = vae.encode(x * 2 - 1).latent_dist
            rec = (vae.decode(post.mean if r.get("mean") else post.sample()).sample + 1) / 2
            kl = post.kl().mean() / x[0].numel()
        loss = F.mse_loss(rec, x) if r.get("loss") == "mse" else (rec - x).abs().mean()
        opt.zero_grad()
        (loss + 1e-6 * kl).backward()
        opt.step()
    with torch.no_grad():
        if r.get("plain"):
            rec = dec(enc(val * 2 - 1)) / 2 + 0.5
        else:
            vae.eval()
            rec = (vae.decode(vae.encode(val * 2 - 1).latent_dist.mean).sample + 1) / 2
    mse = ((rec.clamp(0, 1) - val) ** 2).mean(dim=(1, 2, 3))
    print(f"{name}: {steps} steps in {time.perf_counter() - t0:.1f} s, reconstruction PSNR "
          f"{float((10 * torch.log10(1 / mse)).mean()):.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
