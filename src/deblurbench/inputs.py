"""The one registry of what a method may be given, and where each input comes from.

A card names inputs in two lists: ``inputs`` (what ``restore`` receives at test time) and
``train_inputs`` (supervision that only ``train`` sees). An input that only exists because the
data are synthetic or annotated, such as the true blur map, is ``train_only``: handing it to
``restore`` would let a method read the answer on synthetic data and fail on real data.

Each input is float32 HxWxC when loaded (C=3 views, C=1 maps) and becomes a Bx C xhxw tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deblurbench.io import read_image


@dataclass(frozen=True)
class InputKind:
    name: str
    channels: int
    train_only: bool  # True: never given to restore (ground truth or annotation)
    description: str
    source: str  # "manifest" (a manifest column of paths) or "pba" (the annotate stage)


INPUTS: dict[str, InputKind] = {k.name: k for k in (
    InputKind("blurry", 3, False, "the blurry image, RGB in [0, 1]", "manifest"),
    InputKind("left", 3, False, "dual-pixel left view, RGB in [0, 1]", "manifest"),
    InputKind("right", 3, False, "dual-pixel right view, RGB in [0, 1]", "manifest"),
    InputKind("blur_map", 1, True, "true per-pixel blur radius in pixels (synthetic data only)",
              "manifest"),
    InputKind("pba_levels", 1, True, "PBA blur level per pixel, 0..3 = slight..severe, at "
              "pba.pixel_map_patch (annotate/pba/<dataset>/<id>_levels.png)", "pba"),
)}
#: manifest columns that hold an input's path (blurry, views, blur map)
MANIFEST_INPUTS = [k for k, v in INPUTS.items() if v.source == "manifest"]


def check_lists(inputs: list[str], train_inputs: list[str]) -> str | None:
    """Why a card's two input lists are invalid, or None."""
    known = sorted(INPUTS)
    for key, names in (("inputs", inputs), ("train_inputs", train_inputs)):
        unknown = sorted(set(names) - set(INPUTS))
        if unknown:
            return f"{key}: unknown {unknown}; known inputs: {known}"
        if len(set(names)) != len(names):
            return f"{key}: lists an input twice: {names}"
    if "blurry" not in inputs:
        return f"inputs: must include 'blurry', got {inputs}"
    leaks = [k for k in inputs if INPUTS[k].train_only]
    if leaks:
        return (f"inputs: {leaks} exist only for training (ground truth or annotation) and are "
                f"never given to restore; list them under train_inputs")
    both = sorted(set(inputs) & set(train_inputs))
    if both:
        return f"train_inputs: {both} already under inputs (train sees every input anyway)"
    return None


def pba_levels_path(dataset: str, image_id: str) -> Path:
    from deblurbench.paths import pba_dir

    return pba_dir(dataset) / f"{image_id}_levels.png"


def loader(name: str) -> Callable[[object], np.ndarray]:
    """A function from a manifest row (with ``dataset`` and ``image_id``) to the input array."""
    kind = INPUTS[name]
    if kind.source == "pba":
        def from_pba(row) -> np.ndarray:
            path = pba_levels_path(row.dataset, row.image_id)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no PBA level map; run `deblurbench annotate "
                                        f"pba {row.dataset} --out annotate/pba/{row.dataset}`")
            import cv2

            levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if levels is None or levels.ndim != 2:
                raise ValueError(f"{path}: not a one-channel level map")
            return levels.astype(np.float32)[..., None]
        return from_pba

    def from_manifest(row) -> np.ndarray:
        path = getattr(row, name, None)
        if not isinstance(path, str):
            raise ValueError(f"image {row.image_id!r} of {row.dataset} has no input {name!r}")
        if name == "blur_map":
            arr = np.load(path).astype(np.float32)
            return arr[..., None] if arr.ndim == 2 else arr
        return read_image(path)
    return from_manifest
