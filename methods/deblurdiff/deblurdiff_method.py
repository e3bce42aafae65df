"""DeblurDiff (latent kernel prediction + element-wise adaptive convolution + ControlNet on SD
2.1 base) as a DeblurBench method, on the shared SD stack (:mod:`deblurbench.sd`).

Training (joint, as the paper trains LKPN and ControlNet): z_b = E(blurry), z_s = E(sharp) with
the frozen VAE; z_t = q(z_s, t); K = LKPN(z_t, z_b, t); z_eac = EAC(z_b, K) (+ z_b); the
ControlNet's hint is concat(z_eac, z_b); loss = ||eps - eps_theta||^2 + lambda ||z_eac - z_s||^2.

Sampling: at each DDIM step LKPN sees the current estimate (x_T at the first step, then the
previous step's x0 estimate: the paper's iterative refinement), so the hint sharpens as the
sampler goes. Variant ``static-lkpn`` is the paper's "w/o SD for LKPN": LKPN always sees x_T.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from deblurbench.sd.control import controlled_eps, make_controlnet, refresh_from_unet
from deblurbench.sd.latents import crop
from deblurbench.sd.method import SDMethod
from deblurbench.sd.training import noise_loss, noised

from .eac import eac
from .lkpn import LKPN


class DeblurDiffMethod(SDMethod):
    def build(self) -> None:
        p = self.params
        ch = int(self.base.unet.config.in_channels)
        self.k = int(p["kernel_size"])
        attn = p.get("lkpn_attn_levels")
        self.lkpn = LKPN(latent_ch=ch, width=int(p["lkpn_width"]), mults=tuple(p["lkpn_mults"]),
                         blocks_per_level=int(p["lkpn_blocks"]),
                         attn_levels=None if attn is None else tuple(bool(a) for a in attn),
                         heads=int(p["lkpn_heads"]), kernel_size=self.k)
        # the hint is latent-sized (EAC latent + blurry latent): embedded without down-sampling
        self.controlnet = make_controlnet(self.base.unet, hint_channels=2 * ch, hint_downs=0,
                                          width=int(p["hint_width"]),
                                          seed=int(p.get("init_seed", 0)))

    def trainable(self) -> dict[str, torch.nn.Module]:
        return {"lkpn": self.lkpn, "controlnet": self.controlnet}

    def after_base(self) -> None:
        refresh_from_unet(self.controlnet, self.base.unet)

    def loss_weights(self) -> dict[str, float]:
        return {"noise": 1.0, "eac_latent": float(self.params["lambda_eac"])}

    def hint(self, x: torch.Tensor, z_b: torch.Tensor, t: torch.Tensor,
             lkpn: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(hint, z_eac): the EAC latent from LKPN's kernels, concatenated with z_b."""
        lkpn = self.lkpn if lkpn is None else lkpn
        tt = t.expand(x.shape[0]) if t.dim() else t.repeat(x.shape[0])
        z_eac = eac(z_b, lkpn(x, z_b, tt), self.k, residual=True)
        return torch.cat([z_eac, z_b], 1), z_eac

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z_b, z_s = self.encode(batch["blurry"]), self.encode(batch["sharp"])
        zt, t, noise = noised(self.base.ddpm(), z_s)
        hint, z_eac = self.hint(zt, z_b, t, self.net("lkpn"))
        eps = controlled_eps(self.base.unet, self.net("controlnet"), zt, t,
                             self.text(batch["blurry"]), hint)
        return {"noise": noise_loss(eps, noise), "eac_latent": F.mse_loss(z_eac, z_s)}

    # -- sampling -------------------------------------------------------------------------------
    def context(self, blurry: torch.Tensor, z_lr: torch.Tensor) -> dict[str, Any]:
        return {"z_b": z_lr, "x": None, "text": {c: self.text(blurry, c) for c in (True, False)}}

    def eps(self, zt, t, window, conditional, ctx) -> torch.Tensor:
        z_b = crop(ctx["z_b"], window)
        # first step: LKPN sees x_T itself; later: the previous x0 estimate (refinement)
        x = zt if ctx["x"] is None else crop(ctx["x"], window)
        hint, _ = self.hint(x, z_b, t)
        return controlled_eps(self.base.unet, self.controlnet, zt, t,
                              ctx["text"][conditional], hint)

    def on_step(self, ctx, i, t, x0) -> None:
        if bool(self.params["lkpn_refine"]):
            ctx["x"] = x0
