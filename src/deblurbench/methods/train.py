"""`deblurbench methods train`: one training loop driver for every trainable method.

The runner owns the data, the accelerator, checkpoints, seeds and time limits; the method owns
its model, loss and optimizer (``Method.train(loader, params, callbacks)``). Everything goes
through ``accelerate.Accelerator``, so the same code runs on one CPU, one GPU, or several GPUs
under ``accelerate launch -m deblurbench.cli methods train ...``.

Data are random crops of the (dataset, split) pairs, drawn for step ``s`` on process ``p`` from
``numpy.random.default_rng([seed, s, p])``: a run resumed at step ``k`` sees exactly the batches
an uninterrupted run would have seen, so resuming reproduces it (tested). Runner knobs read from
the method's params: ``train_steps`` (default 100), ``batch_size`` (per process, default 4),
``crop_size`` (default 128, capped by the smallest image), ``checkpoint_every`` (default 50).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from deblurbench import provenance
from deblurbench.datasets.manifest import get_card as get_dataset_card
from deblurbench.datasets.manifest import load_manifest
from deblurbench.io import read_image
from deblurbench.methods.base import Method
from deblurbench.methods.card import MethodCard, resolve_params
from deblurbench.methods.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    mismatches,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from deblurbench.methods.registry import get_card, load_class


class TrainFailure(RuntimeError):
    """A method whose training crashed; names the method and the step."""


def load_extra(path: str, kind: str) -> np.ndarray:
    """An optional input as float32 HxWxC: dual-pixel views (C=3) or a blur map (C=1, pixels)."""
    if kind == "blur_map":
        arr = np.load(path).astype(np.float32)
        return arr[..., None] if arr.ndim == 2 else arr
    return read_image(path)


class PairSource:
    """Training pairs of a (dataset, split), decoded on demand and cached (at most ``cache``)."""

    def __init__(self, dataset: str, split: str, inputs: list[str], cache: int = 128):
        self.rows = load_manifest(dataset, split)
        if len(self.rows) == 0:
            raise ValueError(f"{dataset}/{split}: no pairs to train on")
        missing = self.rows[self.rows["sharp"].isna()]
        if len(missing):
            raise ValueError(f"{dataset}/{split}: image {missing.iloc[0]['image_id']!r} has no "
                             f"sharp target; training needs ground truth")
        self.extras = [k for k in inputs if k != "blurry"]
        for k in self.extras:
            bad = self.rows[self.rows[k].isna()]
            if len(bad):
                raise ValueError(f"{dataset}/{split}: image {bad.iloc[0]['image_id']!r} lacks "
                                 f"input {k!r} that the method needs")
        self.min_side = int(min(self.rows["height"].min(), self.rows["width"].min()))
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._size = cache

    def pair(self, i: int) -> dict[str, np.ndarray]:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        row = self.rows.iloc[i]
        item = {"blurry": read_image(row["blurry"]), "sharp": read_image(row["sharp"])}
        for k in self.extras:
            item[k] = load_extra(row[k], k)
        self._cache[i] = item
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return item

    def batch(self, rng: np.random.Generator, batch_size: int, crop: int,
              device: torch.device) -> dict[str, torch.Tensor]:
        crops: dict[str, list[np.ndarray]] = {}
        for i in rng.integers(0, len(self.rows), size=batch_size):
            item = self.pair(int(i))
            h, w = item["blurry"].shape[:2]
            y0 = int(rng.integers(0, h - crop + 1))
            x0 = int(rng.integers(0, w - crop + 1))
            for k, v in item.items():
                crops.setdefault(k, []).append(v[y0:y0 + crop, x0:x0 + crop])
        return {k: torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2).contiguous().to(device)
                for k, v in crops.items()}


class StepLoader:
    """Yields the batch of every step from ``start_step + 1`` to ``max_steps``."""

    def __init__(self, source: PairSource, seed: int, process: int, batch_size: int, crop: int,
                 start_step: int, max_steps: int, device: torch.device):
        self.source, self.seed, self.process = source, seed, process
        self.batch_size, self.crop = batch_size, crop
        self.start_step, self.max_steps, self.device = start_step, max_steps, device

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for step in range(self.start_step + 1, self.max_steps + 1):
            rng = np.random.default_rng([self.seed, step, self.process])
            yield self.source.batch(rng, self.batch_size, self.crop, self.device)


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
    resume_optimizers: list[dict] = field(default_factory=list)
    global_step: int = 0
    stopped: str | None = None
    history: list[list[float]] = field(default_factory=list)
    optimizers: list[Any] = field(default_factory=list)
    _bar: Any = None

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def prepare(self, *objs: Any) -> Any:
        return self.accelerator.prepare(*objs)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def track(self, optimizer: Any) -> Any:
        """Include ``optimizer`` in checkpoints; on resume, load its saved state now."""
        i = len(self.optimizers)
        if i < len(self.resume_optimizers):
            optimizer.load_state_dict(self.resume_optimizers[i])
        self.optimizers.append(optimizer)
        return optimizer

    def step(self, loss: float | None = None) -> bool:
        """Call once per finished step; returns False when training must stop now."""
        self.global_step += 1
        if loss is not None:
            every = max(1, self.max_steps // 500)
            if self.global_step % every == 0 or self.global_step == self.max_steps:
                self.history.append([self.global_step, float(loss)])
            if self._bar is not None:
                self._bar.set_postfix(loss=f"{loss:.4g}")
        if self._bar is not None:
            self._bar.update(1)
        if self.global_step >= self.max_steps:
            return False
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.stopped = "time limit"
            self.save(finished=False)
            return False
        if self.global_step % self.checkpoint_every == 0:
            self.save(finished=False)
        return True

    def save(self, finished: bool) -> None:
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        extra: dict[str, Any] = {}
        if not finished:
            extra = {"optimizers": [o.state_dict() for o in self.optimizers], "rng": rng_state()}
        save_checkpoint(self.path, {**self.payload, "step": self.global_step,
                                    "max_steps": self.max_steps, "finished": finished,
                                    "saved": provenance.now(), "history": self.history,
                                    "state": self.method.state_dict(), **extra})


def _accelerator(device: str, card: MethodCard):
    from accelerate import Accelerator

    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available here")
    amp = "bf16" if card.amp and not cpu else "no"
    return Accelerator(cpu=cpu, mixed_precision=amp)


def train_method(name: str, dataset: str, split: str = "train", device: str = "auto",
                 small: bool | None = None, seed: int = 0, max_seconds: float | None = None,
                 force: bool = False, retrain_stale: bool = False) -> dict:
    """Train (or resume training) ``name`` on (dataset, split); returns the training record.

    An existing checkpoint is resumed when it is unfinished and made with the same settings.
    Otherwise ``force`` or ``retrain_stale`` trains from scratch; without them a finished one
    is kept and one with other settings is refused. ``retrain_stale`` is the DVC stage's mode:
    DVC runs the stage only when an input changed (so a finished checkpoint is stale) or when
    the last run stopped before the end (so it resumes)."""
    card = get_card(name)
    if not card.trainable:
        raise ValueError(f"method {name!r} is not trainable (method.yaml trainable: false)")
    dcard = get_dataset_card(dataset)
    accelerator = _accelerator(device, card)
    on_gpu = accelerator.device.type == "cuda"
    use_small = (not on_gpu) if small is None else small
    if card.device == "gpu" and not on_gpu and not use_small:
        raise ValueError(f"method {name!r} needs a GPU for its paper configuration")
    config = "small" if use_small else "paper"
    params = resolve_params(card, use_small)
    path = checkpoint_path(name, dataset, config)
    payload = {"method": name, "method_version": card.version, "dataset": dataset,
               "dataset_version": dcard.version, "split": split, "config": config,
               "params": params, "seed": seed, "git_rev": provenance.git_rev(),
               "versions": provenance.versions("torch", "accelerate")}
    max_steps = int(params.get("train_steps", 100))
    record = {**payload, "status": "running", "error": None, "started": provenance.now(),
              "device": provenance.device_name(str(accelerator.device)),
              "num_processes": accelerator.num_processes, "checkpoint": str(path),
              "resumed_from": None, "max_steps": max_steps}
    start_step, resume_opt, resume_rng, state = 0, [], None, None
    ckpt = load_checkpoint(path) if path.exists() and not force else None
    if ckpt is not None and retrain_stale and (ckpt["finished"] or mismatches(ckpt, payload)):
        ckpt = None
    if ckpt is not None:
        diff = mismatches(ckpt, payload)
        if diff:
            raise CheckpointError(f"{path}: made with other settings ({'; '.join(diff)}); "
                                  f"pass --force to train from scratch")
        if ckpt["finished"]:
            record |= {"status": "finished", "step": ckpt["step"], "finished": provenance.now(),
                       "note": "already trained; pass --force to retrain"}
            return record
        start_step, state = int(ckpt["step"]), ckpt["state"]
        resume_opt, resume_rng = ckpt.get("optimizers", []), ckpt.get("rng")
        record["resumed_from"] = start_step
    from accelerate.utils import set_seed

    set_seed(seed)
    method = load_class(card)(params, device=str(accelerator.device))
    if state is not None:
        method.load_state_dict(state)
    if resume_rng is not None:
        set_rng_state(resume_rng)
    source = PairSource(dataset, split, card.inputs)
    crop = min(int(params.get("crop_size", 128)), source.min_side)
    loader = StepLoader(source, seed, accelerator.process_index, int(params.get("batch_size", 4)),
                        crop, start_step, max_steps, accelerator.device)
    deadline = time.monotonic() + max_seconds if max_seconds else None
    ctx = TrainContext(accelerator, method, max_steps, start_step,
                       max(1, int(params.get("checkpoint_every", 50))), deadline, payload, path,
                       resume_optimizers=resume_opt, global_step=start_step)
    t0 = time.perf_counter()
    ctx._bar = tqdm(total=max_steps, initial=start_step, desc=f"train {name} on {dataset}/{split}",
                    unit="step", disable=not accelerator.is_main_process)
    try:
        with ctx._bar:
            method.train(loader, params, ctx)
    except Exception as exc:  # noqa: BLE001  (the method's bug, recorded with the step)
        record |= {"status": "failed", "step": ctx.global_step,
                   "error": f"method {name!r} crashed in training at step {ctx.global_step + 1}: "
                            f"{type(exc).__name__}: {exc}"}
    else:
        if ctx.stopped:
            record |= {"status": "interrupted", "step": ctx.global_step,
                       "error": f"stopped by the {ctx.stopped} at step {ctx.global_step} of "
                                f"{max_steps}; rerun the same command to resume"}
        elif ctx.global_step < max_steps:
            record |= {"status": "failed", "step": ctx.global_step,
                       "error": f"method {name!r} returned from train at step "
                                f"{ctx.global_step} of {max_steps} (it must call "
                                f"callbacks.step() once per step)"}
        else:
            ctx.save(finished=True)
            record |= {"status": "finished", "step": ctx.global_step}
    record |= {"finished": provenance.now(), "seconds": round(time.perf_counter() - t0, 3),
               "history": ctx.history}
    if accelerator.is_main_process:
        log = path.with_suffix(".json")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(json.dumps(record, indent=1, default=str))
    return record


def load_trained(card: MethodCard, dataset: str, config: str, params: dict,
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The finished checkpoint of ``card`` trained on ``dataset``; returns (state, summary)."""
    path = checkpoint_path(card.name, dataset, config)
    if not path.exists():
        raise CheckpointError(f"{path}: method {card.name!r} is trainable and has no {config} "
                              f"checkpoint for {dataset}; run `deblurbench methods train "
                              f"{card.name} --dataset {dataset}` first")
    ckpt = load_checkpoint(path)
    dcard = get_dataset_card(dataset)
    diff = mismatches(ckpt, {"method": card.name, "method_version": card.version,
                             "dataset_version": dcard.version, "params": params})
    if diff:
        raise CheckpointError(f"{path}: does not match this run ({'; '.join(diff)}); retrain "
                              f"with `deblurbench methods train {card.name} --dataset {dataset} "
                              f"--force`")
    if not ckpt["finished"]:
        raise CheckpointError(f"{path}: training stopped at step {ckpt['step']} of "
                              f"{ckpt['max_steps']}; resume it with `deblurbench methods train "
                              f"{card.name} --dataset {dataset}`")
    summary = {"path": str(path), "dataset": dataset, "dataset_version": ckpt["dataset_version"],
               "split": ckpt["split"], "step": ckpt["step"], "seed": ckpt["seed"],
               "saved": ckpt["saved"]}
    return ckpt["state"], summary
