"""`deblurbench methods train`: one training loop driver for every trainable method.

The runner owns the data, the accelerator, checkpoints, seeds and time limits; the method owns
its model, loss and optimizer (``Method.train(loader, params, callbacks)``). Everything goes
through ``accelerate.Accelerator``, so the same code runs on one CPU, one GPU, or several GPUs
under ``accelerate launch -m deblurbench.cli methods train ...``.

Data are random crops of the (dataset, split) pairs (:mod:`train_data`): a run resumed at step
``k`` sees exactly the batches an uninterrupted run would have seen, and optimizers, schedulers,
EMA and RNG states are restored, so resuming reproduces it (tested). Runner knobs read from the
method's params:

- ``train_steps`` (default 100) or ``train_epochs`` (passes over the split's images, in steps
  of ``batch_size`` x processes), ``stages`` (:func:`train_context.parse_stages`);
- ``batch_size`` (per process, default 4), ``grad_accum`` (micro-batches per step, default 1),
  ``crop_size`` (default 128, capped by the smallest image), ``augment`` (flips, default off);
- ``checkpoint_every`` (default 50); ``unpaired_split``: a split whose blurry images (sharp
  ones not needed) come beside each batch as ``unpaired_blurry``, of the training data set or
  of ``unpaired_dataset`` (any prepared one: PixelDP has no ground truth at all); when it is
  the training split itself, ``unpaired_fraction`` of its images (by a stable hash of the id)
  are held out as the unpaired ones and the pairs are the rest, so the two never share an
  image;
- ``validate_every`` (steps; 0 or absent: no validation), ``val_split`` (default ``val``),
  ``val_images`` (at most this many, default all), ``select`` (``best``: the state with the best
  validation PSNR is what ``methods run`` uses; ``last``: the final state).
"""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any

from tqdm import tqdm

from deblurbench import provenance
from deblurbench.datasets.manifest import get_card as get_dataset_card
from deblurbench.devices import pick_config, pick_device
from deblurbench.methods.card import MethodCard, resolve_params
from deblurbench.methods.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    mismatches,
    set_rng_state,
)
from deblurbench.methods.registry import get_card, load_class
from deblurbench.methods.train_context import TrainContext, Validation, parse_stages
from deblurbench.methods.train_data import PairSource, StepLoader, held_out
from deblurbench.weights import sha256_file


class TrainFailure(RuntimeError):
    """A method whose training crashed; names the method and the step."""


def _accelerator(device: str, card: MethodCard):
    from accelerate import Accelerator

    cpu = pick_device(device) == "cpu"
    amp = "bf16" if card.amp and not cpu else "no"
    return Accelerator(cpu=cpu, mixed_precision=amp)


def _steps(params: dict[str, Any], n_images: int, processes: int) -> int:
    """``train_steps``, or ``train_epochs`` passes over the images in global batches."""
    if "train_epochs" in params:
        per_epoch = math.ceil(n_images / (int(params.get("batch_size", 4)) * processes))
        return max(1, math.ceil(float(params["train_epochs"]) * per_epoch))
    return int(params.get("train_steps", 100))


def _validation(dataset: str, params: dict[str, Any], inputs: list[str]) -> Validation | None:
    """The validation images of ``params.val_split`` (default ``val``), or None when
    ``validate_every`` is off or the data set has no such split (the record says so).
    ``inputs``: the card's test-time inputs only; validation restores as a test run does."""
    every = int(params.get("validate_every", 0) or 0)
    if every <= 0:
        return None
    split = str(params.get("val_split", "val"))
    if split == "test":
        raise ValueError("params.val_split: the test split is never used to choose a checkpoint")
    try:
        source = PairSource(dataset, split, inputs)
    except ValueError:
        return None
    n = min(int(params.get("val_images", len(source.rows))), len(source.rows))
    images = []
    for i in range(n):
        item = source.pair(i)
        extras = {k: v for k, v in item.items() if k not in ("blurry", "sharp")}
        images.append((str(source.rows.iloc[i]["image_id"]), item["blurry"], item["sharp"],
                       extras))
    return Validation(images, every)


