"""MBSD (multi-level blur-aware Stable Diffusion, AAAI 2026) as a DeblurBench method, on the
shared SD stack (:mod:`deblurbench.sd`).

Forward (Fig. 2): PBA labels supervise MSBE, whose per-scale blur probabilities R_l become
expert weights omega_l through a two-layer 1x1 head; BAEM (a NAFNet-style U-Net of PMoECBs, Eq.
5) extracts the blur-aware features f_PBF and decodes them into a fidelity restoration (Eq. 6);
BRDM is SD 2 base with a ControlNet fed with f_PBF, whose intermediate features (before the
zero convs) reach the U-Net through PBCA cross-attention blocks placed after each text
cross-attention; the ControlNet's usual residuals are added too. Loss Eq. 8: L_noise + lambda1
L_MSBE + lambda2 L_restoration (lambda1 = lambda2 = 1). Sampling: 20 DDIM steps starting from the
noised blurry latent (the LR embedding of SeeSR the paper adopts).

PBA labels are computed on each training crop by the project's PBA (``deblurbench.annotate.pba``,
the annotate stage's code) with the card's ``patch_sizes``: a random crop does not fall on the
whole-image grid the annotate stage stores, and the paper's 64-512 px patches give degenerate
grids on small crops, so the small configuration scales them with the crop (CARD.md).
Ablations (Table 2) are variants: ``brdm-only`` (ControlNet on the blurry image, no MSBE, BAEM,
PBCA), ``pba-weights`` (PBA's hard labels as the expert weights, no MSBE), ``msbe`` (MSBE
without L_restoration); the default is the full model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deblurbench.annotate.pba import PBAParams, annotate
from deblurbench.sd.control import controlled_eps, make_controlnet, refresh_from_unet
from deblurbench.sd.latents import crop
from deblurbench.sd.method import SDMethod
from deblurbench.sd.training import noise_loss, noised

from .baem import BAEM, ExpertHead, restoration_loss
from .msbe import MSBE, msbe_loss, probabilities
from .pbca import PBCA, feature_tokens

GUIDANCE = ("pbf", "blurry")
EXPERT_WEIGHTS = ("msbe", "pba")


def pba_labels(images: torch.Tensor, patch_sizes: list[int]) -> list[torch.Tensor]:
    """PBA levels (0..3) of each image, per scale: B x gh x gw int64 on the images' device."""
    params = PBAParams(patch_sizes=tuple(int(s) for s in patch_sizes))
    arr = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    per = [annotate(np.ascontiguousarray(a), params).labels for a in arr]
    return [torch.from_numpy(np.stack([p[s] for p in per]).astype(np.int64)).to(images.device)
            for s in range(len(patch_sizes))]


class PBCAProcessor:
    """The U-Net's text cross-attention (attn2) followed by PBCA over ControlNet features of the
    same resolution and width; ``store`` holds them for the current forward pass."""

    def __init__(self, pbca: PBCA, store: dict[tuple[int, int], torch.Tensor]):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.text_attention = AttnProcessor2_0()
        self.pbca = pbca
        self.store = store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):
        out = self.text_attention(attn, hidden_states, encoder_hidden_states, attention_mask,
                                  temb)
        ctx = self.store.get((hidden_states.shape[1], hidden_states.shape[2]))
        return out if ctx is None else out + self.pbca(hidden_states, ctx)


