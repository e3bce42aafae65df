"""What the SD methods' training loops share: the noise loss, the tiny base's own stage, and
which weights a checkpoint keeps.

Only what a paper trains is trained (its ControlNet, new attention blocks, new heads); the base
stays frozen and out of the checkpoint, since it reloads from its imported files. The exception
is the tiny random-init base: a random VAE cannot encode an image, so nothing built on it could
learn. Stage ``base`` therefore trains the tiny VAE (L1 reconstruction plus a small KL term) and
U-Net (the noise loss on sharp latents, empty prompt) on the training split first, as SD itself
was trained; it then sets the latent scale to 1 / std of the latents, the rule SD's 0.18215
comes from. A card names it as a deviation; it never runs on an imported base.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from deblurbench.sd.base import SDBase
from deblurbench.sd.latents import encode

KL_WEIGHT = 1e-6  # the KL term's weight in the tiny VAE's loss (LDM's KL-f8 order)


def noised(scheduler, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z_t, t, noise): t uniform over the training timesteps (DDPM, Ho et al. 2020)."""
    t = torch.randint(0, scheduler.config.num_train_timesteps, (z0.shape[0],),
                      device=z0.device)
    noise = torch.randn_like(z0)
    return scheduler.add_noise(z0, noise, t), t, noise


def noise_loss(eps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``|| eps - eps_theta ||^2``, the epsilon-prediction loss."""
    return F.mse_loss(eps.float(), noise.float())


def base_parameters(base: SDBase) -> list[torch.nn.Parameter]:
    return [*base.vae.parameters(), *base.unet.parameters()]


def base_step(base: SDBase, sharp: torch.Tensor, scheduler, prompt: list[str],
              backward) -> dict[str, float]:
    """One step of the tiny base's stage on sharp crops in [0, 1], one prompt per crop (the
    caller steps the optimizer over :func:`base_parameters`)."""
    if not base.is_tiny:
        raise RuntimeError("stage base trains only the tiny random-init base; an imported "
                           "base stays frozen (remove the stage from params.stages)")
    base.vae.train()
    base.unet.train()
    base.vae.requires_grad_(True)
    base.unet.requires_grad_(True)
    post = base.vae.encode(sharp * 2 - 1).latent_dist
    rec = (base.vae.decode(post.sample()).sample + 1) / 2
    l1 = (rec - sharp).abs().mean()
    kl = post.kl().mean() / sharp[0].numel()
    z0 = post.mean.detach() * base.latent_scale
    zt, t, noise = noised(scheduler, z0)
    if len(prompt) != z0.shape[0]:
        raise ValueError(f"base_step: {len(prompt)} prompts for a batch of {z0.shape[0]}")
    text = base.text_embeddings(prompt)
    eps = base.unet(zt, t, encoder_hidden_states=text, return_dict=False)[0]
    nl = noise_loss(eps, noise)
    backward(l1 + KL_WEIGHT * kl + nl)
    return {"vae_l1": float(l1.detach()), "vae_kl": float(kl.detach()),
            "unet_noise": float(nl.detach())}


@torch.no_grad()
def fit_latent_scale(base: SDBase, images: torch.Tensor) -> float:
    """Set the VAE's scaling factor to 1 / std of the unscaled latents of ``images``."""
    base.vae.eval()
    std = float(encode(base.vae, images, 1.0).std())
    base.vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
    return base.latent_scale


def end_base_stage(base: SDBase, images: torch.Tensor) -> float:
    scale = fit_latent_scale(base, images)
    base.freeze()
    return scale


def base_state(base: SDBase) -> dict[str, Any]:
    """The base's share of a checkpoint: nothing for an imported base (it reloads from its
    files), the trained weights and latent scale for the tiny one."""
    if not base.is_tiny:
        return {}
    return {"vae": base.vae.state_dict(), "unet": base.unet.state_dict(),
            "text_encoder": base.text_encoder.state_dict(), "latent_scale": base.latent_scale}


def load_base_state(base: SDBase, state: dict[str, Any]) -> None:
    if not state:
        return
    if not base.is_tiny:
        raise ValueError("this checkpoint holds a tiny base's weights but the method loaded an "
                         "imported base; retrain with the imported base")
    base.vae.load_state_dict(state["vae"])
    base.unet.load_state_dict(state["unet"])
    base.text_encoder.load_state_dict(state["text_encoder"])
    base.vae.register_to_config(scaling_factor=float(state["latent_scale"]))
