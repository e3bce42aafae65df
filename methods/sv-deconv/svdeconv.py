"""Two-stage spatially varying deconvolution: a defocus map, then per-level Wiener and blending."""

import numpy as np
import torch

from deblurbench.methods.base import Method
from deblurbench.methods.psf import defocus_map, psf_kernel, wiener


def level_weights(radius_map: torch.Tensor, levels: list[float]) -> torch.Tensor:
    """Linear-interpolation weights (LxHxW, summing to 1) of each pixel between its two levels."""
    r = radius_map.clamp(levels[0], levels[-1])
    weights = []
    for i, lv in enumerate(levels):
        w = torch.zeros_like(r)
        if i > 0:
            lo = levels[i - 1]
            sel = (r >= lo) & (r <= lv)
            w = torch.where(sel, (r - lo) / (lv - lo), w)
        if i < len(levels) - 1:
            hi = levels[i + 1]
            sel = (r >= lv) & (r < hi)
            w = torch.where(sel, (hi - r) / (hi - lv), w)
        weights.append(w)
    if len(levels) == 1:
        return torch.ones_like(r)[None]
    return torch.stack(weights)


class SpatiallyVaryingDeconv(Method):
    def blur_map(self, x: torch.Tensor) -> np.ndarray:
        img = x.permute(1, 2, 0).float().cpu().numpy()
        m = defocus_map(img, self.params["psf"], spread=float(self.params["spread"]))
        return m * float(self.params["scale"])

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        levels = sorted(float(v) for v in self.params["levels"])
        shape, lam = self.params["psf"], float(self.params["lam"])
        out = []
        for x in batch:
            rmap = torch.from_numpy(self.blur_map(x)).to(x.device)
            w = level_weights(rmap, levels)
            y = torch.zeros_like(x)
            for i, lv in enumerate(levels):
                if float(w[i].max()) == 0.0:
                    continue  # no pixel at this level
                deconv = wiener(x[None], psf_kernel(shape, lv), lam)[0] if lv > 0 else x
                y = y + w[i][None] * deconv
            out.append(y.clamp(0, 1)[None])
        return torch.cat(out)
