"""PBCA, MBSD's patch-wise blur-aware cross-attention (paper 000, Sec. "Blur-Aware Restoration
Diffusion Model"): after each text cross-attention of the SD U-Net, the U-Net's tokens attend to
ControlNet features of the same resolution (which carry f_PBF).

The paper gives the placement, not the block's inside. Here it is a pre-norm multi-head
cross-attention whose output projection starts at zero, so that inserting it leaves the
pretrained U-Net unchanged at the first step (ControlNet's own zero-conv rule), and the
ControlNet features are average-pooled to at most ``tokens`` x ``tokens`` keys to bound its cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PBCA(nn.Module):
    """``forward(hidden B x N x C, context B x M x C_ctx)`` -> the residual to add to hidden."""

    def __init__(self, query_dim: int, context_dim: int, heads: int = 8):
        super().__init__()
        if query_dim % heads:
            raise ValueError(f"PBCA: query_dim {query_dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm_q = nn.LayerNorm(query_dim)
        self.norm_kv = nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, c = hidden.shape
        q = self.to_q(self.norm_q(hidden))
        kv = self.norm_kv(context.to(hidden.dtype))
        k, v = self.to_k(kv), self.to_v(kv)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return self.to_out(out.transpose(1, 2).reshape(b, n, c))


def feature_tokens(f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x C x H x W features -> B x (h*w) x C tokens, average-pooled to ``size`` = (h, w)."""
    if tuple(f.shape[-2:]) != tuple(size):
        f = F.adaptive_avg_pool2d(f, size)
    return f.flatten(2).transpose(1, 2)