def train_method(name: str, dataset: str, split: str = "train", device: str = "auto",
                 small: bool | None = None, seed: int = 0, max_seconds: float | None = None,
                 force: bool = False, retrain_stale: bool = False,
                 variant: str | None = None, overrides: dict[str, Any] | None = None) -> dict:
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
    use_small, config = pick_config(name, card.device == "gpu", on_gpu, small)
    params = resolve_params(card, use_small, variant, overrides)
    path = checkpoint_path(name, dataset, config, variant)
    payload = {"method": name, "method_version": card.version, "dataset": dataset,
               "dataset_version": dcard.version, "split": split, "config": config,
               "variant": variant, "params": params, "seed": seed,
               "git_rev": provenance.git_rev(),
               "versions": provenance.versions("torch", "accelerate")}
    inputs = [*card.inputs, *card.train_inputs]
    unpaired_split = str(params.get("unpaired_split") or "")
    unpaired_dataset = str(params.get("unpaired_dataset") or dataset)
    held = None
    if unpaired_split == split and unpaired_dataset == dataset:  # the target domain is a held-out share of the training split
        frac = float(params.get("unpaired_fraction", 0) or 0)
        if not 0 < frac < 1:
            raise ValueError(f"{card.name}: unpaired_split is the training split {split!r}; "
                             f"set unpaired_fraction in (0, 1) so that the unpaired images are "
                             f"disjoint from the pairs (got {frac})")
        held = functools.partial(held_out, fraction=frac)
    source = PairSource(dataset, split, inputs,
                        keep=None if held is None else (lambda i: not held(i)))
    max_steps = _steps(params, len(source.rows), accelerator.num_processes)
    stages = parse_stages(params, max_steps)
    record = {**payload, "status": "running", "error": None, "started": provenance.now(),
              "device": provenance.device_name(str(accelerator.device)),
              "num_processes": accelerator.num_processes, "checkpoint": str(path),
              "resumed_from": None, "max_steps": max_steps}
    start_step, resume, state = 0, {}, None
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
        start_step, state, resume = int(ckpt["step"]), ckpt["state"], ckpt
        record["resumed_from"] = start_step
    from accelerate.utils import set_seed

    set_seed(seed)
    method = load_class(card)(params, device=str(accelerator.device))
    if state is not None:
        method.load_state_dict(state)
    # the frozen pretrained parts a checkpoint was trained with, by digest (or random init)
    payload["pretrained"] = record["weights"] = method.weights_used()
    if resume.get("rng") is not None:
        set_rng_state(resume["rng"])
    validation = _validation(dataset, params, card.inputs)
    if int(params.get("validate_every", 0) or 0) > 0 and validation is None:
        record["note"] = (f"no {params.get('val_split', 'val')} split in {dataset}: no "
                          f"validation, the last state is used")
    crop = min(int(params.get("crop_size", 128)), source.min_side)
    grad_accum = max(1, int(params.get("grad_accum", 1)))
    unpaired = None
    if unpaired_split:  # blurry-only images beside the pairs, same crops
        unpaired = PairSource(unpaired_dataset, unpaired_split, ["blurry"], paired=False,
                              keep=held)
        crop = min(crop, unpaired.min_side)
        record["unpaired"] = {"dataset": unpaired_dataset, "split": unpaired_split,
                              "images": len(unpaired.rows),
                              "pairs": len(source.rows),
                              "held_out_of_training_split": held is not None}
    loader = StepLoader(source, seed, accelerator.process_index,
                        int(params.get("batch_size", 4)) * grad_accum, crop, start_step,
                        max_steps, accelerator.device, augment=bool(params.get("augment", False)),
                        unpaired=unpaired)
    deadline = time.monotonic() + max_seconds if max_seconds else None
    ctx = TrainContext(accelerator, method, max_steps, start_step,
                       max(1, int(params.get("checkpoint_every", 50))), deadline, payload, path,
                       resume=resume, stages=stages, validation=validation,
                       pad_multiple=card.pad_multiple, grad_accum=grad_accum,
                       global_step=start_step)
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
               "history": ctx.history, "val_history": ctx.val_history, "best": ctx.best}
    if accelerator.is_main_process:
        log = path.with_suffix(".json")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(json.dumps(record, indent=1, default=str))
    return record


def load_trained(card: MethodCard, dataset: str, config: str, params: dict,
                 variant: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The finished checkpoint of ``card`` trained on ``dataset``; returns (state, summary).

    With ``params.select: best`` (and a validation record in the checkpoint) the state is the
    one kept at the best validation score; otherwise the final one. The summary says which."""
    path = checkpoint_path(card.name, dataset, config, variant)
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
    best = ckpt.get("best")
    use_best = params.get("select", "best") == "best" and ckpt.get("best_state") is not None
    state = ckpt["best_state"] if use_best else ckpt["state"]
    selected = (f"best validation {best['metric']} {best['value']:.3f} at step {best['step']}"
                if use_best else f"last state, step {ckpt['step']}")
    summary = {"path": str(path), "sha256": sha256_file(path), "dataset": dataset,
               "dataset_version": ckpt["dataset_version"], "split": ckpt["split"],
               "step": best["step"] if use_best else ckpt["step"],
               "trained_steps": ckpt["step"], "selected": selected, "seed": ckpt["seed"],
               "saved": ckpt["saved"]}
    return state, summary
