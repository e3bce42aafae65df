"""Runs a method over a data set split: the only code that feeds methods and writes outputs.

Outputs go to ``outputs/<method>/<dataset>/<split>/<image_id>.png`` with ``run.json`` beside
them. A run is written into ``<dir>.partial`` and renamed into place only when complete, so a
crash never leaves a mix of old and new images; a method that raises or returns a wrong shape,
NaN or out-of-range values fails the run with the image id.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from deblurbench import provenance
from deblurbench.datasets.manifest import get_card as get_dataset_card
from deblurbench.datasets.manifest import load_manifest
from deblurbench.io import read_image, write_png
from deblurbench.methods.registry import get_card, load_class
from deblurbench.paths import run_dir

RANGE_TOLERANCE = 1e-3  # outputs may overshoot [0, 1] by rounding; more is a method bug


class MethodFailure(RuntimeError):
    """A method that crashed or returned an invalid image; names the method and image."""


def pick_device(requested: str = "auto") -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {requested}: no CUDA device is available here")
    return requested


def check_output(out: object, like: torch.Tensor, method: str, image_id: str) -> torch.Tensor:
    """Refuse anything but a finite Bx3xHxW tensor of the input's shape within [0, 1]."""
    where = f"method {method!r} on image {image_id!r}"
    if not isinstance(out, torch.Tensor):
        raise MethodFailure(f"{where}: restore returned {type(out).__name__}, expected a tensor")
    if tuple(out.shape) != tuple(like.shape):
        raise MethodFailure(f"{where}: output shape {tuple(out.shape)} != input {tuple(like.shape)}")
    if not torch.isfinite(out).all():
        n = int((~torch.isfinite(out)).sum())
        raise MethodFailure(f"{where}: output holds {n} NaN/Inf values")
    lo, hi = float(out.min()), float(out.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise MethodFailure(f"{where}: output range [{lo:.4f}, {hi:.4f}] outside [0, 1]")
    return out.clamp(0, 1)


def run_method(name: str, dataset: str, split: str, device: str = "auto",
               small: bool | None = None, output_bits: int = 16) -> dict:
    """Restore every image of (dataset, split); returns the run record (also ``run.json``)."""
    card = get_card(name)
    dcard = get_dataset_card(dataset)
    rows = load_manifest(dataset, split)
    dev = pick_device(device)
    if card.device == "gpu" and not dev.startswith("cuda") and small is False:
        raise ValueError(f"method {name!r} needs a GPU for its paper configuration")
    use_small = (not dev.startswith("cuda")) if small is None else small
    params = {**card.params, **(card.small_params if use_small else {})}
    final = run_dir(name, dataset, split)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    record = {"method": name, "method_version": card.version, "dataset": dataset,
              "dataset_version": dcard.version, "split": split, "params": params,
              "config": "small" if use_small else "paper", "device": provenance.device_name(dev),
              "started": provenance.now(), "git_rev": provenance.git_rev(),
              "versions": provenance.versions("torch", "numpy"), "output_bits": output_bits,
              "status": "running", "error": None, "images": {}}
    try:
        method = load_class(card)(params, device=dev)
        with torch.no_grad():
            for row in tqdm(rows.itertuples(), total=len(rows), desc=f"{name} on {dataset}/{split}",
                            unit="img"):
                img = read_image(row.blurry)
                x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous().to(dev)
                t0 = time.perf_counter()
                try:
                    y = method.restore(x)
                except Exception as exc:  # the method's bug, reported with the image
                    raise MethodFailure(f"method {name!r} crashed on image {row.image_id!r}: "
                                        f"{type(exc).__name__}: {exc}") from exc
                if dev.startswith("cuda"):
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - t0
                y = check_output(y, x, name, row.image_id)
                out = y[0].permute(1, 2, 0).float().cpu().numpy()
                write_png(partial / f"{row.image_id}.png", out, bits=output_bits)
                record["images"][row.image_id] = {"seconds": seconds,
                                                  "megapixels": img.shape[0] * img.shape[1] / 1e6}
        record["status"] = "ok"
    except MethodFailure as exc:
        record["status"] = "failed"
        record["error"] = str(exc)
    record["finished"] = provenance.now()
    if record["status"] == "failed":
        # Keep no half-run images: the failed run holds only its record.
        for p in partial.glob("*.png"):
            p.unlink()
        record["images"] = {}
    (partial / "run.json").write_text(json.dumps(record, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return record


def load_run_record(method: str, dataset: str, split: str) -> dict:
    path = run_dir(method, dataset, split) / "run.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no run; run `deblurbench methods run {method} "
                                f"--dataset {dataset} --split {split}` first")
    return json.loads(path.read_text())


def summary_latency(record: dict) -> float | None:
    """Median milliseconds per megapixel over the run's images (None for an empty run)."""
    vals = [v["seconds"] * 1000 / v["megapixels"] for v in record["images"].values()]
    return float(np.median(vals)) if vals else None


def output_path(method: str, dataset: str, split: str, image_id: str) -> Path:
    return run_dir(method, dataset, split) / f"{image_id}.png"
