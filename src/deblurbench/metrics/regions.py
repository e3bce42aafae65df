"""Per-pixel PBA blur levels of the *blurry* input, the regions FR metrics are stratified by.

The map is the one `deblurbench annotate pba` stored (``annotate/pba/<dataset>/<id>_levels.png``,
optionally under ``<split>/``) when its ``summary.json`` says it was made with the same PBA
constants and ``pixel_map_patch`` as ``params.yaml: pba``; otherwise PBA runs on the blurry
image on the fly with those params. Each pixel takes the level of its patch at
``pixel_map_patch`` px (default 64, the finest scale), remainder pixels the nearest patch's.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deblurbench.paths import pba_dir

LEVELS = ("slight", "mild", "moderate", "severe")


@dataclass(frozen=True)
class RegionConfig:
    """The PBA constants and pixel-map scale the regions are made with (params.yaml: pba)."""

    params: Any  # deblurbench.annotate.pba.PBAParams
    patch: int

    @property
    def source(self) -> str:
        """What ``runs.region_source`` records: regions from other settings never compare."""
        return (f"PBA levels of the blurry input, {self.patch} px patches (MBSD Eq. 1-3; "
                f"params {json.dumps(asdict(self.params), sort_keys=True)})")


def config_from(pba_section: Any) -> RegionConfig:
    from deblurbench.annotate.run import pba_params_from

    params, patch = pba_params_from(pba_section)
    return RegionConfig(params, patch)


def available() -> str | None:
    if importlib.util.find_spec("deblurbench.annotate.pba") is None:
        return "deblurbench.annotate.pba is not available in this tree"
    return None


def stored_path(dataset: str, split: str, image_id: str, cfg: RegionConfig) -> Path | None:
    """The stored level map of this image, if it was made with ``cfg``'s settings."""
    base = pba_dir(dataset)
    for folder in (base / split, base):
        p = folder / f"{image_id}_levels.png"
        summary = folder / "summary.json"
        if p.is_file() and summary.is_file():
            made = json.loads(summary.read_text())
            if (made.get("pixel_map_patch") == cfg.patch
                    and made.get("params") == json.loads(json.dumps(asdict(cfg.params)))):
                return p
    return None


def label_map(dataset: str, split: str, image_id: str, blurry: np.ndarray,
              cfg: RegionConfig) -> np.ndarray:
    """HxW uint8 level index (0 slight .. 3 severe) of the blurry image."""
    from deblurbench.annotate import pba
    from deblurbench.annotate.run import level_map, read_levels_png

    h, w = blurry.shape[:2]
    path = stored_path(dataset, split, image_id, cfg)
    if path is not None:
        levels = read_levels_png(path)
        if levels.shape != (h, w):
            raise ValueError(f"{path}: level map is {levels.shape[1]}x{levels.shape[0]}, the "
                             f"blurry image is {w}x{h}")
        return levels
    image = np.clip(blurry, 0.0, 1.0)
    return level_map(image, pba.annotate(image, cfg.params), cfg.patch)


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
