"""The class every method implements; the runner does all I/O, validation, timing and memory.

Contract (see ``methods/<name>/method.yaml`` for the card):

- ``__init__(params, device)``: ``params`` is the resolved configuration (paper params, or
  paper params overridden by ``small_params``), ``device`` a torch device string.
- ``restore(batch, **extras) -> batch``: float32 tensors Bx3xHxW, RGB, in [0, 1], on
  ``self.device``; returns the same shape and range. ``extras`` holds the optional inputs the
  card lists (``left``/``right`` dual-pixel views Bx3xHxW, ``blur_map`` Bx1xHxW in pixels) and
  is empty otherwise. Called under ``torch.no_grad()``.
- ``train(loader, params, callbacks)`` (trainable methods): ``loader`` yields dicts of batches
  (``blurry``, ``sharp`` and any extras, Bx3xhxw crops on the accelerator's device), one per
  step, deterministic per step so that a resumed run sees the same data; ``callbacks`` is a
  :class:`deblurbench.methods.train.TrainContext` (accelerator, ``prepare``, ``backward``,
  ``track`` for optimizers, and ``step`` which checkpoints and says when to stop).
- ``state_dict`` / ``load_state_dict``: everything ``restore`` needs after training (plain
  tensors and numbers; unwrap DDP modules first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from collections.abc import Iterable

    from deblurbench.methods.train import TrainContext


class Method:
    """Restores a batch of blurry images; subclass it in ``methods/<name>/<module>.py``."""

    def __init__(self, params: dict[str, Any], device: str = "cpu"):
        self.params = dict(params)
        self.device = device

    def restore(self, batch: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def train(self, loader: Iterable[dict[str, torch.Tensor]], params: dict[str, Any],
              callbacks: TrainContext) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not trainable")

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def networks(self) -> list[torch.nn.Module]:
        """The torch modules whose parameters count as the method's size (found on ``self``)."""
        found: list[torch.nn.Module] = []
        for value in vars(self).values():
            if isinstance(value, torch.nn.Module) and all(value is not m for m in found):
                found.append(value)
        return found
