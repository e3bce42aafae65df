"""Runs a method over a data set split: the only code that feeds methods and writes outputs.

Outputs go to ``outputs/<method>/<dataset>/<split>/<image_id>.png`` with ``run.json`` beside
them. A run is written into ``<dir>.partial`` and renamed into place only when complete, so a
crash never leaves a mix of old and new images; a method that raises, times out, or returns a
wrong shape, NaN or out-of-range values fails the run with the image id, and no other run's
outputs are touched.

``run.json`` fields: method, method_version, dataset, dataset_version, split, params, config
(small|paper), device, precision, seed, tiling {size, overlap, pad_multiple}, checkpoint (null:
untrained, only for cards with ``needs_training: false``), started, finished, git_rev, versions, output_bits, status (ok|failed), error,
images {id: {seconds, megapixels, tiles}}, cost {params, flops_per_mp, latency_ms_per_mp,
peak_rss_mb, peak_gpu_mb} and cost_spec (how each cost figure is measured), processes.

Several processes (``accelerate launch --multi_gpu`` or ``torch.distributed.run``) split the
images between them through accelerate's process state: each rank restores every N-th image
on its own device into the shared partial folder, rank 0 merges the ranks' records (a run
fails if any rank failed) and renames the folder into place. One process: no accelerate state.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from deblurbench import provenance
from deblurbench.datasets.manifest import get_card as get_dataset_card
from deblurbench.datasets.manifest import load_manifest
from deblurbench.devices import pick_config, pick_device
from deblurbench.io import read_image, write_png
from deblurbench.methods.card import MethodCard, resolve_params
from deblurbench.methods.cost import (
    COST_SPEC,
    PeakMemory,
    cost_record,
    count_flops,
    count_params,
    latency_ms_per_mp,
)
from deblurbench.methods.registry import get_card, load_class
from deblurbench.tiling import padded, restore_tiled, tile_count
from deblurbench.runs import RunRecord, read_record, run_folder, run_name

RANGE_TOLERANCE = 1e-3  # outputs may overshoot [0, 1] by rounding; more is a method bug


class MethodFailure(RuntimeError):
    """A method that crashed or returned an invalid image; names the method and image."""


class ImageTimeout(MethodFailure):
    """A method that took longer than the per-image time limit."""


def check_output(out: object, like: torch.Tensor, method: str, image_id: str) -> torch.Tensor:
    """Refuse anything but a finite Bx3xHxW tensor of the input's shape within [0, 1]."""
    where = f"method {method!r} on image {image_id!r}"
    if not isinstance(out, torch.Tensor):
        raise MethodFailure(f"{where}: restore returned {type(out).__name__}, expected a tensor")
    if tuple(out.shape) != tuple(like.shape):
        raise MethodFailure(f"{where}: output shape {tuple(out.shape)} != input {tuple(like.shape)}")
    out = out.float()
    if not torch.isfinite(out).all():
        n = int((~torch.isfinite(out)).sum())
        raise MethodFailure(f"{where}: output holds {n} NaN/Inf values")
    lo, hi = float(out.min()), float(out.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise MethodFailure(f"{where}: output range [{lo:.4f}, {hi:.4f}] outside [0, 1]")
    return out.clamp(0, 1)


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise :class:`ImageTimeout` after ``seconds`` (SIGALRM; main thread only, else no-op)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum, frame):
        raise ImageTimeout(f"{what}: exceeded the time limit of {seconds:g} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pick_precision(requested: str, dev: str, card: MethodCard) -> str:
    if requested == "auto":
        return "bf16" if dev.startswith("cuda") and card.amp else "fp32"
    if requested not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"--precision {requested}: expected auto, fp32, bf16 or fp16")
    if requested != "fp32" and not dev.startswith("cuda"):
        raise ValueError(f"--precision {requested}: mixed precision needs a GPU (device {dev})")
    return requested


