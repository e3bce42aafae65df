"""RDDM's denoising network f_theta (Eq. 13-14) and its semantic guidance network H_theta.

Guidance: the first three stages of a ResNet (the paper: ResNet-50, He et al. 2015) on the
pre-deblurred image, frozen; the three feature maps are brought to the first stage's 1/4 grid,
concatenated, and passed through H_theta (two 1x1 convs with a LeakyReLU); each RDD block then
receives this map resized bilinearly to its own scale (Eq. 11). The guidance depends on I_p only,
so it is computed once per image, not once per denoising step.

Denoiser: a U-Net of RDD blocks, four encoder levels each closed by a stride-2 down-sampling conv,
four decoder levels opened by a pixel-shuffle up-sampling (Shi et al. 2016), additive skips. Its
input is x_t concatenated with the condition (I_p, I_map); it predicts the residual
R = x0 - I_p directly (not the noise). The output conv starts at zero, so the untrained network
predicts R = 0 and RDDM returns I_p.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deblurbench.nn.unet import build_levels

from .blocks import RDDBlock, timestep_embedding

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: guidance backbones: torchvision constructor name, or a (block, layers) ResNet
BACKBONES = ("resnet50", "resnet18", "resnet10")


def build_resnet(arch: str) -> nn.Module:
    """A randomly initialised torchvision ResNet (never downloads: ``weights=None``)."""
    import torchvision

    if arch == "resnet50":
        return torchvision.models.resnet50(weights=None)
    if arch == "resnet18":
        return torchvision.models.resnet18(weights=None)
    if arch == "resnet10":  # one BasicBlock per stage: the small config's guidance only
        from torchvision.models.resnet import BasicBlock, ResNet

        return ResNet(BasicBlock, [1, 1, 1, 1])
    raise ValueError(f"unknown guidance backbone {arch!r}; expected one of {BACKBONES}")


def imagenet_normalize(img: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    return (img - mean) / std


class SemanticGuidance(nn.Module):
    """``forward(I_p) -> s`` (N x out_ch x H/4 x W/4): frozen ResNet stages 1-3, then H_theta.

    The backbone stays in eval mode (its batch-norm statistics are part of the frozen weights)
    and runs without gradient: it is frozen, and nothing upstream needs gradients through it."""

    def __init__(self, arch: str = "resnet50", out_ch: int = 64):
        super().__init__()
        net = build_resnet(arch)
        self.arch = arch
        self.backbone = nn.ModuleDict({
            "stem": nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
            "layer1": net.layer1, "layer2": net.layer2, "layer3": net.layer3})
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        chans = sum(_out_channels(layer) for layer in (net.layer1, net.layer2, net.layer3))
        self.head = nn.Sequential(nn.Conv2d(chans, out_ch, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(out_ch, out_ch, 1))

    def train(self, mode: bool = True) -> SemanticGuidance:
        super().train(mode)
        self.backbone.eval()
        return self

    def load_backbone(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision ResNet state dict (its stem and layers 1-3; the rest is unused)."""
        own = {"conv1": "stem.0", "bn1": "stem.1"}
        mapped = {}
        for k, v in state.items():
            head = k.split(".", 1)[0]
            if head in own:
                mapped[own[head] + k[len(head):]] = v
            elif head in ("layer1", "layer2", "layer3"):
                mapped[k] = v
        missing = sorted(set(self.backbone.state_dict()) - set(mapped))
        if missing:
            raise ValueError(f"guidance backbone weights lack {missing[:4]} (is it a "
                             f"{self.arch}?)")
        self.backbone.load_state_dict(mapped, strict=False)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            b = self.backbone
            f1 = b["layer1"](b["stem"](imagenet_normalize(img)))
            f2 = b["layer2"](f1)
            f3 = b["layer3"](f2)
            size = f1.shape[-2:]
            return torch.cat([f1, *(F.interpolate(f, size=size, mode="bilinear",
                                                  align_corners=False) for f in (f2, f3))], 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(img))


def _out_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features


class Denoiser(nn.Module):
    """``forward(x_t, t, cond, guide) -> R``: x_t N x 3 x H x W, t N timesteps (1..T), cond
    N x cond_ch x H x W (I_p and I_map), guide N x guide_ch x h x w at any size; H and W
    multiples of :attr:`multiple`.

    The intro conv's weights on x_t start at zero. The residual is small (mean |R| about 0.05
    on the synthetic set) beside unit noise, so for almost every t the noisy input carries
    nothing the condition does not; starting blind to it, the network first learns R from the
    condition and then how much of x_t to use (an initialisation choice; the paper gives none).
    """

    def __init__(self, in_ch: int = 7, width: int = 64, enc_blks: Sequence[int] = (1, 1, 1, 1),
                 mid_blks: int = 1, dec_blks: Sequence[int] = (1, 1, 1, 1), guide_ch: int = 64,
                 group_channels: int = 16, impl: str = "auto"):
        super().__init__()
        if len(enc_blks) != len(dec_blks):
            raise ValueError(f"Denoiser: {len(enc_blks)} encoder levels but {len(dec_blks)} "
                             f"decoder levels")
        self.width = width
        temb_ch = 4 * width
        self.temb = nn.Sequential(nn.Linear(width, temb_ch), nn.SiLU(),
                                  nn.Linear(temb_ch, temb_ch))
        self.intro = nn.Conv2d(in_ch, width, 3, padding=1)
        with torch.no_grad():  # x_t's taps start at zero (see the class docstring)
            self.intro.weight[:, :3].zero_()

        def stage(c: int, n: int) -> nn.ModuleList:
            return nn.ModuleList(RDDBlock(c, guide_ch, temb_ch, group_channels, impl)
                                 for _ in range(n))

        build_levels(self, width, enc_blks, mid_blks, dec_blks, stage)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)

    @property
    def multiple(self) -> int:
        return 2 ** len(self.encoders)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                guide: torch.Tensor) -> torch.Tensor:
        temb = self.temb(timestep_embedding(t, self.width))
        scaled: dict[tuple[int, int], torch.Tensor] = {}

        def run(blocks: nn.ModuleList, y: torch.Tensor) -> torch.Tensor:
            size = tuple(y.shape[-2:])
            if size not in scaled:
                scaled[size] = (guide if tuple(guide.shape[-2:]) == size else
                                F.interpolate(guide, size=size, mode="bilinear",
                                              align_corners=False))
            for blk in blocks:
                y = blk(y, scaled[size], temb)
            return y

        y = self.intro(torch.cat([x_t, cond], dim=1))
        skips = []
        for enc, down in zip(self.encoders, self.downs, strict=True):
            y = run(enc, y)
            skips.append(y)
            y = down(y)
        y = run(self.middle, y)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            y = run(dec, up(y) + skip)
        return self.ending(y)
