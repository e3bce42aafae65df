"""Richardson-Lucy deconvolution with one PSF per image, estimated from the image's edges."""

import torch

from deblurbench.methods.base import Method
from deblurbench.methods.psf import global_radius, psf_kernel, richardson_lucy


class RichardsonLucy(Method):
    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        shape, q = self.params["psf"], float(self.params["quantile"])
        n = int(self.params["iterations"])
        out = []
        for x in batch:
            radius = global_radius(x.permute(1, 2, 0).float().cpu().numpy(), shape, q)
            out.append(richardson_lucy(x[None], psf_kernel(shape, radius), n))
        return torch.cat(out)