class MBSDMethod(SDMethod):
    def build(self) -> None:
        p = self.params
        self.guidance = str(p["guidance"])
        self.expert_weights = str(p["expert_weights"])
        if self.guidance not in GUIDANCE or self.expert_weights not in EXPERT_WEIGHTS:
            raise ValueError(f"mbsd: guidance must be one of {GUIDANCE} and expert_weights one "
                             f"of {EXPERT_WEIGHTS}; got {self.guidance!r}, "
                             f"{self.expert_weights!r}")
        self.patch_sizes = [int(s) for s in p["patch_sizes"]]
        unet = self.base.unet
        self.msbe = MSBE(in_ch=3, width=int(p["msbe_width"]), n_blocks=int(p["msbe_blocks"]),
                         pools=tuple(p["msbe_pools"]), patch_sizes=tuple(self.patch_sizes))
        self.heads = torch.nn.ModuleList(ExpertHead() for _ in self.patch_sizes)
        self.baem = BAEM(in_ch=3, width=int(p["baem_width"]), enc_blks=tuple(p["baem_enc_blks"]),
                         mid_blks=int(p["baem_mid_blks"]), dec_blks=tuple(p["baem_dec_blks"]),
                         pbf_ch=int(p["pbf_ch"]))
        if self.guidance == "pbf":  # f_PBF, resized to the latent grid: no down-sampling
            self.controlnet = make_controlnet(unet, self.baem.pbf_ch, 0, int(p["hint_width"]),
                                              seed=int(p.get("init_seed", 0)))
        else:  # BRDM only: the blurry image, 8x down to the latent grid (diffusers' default)
            self.controlnet = make_controlnet(unet, 3, 3, int(p["hint_width"]),
                                              seed=int(p.get("init_seed", 0)))
        self._features: dict[tuple[int, int], torch.Tensor] = {}
        self.pbca = torch.nn.ModuleDict()
        if self.guidance == "pbf":
            self._install_pbca(int(p["pbca_heads"]))
            self._hook_controlnet()

    # -- wiring ---------------------------------------------------------------------------------
    def _install_pbca(self, heads: int) -> None:
        procs = dict(self.base.unet.attn_processors)
        mods = dict(self.base.unet.named_modules())
        for name in procs:
            if name.endswith("attn2.processor"):
                attn = mods[name.removesuffix(".processor")]
                dim = int(attn.to_q.in_features)
                block = PBCA(dim, dim, heads=heads)
                self.pbca[name.removesuffix(".processor").replace(".", "_")] = block
                procs[name] = PBCAProcessor(block, self._features)
        self.base.unet.set_attn_processor(procs)

    def _hook_controlnet(self) -> None:
        """Keep the input of each ControlNet zero conv (its feature before the zero conv) as
        PBCA context, keyed by (tokens, channels), pooled to ``pbca_tokens`` per side."""
        side = int(self.params["pbca_tokens"])

        def keep(module, inputs):
            f = inputs[0]
            key = (f.shape[-2] * f.shape[-1], f.shape[1])
            h, w = f.shape[-2:]
            size = (min(h, side), min(w, side))
            self._features[key] = feature_tokens(f, size)

        for conv in (*self.controlnet.controlnet_down_blocks, self.controlnet.controlnet_mid_block):
            conv.register_forward_pre_hook(keep)

    def trainable(self) -> dict[str, torch.nn.Module]:
        mods: dict[str, torch.nn.Module] = {"controlnet": self.controlnet}
        if self.guidance == "pbf":
            mods |= {"baem": self.baem, "heads": self.heads, "pbca": self.pbca}
            if self.expert_weights == "msbe":
                mods["msbe"] = self.msbe
        return mods

    def after_base(self) -> None:
        refresh_from_unet(self.controlnet, self.base.unet)

    def loss_weights(self) -> dict[str, float]:
        return {"noise": 1.0, "msbe": float(self.params["lambda_msbe"]),
                "restoration": float(self.params["lambda_rest"])}

    # -- the guidance branch --------------------------------------------------------------------
    def blur_aware(self, blurry: torch.Tensor, msbe=None, baem=None, heads=None,
                   ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(f_PBF, restored image, MSBE logits; empty for PBA weights)."""
        msbe = self.msbe if msbe is None else msbe
        baem = self.baem if baem is None else baem
        heads = self.heads if heads is None else heads
        if self.expert_weights == "msbe":
            logits = msbe(blurry)
            probs = probabilities(logits)
        else:
            logits = []
            probs = [F.one_hot(lab, 4).permute(0, 3, 1, 2).float()
                     for lab in pba_labels(blurry, self.patch_sizes)]
        weights = [head(pr) for head, pr in zip(heads, probs, strict=True)]
        f_pbf, restored = baem(blurry, weights, self.patch_sizes)
        return f_pbf, restored, logits

    def hint(self, blurry: torch.Tensor, latent_hw: tuple[int, int], f_pbf=None) -> torch.Tensor:
        if self.guidance == "blurry":
            return blurry
        return F.interpolate(f_pbf, size=latent_hw, mode="bilinear", align_corners=False)

    def _eps(self, controlnet, zt, t, text, hint) -> torch.Tensor:
        self._features.clear()
        try:
            return controlled_eps(self.base.unet, controlnet, zt, t, text, hint)
        finally:
            self._features.clear()

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        blurry, sharp = batch["blurry"], batch["sharp"]
        z_s = self.encode(sharp)
        zt, t, noise = noised(self.base.ddpm(), z_s)
        out: dict[str, torch.Tensor] = {}
        f_pbf = None
        if self.guidance == "pbf":
            f_pbf, restored, logits = self.blur_aware(
                blurry, self.net("msbe") if "msbe" in self.trainable() else None,
                self.net("baem"), self.net("heads"))
            if logits:
                out["msbe"] = msbe_loss(logits, pba_labels(blurry, self.patch_sizes))
            out["restoration"] = restoration_loss(restored, sharp)
        eps = self._eps(self.net("controlnet"), zt, t, self.text(blurry),
                        self.hint(blurry, tuple(z_s.shape[-2:]), f_pbf))
        out["noise"] = noise_loss(eps, noise)
        return out

    # -- sampling -------------------------------------------------------------------------------
    def context(self, blurry: torch.Tensor, z_lr: torch.Tensor) -> dict[str, Any]:
        f_pbf = self.blur_aware(blurry)[0] if self.guidance == "pbf" else None
        return {"hint": self.hint(blurry, tuple(z_lr.shape[-2:]), f_pbf),
                "factor": 8 if self.guidance == "blurry" else 1,
                "text": {c: self.text(blurry, c) for c in (True, False)}}

    def eps(self, zt, t, window, conditional, ctx) -> torch.Tensor:
        return self._eps(self.controlnet, zt, t, ctx["text"][conditional],
                         crop(ctx["hint"], window, ctx["factor"]))