def load_inputs(row, card: MethodCard, dev: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The blurry image and the card's test-time ``inputs``; never its ``train_inputs``."""
    from deblurbench.inputs import loader

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous().to(dev)

    x = tensor(read_image(row.blurry))
    extras = {}
    for k in card.inputs:
        if k == "blurry":
            continue
        try:
            extras[k] = tensor(loader(k)(row))
        except ValueError as exc:
            raise ValueError(f"method {card.name!r} needs input {k!r}: {exc}") from None
    return x, extras


def run_method(name: str, dataset: str, split: str, device: str = "auto",
               small: bool | None = None, output_bits: int = 16, tile_size: int | None = None,
               tile_overlap: int | None = None, precision: str = "auto", seed: int = 0,
               timeout: float | None = None, trained_on: str | None = None,
               batch_size: int = 4, variant: str | None = None,
               overrides: dict | None = None) -> dict:
    """Restore every image of (dataset, split); returns the run record (also ``run.json``).

    The run lands in ``outputs/<method>[+variant][~trained_on]/<dataset>/<split>/``
    (:func:`deblurbench.runs.run_name`)."""
    card = get_card(name)
    dcard = get_dataset_card(dataset)
    rows = load_manifest(dataset, split)
    dev = pick_device(device)
    ranks = Ranks.current(dev)
    dev = ranks.device(dev)
    on_gpu = dev.startswith("cuda")
    use_small, config = pick_config(name, card.device == "gpu", on_gpu, small)
    params = resolve_params(card, use_small, variant, overrides)
    prec = pick_precision(precision, dev, card)
    tile = tile_size if tile_size is not None else card.tile_size
    overlap = tile_overlap if tile_overlap is not None else card.tile_overlap
    if tile is not None and (tile < 16 or overlap * 2 >= tile or tile % card.pad_multiple):
        raise ValueError(f"tile size {tile} / overlap {overlap}: need tile >= 16, overlap under "
                         f"half a tile, tile a multiple of {card.pad_multiple}")
    for k in card.inputs:
        if k != "blurry" and rows[k].isna().any():
            missing = rows[rows[k].isna()].iloc[0]["image_id"]
            raise ValueError(f"method {name!r} needs input {k!r}, which image {missing!r} of "
                             f"{dataset}/{split} does not have")
    state, ckpt = None, None
    if card.trainable:
        from deblurbench.methods.checkpoint import checkpoint_path
        from deblurbench.methods.train import load_trained

        source = trained_on or dataset
        if card.needs_training or checkpoint_path(name, source, config, variant).exists():
            state, ckpt = load_trained(card, source, config, params, variant)
    elif trained_on and trained_on != dataset:
        raise ValueError(f"--trained-on {trained_on}: method {name!r} is not trainable")
    final = run_folder(run_name(name, dataset, variant, trained_on if ckpt else None),
                       dataset, split)
    partial = final.with_name(final.name + ".partial")
    if ranks.index == 0:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    ranks.barrier()
    rows = rows.iloc[ranks.index::ranks.count]
    record = {"method": name, "method_version": card.version, "dataset": dataset,
              "dataset_version": dcard.version, "split": split, "params": params,
              "config": config, "device": provenance.device_name(dev), "precision": prec,
              "seed": seed, "tiling": {"size": tile, "overlap": overlap if tile else None,
                                       "pad_multiple": card.pad_multiple},
              "checkpoint": ckpt, "trained_on": ckpt["dataset"] if ckpt else None,
              "variant": variant, "method_card": card_facts(card), "weights": [],
              "started": provenance.now(), "git_rev": provenance.git_rev(),
              "versions": provenance.versions("torch", "numpy"), "output_bits": output_bits,
              "status": "running", "error": None, "images": {}, "cost": None,
              "cost_spec": COST_SPEC, "processes": ranks.count}
    memory = PeakMemory(dev)
    flops, flops_mp, n_params = None, None, 0
    method = None  # stays None when the method fails to load
    try:
        try:
            method = load_class(card)(params, device=dev)
            if state is not None:
                method.load_state_dict(state)
        except Exception as exc:
            raise MethodFailure(f"method {name!r} failed to load: {type(exc).__name__}: {exc}"
                                ) from exc
        n_params = count_params(method.networks())
        n_trainable = count_params(method.networks(), trainable_only=True)
        memory.start()
        for i, row in enumerate(tqdm(rows.itertuples(), total=len(rows),
                                     desc=f"{name} on {dataset}/{split}", unit="img")):
            x, extras = load_inputs(row, card, dev)
            restore = make_restorer(method, card, row.image_id, prec, dev, tile, overlap, batch_size)
            if i == 0:  # FLOPs of one untimed pass; FlopCounterMode slows what it watches
                flops, flops_how = _flops(method, restore, x, extras, name, row.image_id,
                                          timeout)
                flops_mp = x.shape[-2] * x.shape[-1] / 1e6
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            y = _guarded(lambda r=restore, x=x, e=extras: r(x, e), name, row.image_id, timeout)
            if on_gpu:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            y = check_output(y, x, name, row.image_id)
            write_png(partial / f"{row.image_id}.png", y[0].permute(1, 2, 0).cpu().numpy(),
                      bits=output_bits)
            h, w = x.shape[-2:]
            record["images"][row.image_id] = {
                "seconds": seconds, "megapixels": h * w / 1e6,
                "tiles": tile_count(h, w, tile, overlap) if tile else 1}
        memory.stop()
        record["status"] = "ok"
        record["cost"] = cost_record(n_params, flops, flops_mp, record["images"], memory) | {
            "trainable_params": n_trainable, "flops_how": flops_how}
    except MethodFailure as exc:
        record["status"] = "failed"
        record["error"] = str(exc)
    record["finished"] = provenance.now()
    if ranks.count > 1:
        (partial / f".rank-{ranks.index}.json").write_text(json.dumps(record))
        ranks.barrier()
        if ranks.index != 0:
            ranks.barrier()  # rank 0 merges and renames
            return read_record(final).to_dict()
        record = merge_rank_records([json.loads((partial / f".rank-{k}.json").read_text())
                                     for k in range(ranks.count)])
        for k in range(ranks.count):
            (partial / f".rank-{k}.json").unlink()
    if record["status"] == "failed":
        # Keep no half-run images: the failed run holds only its record.
        for p in partial.glob("*.png"):
            p.unlink()
        record["images"] = {}
    record["weights"] = method.weights_used() if method is not None else []
    RunRecord.from_dict(record, str(partial / "run.json")).write(partial)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    ranks.barrier()
    return record


class Ranks:
    """This process's share of a multi-process run (accelerate's state), or the whole run."""

    def __init__(self, index: int = 0, count: int = 1, state=None):
        self.index, self.count, self.state = index, count, state

    @classmethod
    def current(cls, dev: str) -> Ranks:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        st = PartialState(cpu=not dev.startswith("cuda"))
        return cls(st.process_index, st.num_processes, st)

    def device(self, dev: str) -> str:
        """Each rank on its own GPU (``cuda`` -> ``cuda:<local rank>``)."""
        if self.state is not None and dev == "cuda":
            return f"cuda:{self.state.local_process_index}"
        return dev

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def merge_rank_records(recs: list[dict]) -> dict:
    """One run record from the ranks' records: failed if any failed, images and peaks joined."""
    out = dict(recs[0])
    failed = [r for r in recs if r["status"] != "ok"]
    out["started"] = min(r["started"] for r in recs)
    out["finished"] = max(r["finished"] for r in recs)
    out["images"] = {k: v for r in recs for k, v in r["images"].items()}
    if failed:
        out["status"], out["error"], out["cost"] = "failed", failed[0]["error"], None
        return out
    peaks = {k: [r["cost"][k] for r in recs if r["cost"][k] is not None]
             for k in ("peak_rss_mb", "peak_gpu_mb")}
    out["cost"] = {**recs[0]["cost"], "latency_ms_per_mp": latency_ms_per_mp(out["images"]),
                   **{k: max(v) if v else None for k, v in peaks.items()}}
    return out


def _flops(method, restore, x, extras, name: str, image_id: str, timeout: float | None,
           ) -> tuple[int, str]:
    """FLOPs of restoring ``x``: the method's probe (one step times its count) when it has
    one, else one full, untimed restore; and how they were counted."""
    probe = method.flops_probe(x, **extras)
    if probe is None:
        n = _guarded(lambda: count_flops(lambda: restore(x, extras)), name, image_id, timeout)
        return n, "one full restore of the first image"
    fn, times, how = probe
    return _guarded(lambda: count_flops(fn), name, image_id, timeout) * int(times), how


def _guarded(fn, name: str, image_id: str, timeout: float | None):
    """Run ``fn`` under the time limit; any exception of the method becomes a MethodFailure."""
    try:
        with time_limit(timeout, f"method {name!r} on image {image_id!r}"), torch.no_grad():
            return fn()
    except MethodFailure:
        raise
    except Exception as exc:
        raise MethodFailure(f"method {name!r} crashed on image {image_id!r}: "
                            f"{type(exc).__name__}: {exc}") from exc


def make_restorer(method, card: MethodCard, image_id: str, prec: str, dev: str, tile: int | None,
              overlap: int, batch_size: int):
    """restore(x, extras) for one image: padding, tiling, autocast and output checks."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)

    def call(x: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        if dtype is None:
            return method.restore(x, **extras)
        with torch.autocast(device_type="cuda", dtype=dtype):
            return method.restore(x, **extras)

    inner = padded(call, card.pad_multiple)

    def check(out, like):
        return check_output(out, like, card.name, image_id)

    def restore(x: torch.Tensor, extras: dict[str, torch.Tensor]) -> torch.Tensor:
        h, w = x.shape[-2:]
        if tile and (h > tile or w > tile):
            return restore_tiled(inner, x, extras, tile, overlap, batch_size, check=check)
        return check(inner(x, **extras), x)

    return restore


def card_facts(card: MethodCard) -> dict:
    """What the board shows of a method card, carried in the run record."""
    from dataclasses import asdict

    facts = {k: (str(v) if k == "folder" else v) for k, v in asdict(card).items()}
    return facts


def output_path(method: str, dataset: str, split: str, image_id: str) -> Path:
    return run_folder(method, dataset, split) / f"{image_id}.png"
