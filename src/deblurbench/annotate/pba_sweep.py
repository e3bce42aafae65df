"""Blur-score validation as in MBSD's Fig. 9: image score against controlled Gaussian blur.

Two sweeps: standard deviation ``sigma`` (kernel radius ceil(4 sigma), OpenCV's own choice for
float images) and kernel ``radius`` with sigma left to OpenCV's rule for a given size,
0.3 (radius - 1) + 0.8, which is what ``cv2.GaussianBlur(img, (2r+1, 2r+1), 0)`` does and
presumably what the paper's radius axis means. A value of 0 is the unblurred image.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from deblurbench.annotate.pba import DEFAULT_PARAMS, PBAParams, blur_scores

Sweep = Literal["sigma", "radius"]
SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
RADII = (0, 1, 2, 3, 4, 5, 7, 9, 11, 13, 15)


def gaussian_blur(image: np.ndarray, kind: Sweep, value: float) -> np.ndarray:
    """``image`` (float RGB [0, 1]) blurred by ``sigma`` or ``radius`` = ``value``; float32."""
    img = np.ascontiguousarray(image, dtype=np.float32)
    if value == 0:
        return img.copy()
    if kind == "sigma":
        out = cv2.GaussianBlur(img, (0, 0), float(value), borderType=cv2.BORDER_REFLECT)
    elif kind == "radius":
        k = 2 * int(value) + 1
        out = cv2.GaussianBlur(img, (k, k), 0, borderType=cv2.BORDER_REFLECT)
    else:
        raise ValueError(f"sweep kind must be 'sigma' or 'radius', got {kind!r}")
    return np.clip(out, 0.0, 1.0)


def image_blur_score(image: np.ndarray, params: PBAParams = DEFAULT_PARAMS) -> float:
    """Mean blur score over the finest patch grid: one number per image for Fig. 9."""
    return float(np.mean(blur_scores(image, params.patch_sizes[0], params), dtype=np.float64))


def score_curve(image: np.ndarray, kind: Sweep, values: tuple[float, ...],
                params: PBAParams = DEFAULT_PARAMS) -> list[float]:
    """:func:`image_blur_score` of ``image`` blurred at each of ``values``."""
    return [image_blur_score(gaussian_blur(image, kind, v), params) for v in values]
