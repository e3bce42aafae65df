"""Exponential moving average of a model's weights, for evaluating a smoother model than the
last optimiser step, with a state that resumes exactly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain

import torch
from torch import nn


def _float_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's floating-point parameters and buffers by name (integer counters excluded:
    averaging them is meaningless)."""
    named = chain(model.named_parameters(), model.named_buffers())
    return {name: t for name, t in named if t.is_floating_point()}


class EMA:
    """Shadow weights ``s <- d * s + (1 - d) * w`` after each :meth:`update`.

    With ``warmup`` the decay of the n-th update (n counted from 0) is
    ``min(decay, (1 + n) / (10 + n))``, so the early shadow is not dominated by the random
    initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow = {k: t.detach().clone() for k, t in _float_tensors(model).items()}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    def _live(self, model: nn.Module) -> dict[str, torch.Tensor]:
        live = _float_tensors(model)
        if live.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - live.keys())
            extra = sorted(live.keys() - self.shadow.keys())
            raise ValueError(f"EMA: model does not match the shadow (missing {missing[:5]}, "
                             f"unexpected {extra[:5]})")
        return live

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for k, t in self._live(model).items():
            self.shadow[k].mul_(d).add_(t.detach(), alpha=1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's float weights with the shadow."""
        for k, t in self._live(model).items():
            t.copy_(self.shadow[k])

    @contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model with the EMA weights inside the block, its own weights again after it,
        even if the block raises."""
        live = self._live(model)
        backup = {k: t.detach().clone() for k, t in live.items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for k, t in live.items():
                    t.copy_(backup[k])

    def state_dict(self) -> dict:
        """Plain data: the settings, the update count (the warm-up depends on it), the shadow."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: t.clone() for k, t in self.shadow.items()}}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        shadow = state["shadow"]
        if shadow.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - shadow.keys())
            extra = sorted(shadow.keys() - self.shadow.keys())
            raise ValueError(f"EMA state does not match the model (missing {missing[:5]}, "
                             f"unexpected {extra[:5]})")
        for k, t in shadow.items():
            if t.shape != self.shadow[k].shape:
                raise ValueError(f"EMA state {k!r}: shape {tuple(t.shape)}, model has "
                                 f"{tuple(self.shadow[k].shape)}")
            self.shadow[k].copy_(t)
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
