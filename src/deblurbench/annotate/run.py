"""`deblurbench annotate pba`: PBA blur levels of one image or of every image of a data set.

Per annotated image ``<id>`` the output folder holds ``<id>.npz`` (:func:`pba.save_npz`),
``<id>.png`` (8-bit overlay, MBSD Fig. 10 colours over the dimmed image) and ``<id>_levels.png``
(8-bit grey, pixel values 0..3 = slight..severe, at ``pixel_map_patch``: the map the scorer
reads). Blurry images go straight into the folder, sharp ones into its ``sharp/`` subfolder, so
``<out>/<id>_levels.png`` is always the blurry input's map. ``summary.json`` gives the share of
pixels per level, per image kind and split.

The PBA constants come from ``params.yaml: pba`` (typed here, so config.py imports no engine).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm import tqdm

from deblurbench.annotate import pba
from deblurbench.annotate.pba_plot import overlay_png
from deblurbench.config import PBASection, pba_section
from deblurbench.io import read_image, write_png
from deblurbench.paths import atomic_file

Which = Literal["blurry", "sharp", "both"]


def pba_params_from(data: Any, where: str = "params.yaml:pba") -> tuple[pba.PBAParams, int]:
    """(PBA definition, pixel-map patch size) of params.yaml's typed ``pba`` section (or of a
    mapping with its keys)."""
    section = pba_section(data, where)
    return section.definition(), section.pixel_map_patch


@dataclass(frozen=True)
class Item:
    """One image to annotate: where it is, what to call it, which split and kind it belongs to."""

    image_id: str
    split: str
    kind: Literal["blurry", "sharp"]
    path: Path


def level_map(image: np.ndarray, result: pba.PBAResult, patch: int) -> np.ndarray:
    """HxW uint8 level map at ``patch`` px (re-scored when ``patch`` is not one of the scales)."""
    h, w = result.image_size
    if patch in result.patch_sizes:
        grid = result.labels[result.patch_sizes.index(patch)]
    else:
        grid = pba.blur_levels(pba.blur_scores(image, patch, result.params), result.params)
    return pba.pixel_levels(grid, patch, h, w)


def write_levels_png(path: Path, levels: np.ndarray) -> Path:
    """8-bit grey PNG of a 0..3 level map, written atomically."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(levels, dtype=np.uint8))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_file(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


def read_levels_png(path: str | os.PathLike) -> np.ndarray:
    """Read a level map written by :func:`write_levels_png`; refuses anything but 0..3 grey."""
    levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if levels is None:
        raise FileNotFoundError(f"{path}: not a readable level map")
    if levels.ndim != 2 or levels.dtype != np.uint8 or int(levels.max(initial=0)) > 3:
        raise ValueError(f"{path}: not a PBA level map (expected 8-bit grey with values 0..3)")
    return levels


def _items_for(target: str, which: Which) -> tuple[str, list[Item]]:
    """(name for the summary, images to annotate) of an image path or a prepared data set."""
    path = Path(target)
    if path.is_file():
        if which == "sharp":
            raise ValueError(f"{path}: --which sharp needs a data set (an image is one picture)")
        return path.name, [Item(path.stem, "image", "blurry", path)]
    from deblurbench.datasets.manifest import card_path, load_manifest

    if not card_path(target).exists():
        raise FileNotFoundError(f"{target}: neither an image file nor a data set card "
                                f"({card_path(target)})")
    df = load_manifest(target)
    kinds = ("blurry", "sharp") if which == "both" else (which,)
    items: list[Item] = []
    for kind in kinds:
        seen: dict[str, str] = {}
        for row in df.itertuples(index=False):
            p = getattr(row, kind)
            if not isinstance(p, str):
                continue  # no ground truth for this pair
            if row.image_id in seen:
                raise ValueError(f"{target}: image id {row.image_id!r} appears in splits "
                                 f"{seen[row.image_id]!r} and {row.split!r}; output names "
                                 f"would collide")
            seen[row.image_id] = row.split
            items.append(Item(row.image_id, row.split, kind, Path(p)))
    if which == "sharp" and not items:
        raise ValueError(f"{target}: has no sharp images to annotate")
    return target, items


def annotate_one(item: Item, out: Path, params: pba.PBAParams, patch: int) -> np.ndarray:
    """Annotate one image into ``out``; returns its pixel level map."""
    image = read_image(item.path)
    try:
        result = pba.annotate(np.clip(image, 0.0, 1.0), params)
    except ValueError as exc:
        raise ValueError(f"{item.path}: {exc}") from None
    levels = level_map(image, result, patch)
    folder = out if item.kind == "blurry" else out / "sharp"
    pba.save_npz(result, folder / f"{item.image_id}.npz")
    write_png(folder / f"{item.image_id}.png", overlay_png(image, levels), bits=8)
    write_levels_png(folder / f"{item.image_id}_levels.png", levels)
    return levels


def annotate_target(target: str, out: str | os.PathLike, which: Which = "blurry",
                    pba_section: PBASection | dict[str, Any] | None = None) -> dict[str, Any]:
    """Annotate an image or every image of a prepared data set; writes and returns the summary."""
    params, patch = pba_params_from(pba_section)
    name, items = _items_for(target, which)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, np.ndarray]] = {}
    images: dict[str, dict[str, int]] = {}
    for item in tqdm(items, desc=f"pba {name}", unit="img"):
        levels = annotate_one(item, out, params, patch)
        c = counts.setdefault(item.kind, {}).setdefault(item.split, np.zeros(4, np.int64))
        c += np.bincount(levels.ravel(), minlength=4)[:4]
        images.setdefault(item.kind, {}).setdefault(item.split, 0)
        images[item.kind][item.split] += 1
    per_kind = {}
    for kind, splits in counts.items():
        per_kind[kind] = {}
        for split, c in sorted(splits.items()):
            total = max(int(c.sum()), 1)
            per_kind[kind][split] = {
                "images": images[kind][split], "pixels": int(c.sum()),
                "share": {n: float(v) / total for n, v in zip(pba.LEVEL_NAMES, c)}}
    summary = {"source": name, "which": which, "pixel_map_patch": patch,
               "levels": list(pba.LEVEL_NAMES), "params": asdict(params), **per_kind}
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
    tmp.replace(out / "summary.json")
    return summary
