"""ControlNet over the frozen U-Net: built from the U-Net's encoder, as the papers do.

``hint_channels`` and ``hint_downs`` say what the hint is: an image (3 channels, 3 stride-2
convs to the latent size: diffusers' default embedding) or a latent-sized map (DeblurDiff's
EAC latent with the blurry latent; MBSD's blur-aware features), embedded without down-sampling.
The hint embedding and the zero convs are new (random, zero); the rest copies the U-Net.
"""

from __future__ import annotations

import torch


def embedding_channels(hint_downs: int, width: int = 16) -> tuple[int, ...]:
    """Channels of the hint embedding: ``hint_downs`` stride-2 convs need ``hint_downs + 1``
    entries (diffusers' convention)."""
    return tuple(width * 2 ** min(i, 3) for i in range(hint_downs + 1))


def make_controlnet(unet, hint_channels: int, hint_downs: int, width: int = 16, seed: int = 0):
    from diffusers import ControlNetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ControlNetModel.from_unet(
            unet, conditioning_channels=hint_channels,
            conditioning_embedding_out_channels=embedding_channels(hint_downs, width))


def refresh_from_unet(controlnet, unet) -> None:
    """Copy the U-Net's encoder into the ControlNet in place (after a tiny base was trained,
    so the ControlNet starts from the trained encoder, as it would from SD's); the hint embedding
    and zero convs are kept. In place, so an optimizer holding the parameters stays valid."""
    own = controlnet.state_dict()
    with torch.no_grad():
        for name, value in unet.state_dict().items():
            if name in own and own[name].shape == value.shape and not name.startswith(
                    ("controlnet_", "conv_in")):
                own[name].copy_(value)
        if controlnet.conv_in.weight.shape == unet.conv_in.weight.shape:
            controlnet.conv_in.load_state_dict(unet.conv_in.state_dict())


def controlled_eps(unet, controlnet, z: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                   hint: torch.Tensor, scale: float = 1.0,
                   control_context: torch.Tensor | None = None) -> torch.Tensor:
    """The U-Net's noise prediction with the ControlNet's residuals added. The ControlNet's
    cross-attention reads ``control_context`` when given (BD-Diff's adapter reads its structure
    features), else the same text as the U-Net."""
    t = t.expand(z.shape[0]) if t.dim() else t.repeat(z.shape[0])
    ctx = text if control_context is None else control_context
    down, mid = controlnet(z, t, encoder_hidden_states=ctx, controlnet_cond=hint,
                           conditioning_scale=scale, return_dict=False)
    return unet(z, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                mid_block_additional_residual=mid, return_dict=False)[0]
