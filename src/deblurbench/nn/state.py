"""Checkpoint only what training changes: a method built around frozen pretrained parts (a
Stable Diffusion UNet and VAE) saves its trainable tensors; the frozen ones are referenced by
digest in the checkpoint's ``pretrained`` record and reloaded from the weights cache."""

from __future__ import annotations

import torch
from torch import nn


def trainable_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters with ``requires_grad`` and every buffer (running statistics change too)."""
    keep = {n for n, p in module.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in module.named_buffers()}
    return {k: v for k, v in module.state_dict().items() if k in keep}


def load_trainable_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a :func:`trainable_state_dict`; refuses one that misses a trainable tensor."""
    want = set(trainable_state_dict(module))
    missing = sorted(want - set(state))
    unexpected = sorted(set(state) - set(module.state_dict()))
    if missing or unexpected:
        raise ValueError(f"trainable state does not match the module (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    module.load_state_dict(state, strict=False)
