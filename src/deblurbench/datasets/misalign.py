"""A misaligned copy of a synthetic data set, with the true alignment stored (JDRL's setting).

SDD's pairs are two captures, so the sharp target is zoomed and shifted against the blurry
input (paper 002). To test a misalignment-tolerant method where the answer is known, each sharp
image of the source set is warped by a seeded similarity transform about the image centre:

    sharp_misaligned(x) = sharp(c + s * (x - c) + t),   s in [1 - zoom, 1 + zoom], |t_i| <= shift

The blurry image and its blur map keep their geometry. The untouched sharp image is the
aligned ground truth: ``datasets align`` turns it into the ``aligned`` variant (mask: every
pixel), so ``score.reference: aligned`` scores against the truth and not an estimate.
Pixels sampled from outside the frame are mirrored (OpenCV BORDER_REFLECT_101); at the default
3% / 4 px that is at most ~8 px at a 256 px border, recorded per image as ``outside_fraction``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from deblurbench.io import read_image, write_png

ALIGNMENT_FILE = "alignment.json"
ALIGNED_DIR = "aligned_sharp"  # raw/<split>/aligned_sharp/<id>.png: the true aligned target


def draw_transform(rng: np.random.Generator, zoom: float, shift_px: float) -> dict[str, float]:
    """One pair's zoom factor and shift (pixels), uniform in the given ranges."""
    return {"zoom": float(rng.uniform(1 - zoom, 1 + zoom)),
            "dx": float(rng.uniform(-shift_px, shift_px)),
            "dy": float(rng.uniform(-shift_px, shift_px))}


def source_map(t: dict[str, float], h: int, w: int) -> np.ndarray:
    """The 2x3 matrix M with ``source = M @ [x, y, 1]``: where each output pixel samples."""
    s, cx, cy = t["zoom"], (w - 1) / 2, (h - 1) / 2
    return np.array([[s, 0, cx - s * cx + t["dx"]], [0, s, cy - s * cy + t["dy"]]], np.float64)


def warp(image: np.ndarray, t: dict[str, float]) -> tuple[np.ndarray, float]:
    """``image`` (HxWxC float) resampled by ``t`` (bicubic), and the share of output pixels
    whose source lies outside the frame (mirrored in)."""
    h, w = image.shape[:2]
    m = source_map(t, h, w)
    out = cv2.warpAffine(image.astype(np.float32), m, (w, h),
                         flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT_101)
    ys, xs = np.mgrid[0:h, 0:w]
    sx = m[0, 0] * xs + m[0, 2]
    sy = m[1, 1] * ys + m[1, 2]
    outside = float(((sx < 0) | (sx > w - 1) | (sy < 0) | (sy > h - 1)).mean())
    return np.clip(out, 0, 1), outside


def make_misaligned(source_raw: Path, out_raw: Path, seed: int, zoom: float, shift_px: float
                    ) -> list[dict]:
    """Copy ``source_raw`` (the synthetic layout) to ``out_raw`` with every sharp image
    misaligned; the originals go to ``<split>/aligned_sharp``, the transforms to
    ``alignment.json``. Written to a partial folder and moved into place at the end."""
    if zoom < 0 or zoom >= 0.5 or shift_px < 0:
        raise ValueError(f"misalignment: zoom must be in [0, 0.5) and shift >= 0, got "
                         f"zoom={zoom}, shift_px={shift_px}")
    partial = out_raw.with_name(out_raw.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    records = []
    sharp_files = sorted(source_raw.glob("*/sharp/*.png"))
    if not sharp_files:
        raise FileNotFoundError(f"{source_raw}: no sharp images; expected a synthetic data "
                                f"set's raw folder (<split>/sharp/*.png, <split>/blurry/*.png)")
    for f in tqdm(sharp_files, desc=f"misalign {out_raw.parent.name}", unit="pair"):
        split, image_id = f.parent.parent.name, f.stem
        rng = np.random.default_rng([seed, *image_id.encode()])
        t = draw_transform(rng, zoom, shift_px)
        sharp = read_image(f)
        moved, outside = warp(sharp, t)
        base = partial / split
        write_png(base / "sharp" / f.name, moved, bits=16)
        (base / ALIGNED_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, base / ALIGNED_DIR / f.name)
        for sub, suffix in (("blurry", ".png"), ("blur_map", ".npy")):
            src = source_raw / split / sub / f"{image_id}{suffix}"
            if src.exists():
                (base / sub).mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, base / sub / src.name)
        h, w = sharp.shape[:2]
        records.append({"split": split, "image_id": image_id, **t,
                        "matrix": source_map(t, h, w).round(8).tolist(),
                        "outside_fraction": round(outside, 6)})
    (partial / ALIGNMENT_FILE).write_text(json.dumps(
        {"source": str(source_raw), "seed": seed, "zoom": zoom, "shift_px": shift_px,
         "model": "similarity about the image centre: source = c + zoom * (x - c) + (dx, dy)",
         "pairs": records}, indent=1))
    for extra in ("scenes.json", "stats.json"):
        if (source_raw / extra).exists():
            shutil.copy2(source_raw / extra, partial / extra)
    shutil.rmtree(out_raw, ignore_errors=True)
    partial.rename(out_raw)
    return records


def known_alignment(raw: Path) -> dict | None:
    """The stored true alignment of a misaligned synthetic set, or None for other sets."""
    f = raw / ALIGNMENT_FILE
    return json.loads(f.read_text()) if f.exists() else None
