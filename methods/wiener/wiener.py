"""Wiener deconvolution with one PSF per image, its radius estimated from the image's edges."""

import torch

from deblurbench.methods.base import Method
from deblurbench.methods.psf import global_radius, psf_kernel, wiener


class Wiener(Method):
    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        shape, q, lam = self.params["psf"], float(self.params["quantile"]), float(self.params["lam"])
        out = []
        for x in batch:
            radius = global_radius(x.permute(1, 2, 0).float().cpu().numpy(), shape, q)
            out.append(wiener(x[None], psf_kernel(shape, radius), lam))
        return torch.cat(out)
