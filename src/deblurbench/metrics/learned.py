"""LPIPS through the ``lpips`` package (v0.1 linear layers ship with it; the ImageNet backbone
comes from torchvision's cache). Inputs are mapped to [-1, 1]; the restored image goes first,
since LPIPS is not symmetric in general. Regions use its spatial map.
"""

from __future__ import annotations

import numpy as np
import torch

from deblurbench.metrics.pyiqa_models import (
    TILE_ABOVE_PIXELS,
    TILING,
    batched,
    tiled,
    tiled_version,
    tiles,
    to_batch,
    to_tensor,
)
from deblurbench.metrics.spec import Computer, Metric, MetricSpec, MetricUnavailable, register
from deblurbench.metrics.weights import REQUIRED, unavailable_reason


def lpips_computer(model, device: str = "cpu") -> Computer:
    """Wrap an ``lpips.LPIPS`` model (pretrained or random) as a metric for one run."""
    model = model.to(device).eval()

    def forward(restored, reference, spatial: bool):
        model.spatial = spatial
        with torch.no_grad():
            out = model(to_tensor(restored, device), to_tensor(reference, device), normalize=True)
        return out[0, 0].cpu().numpy().astype(np.float64) if spatial else float(out.flatten()[0])

    def many(restored: list, references: list) -> list[float]:
        model.spatial = False
        with torch.no_grad():
            out = model(to_batch(restored, device), to_batch(references, device), normalize=True)
        return [float(v) for v in out.reshape(-1)]

    def fn(restored, reference):
        return float(tiled(lambda r, s: forward(r, s, False), restored, reference, many))

    def spatial_map(restored, reference):
        h, w = restored.shape[:2]
        if h * w <= TILE_ABOVE_PIXELS:
            return forward(restored, reference, True)
        out = np.empty((h, w))
        for y0, y1, x0, x1 in tiles(h, w):
            out[y0:y1, x0:x1] = forward(restored[y0:y1, x0:x1], reference[y0:y1, x0:x1], True)
        return out

    def region_fn(restored, reference, masks):
        smap = spatial_map(restored, reference)
        return {k: float(smap[m].mean()) for k, m in masks.items() if m.any()}

    return Computer(fn, region_fn, batch_fn=batched(fn, many))


def _build(net: str):
    def build(device: str) -> Computer:
        reason = unavailable_reason(f"lpips_{net}")
        if reason:
            raise MetricUnavailable(reason)
        import lpips

        return lpips_computer(lpips.LPIPS(net=net, version="0.1", verbose=False), device)
    return build


for _net, _bb in (("alex", "AlexNet"), ("vgg", "VGG16")):
    register(Metric(MetricSpec(
        name=f"lpips_{_net}", version=tiled_version("lpips-0.1-1"), kind="FR", direction="lower",
        library="lpips", colour_space="RGB mapped to [-1, 1]", window=f"{_bb} features",
        data_range=1.0, crop=0,
        definition=f"LPIPS v0.1 (Zhang et al. 2018), {_bb} backbone with the package's linear "
                   "layers, lpips.LPIPS(restored, sharp, normalize=True): restored first; "
                   "regions are means of its spatial map (spatial=True) over the masked pixels",
        identical_value=0.0, value_range=(0.0, float("inf")),
        weights=tuple(w.name for w in REQUIRED[f"lpips_{_net}"]), family="perceptual",
        regions=True, tiling=TILING), None, "lpips", build=_build(_net),
        available=lambda n=_net: unavailable_reason(f"lpips_{n}")))
