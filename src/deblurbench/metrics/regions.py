"""Per-pixel PBA blur levels of the *blurry* input, the regions FR metrics are stratified by.

The label map comes from a stored annotation (``annotate/pba/<dataset>/<image_id>.npz``, or
with a ``<split>/`` level) when one exists, else from ``deblurbench.annotate.pba`` run on the
blurry image on the fly. Pixels take the level of their patch at the finest PBA scale.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from deblurbench.paths import project_root

LEVELS = ("slight", "mild", "moderate", "severe")
SOURCE = "PBA levels of the blurry input at its finest patch scale (MBSD Eq. 1-3)"


def available() -> str | None:
    if importlib.util.find_spec("deblurbench.annotate.pba") is None:
        return "deblurbench.annotate.pba is not available in this tree"
    return None


def stored_path(dataset: str, split: str, image_id: str) -> Path | None:
    base = project_root() / "annotate" / "pba" / dataset
    for p in (base / split / f"{image_id}.npz", base / f"{image_id}.npz"):
        if p.is_file():
            return p
    return None


def label_map(dataset: str, split: str, image_id: str, blurry: np.ndarray) -> np.ndarray:
    """HxW uint8 level index (0 slight .. 3 severe) of the blurry image."""
    from deblurbench.annotate import pba

    h, w = blurry.shape[:2]
    path = stored_path(dataset, split, image_id)
    if path is not None:
        res = pba.load_npz(path)
        if tuple(res.image_size) != (h, w):
            raise ValueError(f"{path}: annotation is for a {res.image_size[1]}x"
                             f"{res.image_size[0]} image, the blurry image is {w}x{h}")
    else:
        res = pba.annotate(blurry)
    i = int(np.argmin(res.patch_sizes))
    return pba.pixel_levels(res.labels[i], res.patch_sizes[i], h, w)


def masks_from_labels(labels: np.ndarray, valid: np.ndarray | None = None
                      ) -> dict[str, np.ndarray]:
    """{level name: HxW bool}; ``valid`` (aligned GT mask) restricts every region."""
    out = {}
    for i, name in enumerate(LEVELS):
        m = labels == i
        if valid is not None:
            m &= valid
        out[name] = m
    return out
