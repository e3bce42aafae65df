"""The class every method implements; the runner does all I/O, validation, timing and memory.

Contract (see ``methods/<name>/method.yaml`` for the card):

- ``__init__(params, device)``: ``params`` is the resolved configuration (paper params, or
  paper params overridden by ``small_params``), ``device`` a torch device string.
- ``restore(batch, **extras) -> batch``: float32 tensors Bx3xHxW, RGB, in [0, 1], on
  ``self.device``; returns the same shape and range. ``extras`` holds the optional inputs the
  card lists (``left``/``right`` dual-pixel views Bx3xHxW, ``blur_map`` Bx1xHxW in pixels) and
  is empty otherwise; never the card's ``train_inputs``. Called under ``torch.no_grad()``: a
  method whose sampling needs gradients (guidance by a loss) opens ``torch.enable_grad()``
  inside ``restore``.
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
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from deblurbench.methods.train import TrainContext


class Method:
    """Restores a batch of blurry images; subclass it in ``methods/<name>/<module>.py``."""

    card: Any = None  # the MethodCard, set by the registry when it loads the class

    def __init__(self, params: dict[str, Any], device: str = "cpu"):
        self.params = dict(params)
        self.device = device
        self._weights: list[dict[str, Any]] = []

    def pretrained(self, part_id: str) -> dict[str, Path] | None:
        """The files of the card's pretrained part ``part_id`` (name -> checked path), or None
        when they are not imported: the method then builds that part with random init. Either
        way the run records it (``weights_used``), so a board row never hides a fallback."""
        from deblurbench.config import ConfigError
        from deblurbench.weights import resolve

        parts = {p.id: p for p in (self.card.pretrained if self.card else [])}
        if part_id not in parts:
            raise ConfigError(f"method card lists no pretrained part {part_id!r} "
                              f"(listed: {', '.join(parts) or 'none'})")
        paths, record = resolve(parts[part_id])
        if paths is None and parts[part_id].required:
            raise FileNotFoundError(record["reason"])
        self._weights = [w for w in self._weights if w["id"] != part_id] + [record]
        return paths

    def weights_used(self) -> list[dict[str, Any]]:
        """Which pretrained weights this instance loaded, or that it used random init."""
        return list(getattr(self, "_weights", []))

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
        """The torch modules whose parameters count as the method's size: found on ``self``,
        inside dicts, lists and tuples there, and in pipelines' ``components`` (diffusers)."""
        found: list[torch.nn.Module] = []

        def visit(value: Any, depth: int) -> None:
            if isinstance(value, torch.nn.Module):
                if all(value is not m for m in found):
                    found.append(value)
            elif depth < 3 and isinstance(value, dict):
                for v in value.values():
                    visit(v, depth + 1)
            elif depth < 3 and isinstance(value, (list, tuple)):
                for v in value:
                    visit(v, depth + 1)
            elif depth < 3 and isinstance(getattr(value, "components", None), dict):
                visit(value.components, depth + 1)

        for value in vars(self).values():
            visit(value, 0)
        return found

    def flops_probe(self, batch: torch.Tensor, **extras: torch.Tensor,
                    ) -> tuple[Callable[[], Any], int, str] | None:
        """``(fn, times, how)``: FLOPs of ``restore`` are ``times`` x those of ``fn()``. An
        iterative sampler returns one denoising step and its step count, so counting costs one
        step, not a second full restore. None (the default): one full restore is counted."""
        return None
