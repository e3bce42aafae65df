"""Training losses shared by the learned methods. Inputs are float tensors of equal shape."""

from __future__ import annotations

import torch
from torch import nn


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((pred - target)^2 + eps^2)): an L1 loss made smooth at 0 (used by JDRL), so its
    gradient does not flip sign on tiny residuals."""
    if pred.shape != target.shape:
        raise ValueError(f"charbonnier: pred {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} differ in shape")
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier`, for configs that build losses by name."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return charbonnier(pred, target, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
