"""RDDM's defocus-map estimator g_theta: a SegFormer (Xie et al. 2021) from ``transformers``,
built from a config (random init) with one output channel.

The paper trains it on the real defocus images of Lee et al. 2019 with binary blur maps and a
sigmoid cross-entropy loss, with Adam. Those weights are not available here, so it is trained on
the synthetic data's true per-pixel blur radius, scaled to [0, 1] by ``map_scale_px`` (the data
set's largest radius): the same sigmoid cross-entropy, with soft targets. The map it outputs is
the sigmoid of its logits, up-sampled from SegFormer's 1/4 grid to the image, in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .denoiser import imagenet_normalize


def segformer_config(params: dict[str, Any]):
    from transformers import SegformerConfig

    sizes = list(params["seg_hidden_sizes"])
    return SegformerConfig(
        num_labels=1, num_channels=3, num_encoder_blocks=len(sizes), hidden_sizes=sizes,
        depths=list(params["seg_depths"]), num_attention_heads=list(params["seg_heads"]),
        sr_ratios=list(params["seg_sr_ratios"]), decoder_hidden_size=int(params["seg_decoder"]),
        patch_sizes=[7, 3, 3, 3][:len(sizes)], strides=[4, 2, 2, 2][:len(sizes)],
        mlp_ratios=[4] * len(sizes), drop_path_rate=float(params["seg_drop_path"]))


class DefocusMapEstimator(nn.Module):
    """``forward(img) -> map`` N x 1 x H x W in [0, 1]; ``forward(img, as_logits=True)``: the
    logits before the sigmoid (training's loss takes them)."""

    def __init__(self, params: dict[str, Any]):
        super().__init__()
        from transformers import SegformerForSemanticSegmentation

        self.seg = SegformerForSemanticSegmentation(segformer_config(params))

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        out = self.seg(pixel_values=imagenet_normalize(img)).logits
        return F.interpolate(out, size=img.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, img: torch.Tensor, as_logits: bool = False) -> torch.Tensor:
        z = self.logits(img)
        return z if as_logits else torch.sigmoid(z)

    def load_files(self, files: dict[str, Path]) -> list[str]:
        """Load a SegFormer state dict (``.safetensors`` or a torch file; a bare MiT encoder's
        keys are accepted too); returns the keys left at random init (e.g. the head)."""
        state: dict[str, torch.Tensor] = {}
        for path in files.values():
            if str(path).endswith(".safetensors"):
                from safetensors.torch import load_file

                state |= load_file(str(path))
            elif str(path).endswith((".bin", ".pt", ".pth")):
                state |= torch.load(path, map_location="cpu", weights_only=True)
        own = self.seg.state_dict()
        fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not fit:
            raise ValueError(f"no tensor of {sorted(files)} fits this SegFormer config")
        self.seg.load_state_dict(fit, strict=False)
        return sorted(set(own) - set(fit))
