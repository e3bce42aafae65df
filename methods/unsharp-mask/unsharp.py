"""Unsharp masking with a separable Gaussian, in torch so it runs on CPU or GPU alike.

Trainable by grid search: squared errors of every (sigma, amount) pair are summed over the
training crops (the sums live in the state, so an interrupted search resumes where it stopped).
"""

import math

import torch
import torch.nn.functional as F

from deblurbench.methods.base import Method


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian (radius 3 sigma) with reflect padding; x is Bx3xHxW."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_h = min(radius, x.shape[2] - 1)
    pad_w = min(radius, x.shape[3] - 1)
    if pad_h < radius or pad_w < radius:
        x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    else:
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def unsharp(x: torch.Tensor, sigma: float, amount: float) -> torch.Tensor:
    return (x + amount * (x - gaussian_blur(x, sigma))).clamp(0, 1)


class UnsharpMask(Method):
    def __init__(self, params, device="cpu"):
        super().__init__(params, device)
        self.sigma = float(params.get("sigma", 2.0))
        self.amount = float(params.get("amount", 1.0))
        self.grid = [(float(s), float(a)) for s in params.get("grid_sigma", [self.sigma])
                     for a in params.get("grid_amount", [self.amount])]
        self.sse = torch.zeros(len(self.grid), dtype=torch.float64)
        self.pixels = 0

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        return unsharp(batch, self.sigma, self.amount)

    def train(self, loader, params, callbacks) -> None:
        for batch in loader:
            x, y = batch["blurry"], batch["sharp"]
            blurred = {s: gaussian_blur(x, s) for s in {s for s, _ in self.grid}}
            for i, (s, a) in enumerate(self.grid):
                out = (x + a * (x - blurred[s])).clamp(0, 1)
                self.sse[i] += float(((out - y) ** 2).sum())
            self.pixels += y.numel()
            best = int(torch.argmin(self.sse))
            self.sigma, self.amount = self.grid[best]
            if not callbacks.step(float(self.sse[best]) / self.pixels):
                break

    def state_dict(self):
        return {"sigma": self.sigma, "amount": self.amount, "grid": self.grid,
                "sse": self.sse.clone(), "pixels": self.pixels}

    def load_state_dict(self, state) -> None:
        if [tuple(g) for g in state["grid"]] != self.grid:
            raise ValueError("checkpoint grid differs from this configuration's grid")
        self.sigma, self.amount = float(state["sigma"]), float(state["amount"])
        self.sse, self.pixels = state["sse"].clone(), int(state["pixels"])
