"""Training checkpoints: the method's state plus everything needed to trust or resume it.

``checkpoints/<method>/<dataset>/<config>.pt`` (config: ``small`` or ``paper``) holds the method
and data set versions, the resolved params, the seed, the step reached, whether training
finished, the method's ``state_dict``, the tracked optimizers and the RNG states. It is written
atomically (temporary file, then rename), so an interrupted save leaves the previous one.
Loaded with ``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deblurbench.paths import atomic_file, project_root

FORMAT = 1
#: fields that must match for a checkpoint to be resumed or used by `methods run`
IDENTITY = ("method", "method_version", "dataset", "dataset_version", "config", "variant",
            "params", "seed")


class CheckpointError(ValueError):
    """A missing, unreadable or mismatching checkpoint; the message names the file."""


def checkpoints_dir() -> Path:
    return project_root() / "checkpoints"


def checkpoint_path(method: str, dataset: str, config: str, variant: str | None = None) -> Path:
    """``checkpoints/<method>/<dataset>/<config>[+<variant>].pt``."""
    return checkpoints_dir() / method / dataset / f"{config}{'+' + variant if variant else ''}.pt"



def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (truncated file, foreign pickle, ...)
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})"
                              ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a DeblurBench checkpoint of format {FORMAT}")
    return data


def mismatches(ckpt: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Human-readable differences between a checkpoint and the run that wants to use it."""
    out = []
    for key in IDENTITY:
        if key in expected and ckpt.get(key) != expected[key]:
            out.append(f"{key}: checkpoint has {ckpt.get(key)!r}, this run {expected[key]!r}")
    return out


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                       int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
