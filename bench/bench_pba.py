"""Time the vectorised PBA against its per-patch definition on a 1120x1680 image, 4 scales.

    .venv/bin/python bench/bench_pba.py [--repeats 3]

The image is a 2x2 mosaic of scikit-image photos, each resized to 560x840, blurred by a
Gaussian whose sigma grows from 0 (left) to 5 (right); upsampling already softens it.
Baseline: the whole-image float64 filters once, then one ``structural_similarity`` call per
patch at each scale. Best of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
from skimage import data, img_as_float32, transform

from deblurbench.annotate.pba import (
    PBAParams,
    annotate,
    naive_blur_scores,
    naive_laplacian_pair,
    naive_patch_scores,
)

HEIGHT, WIDTH = 1120, 1680
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
MAX_SIGMA = 5.0


def bench_image() -> np.ndarray:
    """float32 RGB mosaic with blur rising left to right (blend of 6 Gaussian-blurred copies)."""
    h, w = HEIGHT // 2, WIDTH // 2
    tiles = [transform.resize(img_as_float32(getattr(data, n)()), (h, w), anti_aliasing=True)
             for n in PHOTOS]
    sharp = np.block([[[tiles[0]], [tiles[1]]], [[tiles[2]], [tiles[3]]]]).astype(np.float32)
    sigmas = np.linspace(0.0, MAX_SIGMA, 6)
    stack = [sharp] + [cv2.GaussianBlur(sharp, (0, 0), s, borderType=cv2.BORDER_REFLECT)
                       for s in sigmas[1:]]
    pos = np.linspace(0.0, len(sigmas) - 1, WIDTH)  # fractional index into the stack per column
    lo = np.floor(pos).astype(int).clip(0, len(sigmas) - 2)
    frac = (pos - lo)[None, :, None]
    out = np.zeros_like(sharp)
    for k in range(len(sigmas) - 1):
        cols = lo == k
        out[:, cols] = ((1 - frac[:, cols]) * stack[k][:, cols]
                        + frac[:, cols] * stack[k + 1][:, cols])
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up: OpenCV's thread pool, scipy's first call
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    params = PBAParams()
    image = bench_image()

    def naive_shared() -> list[np.ndarray]:
        laps = naive_laplacian_pair(image, params)
        return [naive_patch_scores(*laps, s, params) for s in params.patch_sizes]

    def naive_per_scale() -> list[np.ndarray]:
        return [naive_blur_scores(image, s, params) for s in params.patch_sizes]

    runs = {
        "naive: filters once, skimage SSIM per patch": naive_shared,
        "naive: naive_blur_scores per scale": naive_per_scale,
        "vectorised: annotate (one SSIM map)": lambda: list(annotate(image, params).scores),
    }
    times, grids = {}, {}
    for name, fn in runs.items():
        times[name], grids[name] = best_time(fn, args.repeats)

    reference = grids["naive: filters once, skimage SSIM per patch"]
    baseline = times["naive: filters once, skimage SSIM per patch"]
    print(f"PBA, {HEIGHT}x{WIDTH} image, patch sizes {params.patch_sizes}, "
          f"{os.cpu_count()} CPUs, OpenCV threads {cv2.getNumThreads()}, "
          f"best of {args.repeats}")
    print(f"{'run':<46} {'time ms':>9} {'speed-up':>9} {'max |diff|':>11}")
    for name in runs:
        diff = max(float(np.abs(g - r).max()) for g, r in zip(grids[name], reference))
        print(f"{name:<46} {times[name] * 1e3:9.1f} {baseline / times[name]:8.1f}x "
              f"{diff:11.2e}")
    result = annotate(image, params)
    counts = np.bincount(result.labels[0].ravel(), minlength=4)
    print(f"patches per level at {params.patch_sizes[0]} px (slight..severe): {counts.tolist()}; "
          f"grids {[g.shape for g in result.scores]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
