"""The ``callbacks`` a method's ``train`` receives: checkpoints, stages, losses, validation.

A method owns its loop; the context owns what must be the same for every method:

- **Stages** (``params.stages``: a list of ``{name, steps, ...}``; the other keys are the
  stage's own settings, e.g. ``lr`` or ``loss_weights``): ``ctx.stage`` is the stage of the
  step being taken, so a two-phase schedule (JDRL's first epochs, BD-Diff's warm-up) is data.
- **Losses**: ``ctx.step({"total": ..., "l1": ..., ...})`` logs every term; the history, kept in
  the checkpoint, is a list of ``{"step": s, name: value, ...}``.
- **State that must resume exactly**: optimizers and their schedulers (``track``), and any object
  with ``state_dict``/``load_state_dict`` such as an EMA or an AMP grad scaler
  (``track_state``). On resume, each is loaded as soon as it is tracked.
- **Validation**: every ``validate_every`` steps (and at the end) the method restores the
  validation images, full size, and the context keeps the state with the best ``val_metric``;
  ``methods run`` uses it (``select: best``). Its RNG use is isolated, so validating does not
  change the training that follows. The test split is never read here.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deblurbench import provenance
from deblurbench.methods.base import Method
from deblurbench.methods.checkpoint import rng_state, save_checkpoint

#: how validation scores an image (recorded with every value)
VAL_METRICS = {"psnr": "PSNR, RGB, data range 1, whole image, float64, mean over images"}


@dataclass(frozen=True)
class Stage:
    name: str
    first: int  # first step of the stage (1-based)
    last: int  # last step, inclusive
    settings: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


def parse_stages(params: dict[str, Any], max_steps: int) -> list[Stage]:
    """The stages of ``params.stages``; without it, one stage ``main`` over every step."""
    raw = params.get("stages")
    if not raw:
        return [Stage("main", 1, max_steps, {})]
    out, first = [], 1
    for i, st in enumerate(raw):
        if not isinstance(st, dict) or "name" not in st or "steps" not in st:
            raise ValueError(f"params.stages[{i}]: expected a mapping with name and steps, "
                             f"got {st!r}")
        steps = int(st["steps"])
        if steps < 1:
            raise ValueError(f"params.stages[{i}] ({st['name']}): steps must be >= 1")
        out.append(Stage(str(st["name"]), first, first + steps - 1,
                         {k: v for k, v in st.items() if k not in ("name", "steps")}))
        first += steps
    if out[-1].last != max_steps:
        raise ValueError(f"params.stages: the stages add up to {out[-1].last} steps but "
                         f"training has {max_steps}")
    return out


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    mse = float(((out.double() - ref.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@dataclass
class Validation:
    """The validation images and how often to score them."""

    images: list[tuple[str, np.ndarray, np.ndarray, dict[str, np.ndarray]]]
    every: int
    metric: str = "psnr"

    def score(self, method: Method, device: torch.device, pad_multiple: int) -> float:
        from deblurbench.tiling import padded

        restore = padded(lambda x, **e: method.restore(x, **e), pad_multiple)
        values = []
        for _, blurry, sharp, extras in self.images:
            def t(a: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous().to(device)

            out = restore(t(blurry), **{k: t(v) for k, v in extras.items()})
            values.append(psnr(out.float().clamp(0, 1).cpu(), t(sharp).cpu()))
        return float(np.mean(values))


@dataclass
class TrainContext:
    """The ``callbacks`` a method's ``train`` receives."""

    accelerator: Any
    method: Method
    max_steps: int
    start_step: int
    checkpoint_every: int
    deadline: float | None
    payload: dict[str, Any]
    path: Path
    resume: dict[str, Any] = field(default_factory=dict)  # the unfinished checkpoint's extras
    stages: list[Stage] = field(default_factory=list)
    validation: Validation | None = None
    pad_multiple: int = 1
    grad_accum: int = 1  # micro-batches per step (``micro_batches`` splits a step's batch)
    global_step: int = 0
    stopped: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    val_history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # {step, metric, value} of the kept state
    best_state: dict[str, Any] | None = None
    optimizers: list[Any] = field(default_factory=list)
    schedulers: list[Any] = field(default_factory=list)
    states: dict[str, Any] = field(default_factory=dict)
    _bar: Any = None

    def __post_init__(self) -> None:
        if not self.stages:
            self.stages = [Stage("main", 1, self.max_steps, {})]
        r = self.resume
        self.history = list(r.get("history", []))
        self.val_history = list(r.get("val_history", []))
        self.best, self.best_state = r.get("best"), r.get("best_state")

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def stage(self) -> Stage:
        """The stage of the step being taken (``global_step + 1``)."""
        s = min(self.global_step + 1, self.max_steps)
        return next(st for st in self.stages if st.first <= s <= st.last)

    def prepare(self, *objs: Any) -> Any:
        return self.accelerator.prepare(*objs)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def micro_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """A step's batch split into ``grad_accum`` micro-batches (divide each loss by it)."""
        n = next(iter(batch.values())).shape[0]
        k = max(1, min(self.grad_accum, n))
        return [{key: v[i::k] for key, v in batch.items()} for i in range(k)]

    def track(self, optimizer: Any, scheduler: Any = None) -> Any:
        """Include ``optimizer`` (and its LR ``scheduler``) in checkpoints; on resume, load
        their saved states now."""
        i = len(self.optimizers)
        saved = self.resume.get("optimizers", [])
        if i < len(saved):
            optimizer.load_state_dict(saved[i])
        self.optimizers.append(optimizer)
        if scheduler is not None:
            j = len(self.schedulers)
            saved_s = self.resume.get("schedulers", [])
            if j < len(saved_s):
                scheduler.load_state_dict(saved_s[j])
            self.schedulers.append(scheduler)
        return optimizer

    def track_state(self, name: str, obj: Any) -> Any:
        """Include ``obj.state_dict()`` (EMA, grad scaler, ...) in checkpoints under ``name``;
        on resume, load it now."""
        if name in self.states:
            raise ValueError(f"training state {name!r} is tracked twice")
        saved = self.resume.get("states", {})
        if name in saved:
            obj.load_state_dict(saved[name])
        self.states[name] = obj
        return obj

    def step(self, loss: float | dict[str, float] | None = None) -> bool:
        """Call once per finished step; returns False when training must stop now."""
        self.global_step += 1
        if loss is not None:
            terms = {"loss": float(loss)} if not isinstance(loss, dict) else {
                k: float(v) for k, v in loss.items()}
            every = max(1, self.max_steps // 500)
            if self.global_step % every == 0 or self.global_step == self.max_steps:
                self.history.append({"step": self.global_step, **terms})
            if self._bar is not None:
                first = next(iter(terms.values()))
                self._bar.set_postfix({"stage": self.stage.name, "loss": f"{first:.4g}",
                                       **self._best_postfix()})
        if self._bar is not None:
            self._bar.update(1)
        v = self.validation
        if v is not None and (self.global_step % v.every == 0
                              or self.global_step == self.max_steps):
            self.validate()
        if self.global_step >= self.max_steps:
            return False
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.stopped = "time limit"
            self.save(finished=False)
            return False
        if self.global_step % self.checkpoint_every == 0:
            self.save(finished=False)
        return True

    def _best_postfix(self) -> dict[str, str]:
        return {f"best val {self.best['metric']}": f"{self.best['value']:.3f}"} if self.best else {}

    def validate(self) -> float | None:
        """Score the validation split now; keep the state if it is the best so far."""
        v = self.validation
        if v is None or not self.accelerator.is_main_process:
            return None
        modes = [(m, m.training) for m in self.method.networks()]
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            value = v.score(self.method, self.device, self.pad_multiple)
        for m, was in modes:
            m.train(was)
        self.val_history.append({"step": self.global_step, v.metric: value})
        if self.best is None or value > self.best["value"]:
            self.best = {"step": self.global_step, "metric": v.metric, "value": value,
                         "definition": VAL_METRICS[v.metric]}
            self.best_state = _cpu_copy(self.method.state_dict())
        return value

    def save(self, finished: bool) -> None:
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        extra: dict[str, Any] = {}
        if not finished:
            extra = {"optimizers": [o.state_dict() for o in self.optimizers],
                     "schedulers": [s.state_dict() for s in self.schedulers],
                     "states": {k: o.state_dict() for k, o in self.states.items()},
                     "rng": rng_state()}
        save_checkpoint(self.path, {**self.payload, "step": self.global_step,
                                    "max_steps": self.max_steps, "finished": finished,
                                    "saved": provenance.now(), "history": self.history,
                                    "val_history": self.val_history, "best": self.best,
                                    "best_state": self.best_state,
                                    "state": self.method.state_dict(), **extra})


def _cpu_copy(state: Any) -> Any:
    """A deep copy of a state dict with every tensor cloned to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _cpu_copy(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_cpu_copy(v) for v in state)
    return copy.deepcopy(state)
