"""The floor of every table: the blurry input itself."""

import torch

from deblurbench.methods.base import Method


class Identity(Method):
    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.clone()
