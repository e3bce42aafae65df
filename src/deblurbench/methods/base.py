"""The class every method implements; the runner does all I/O, validation and timing."""

from __future__ import annotations

from typing import Any

import torch


class Method:
    """Restores a batch of blurry images.

    ``restore`` takes and returns float32 tensors Bx3xHxW, RGB, in [0, 1], on ``self.device``.
    Trainable methods also implement ``train``, ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, params: dict[str, Any], device: str = "cpu"):
        self.params = dict(params)
        self.device = device

    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
