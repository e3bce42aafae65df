"""Patch Blur Annotator (PBA) of MBSD (Eq. 1-3): per-patch blur scores and four blur levels.

Definition; every number is a field of :class:`PBAParams`. ``Y`` is the luma of a float32 RGB
image in [0, 1]; ``R`` is ``Y`` re-blurred by a Gaussian (sigma 3.6, radius 11); both go
through the 3x3 Laplacian. All filters run on the *whole* image and patches are cropped after.
A patch's score is scikit-image's SSIM of the two Laplacian crops (Gaussian window sigma 1.5,
population covariance, data range 1): near 1 means re-blurring changed little, i.e. blurry.

Borders: ``reflect`` is scipy's ``reflect`` = OpenCV's ``BORDER_REFLECT`` (edge pixel repeated);
OpenCV's *default* is ``BORDER_REFLECT_101`` = scipy's ``mirror``, which differs along the edge.

Why one SSIM map serves all four scales: scikit-image averages a crop's SSIM map only over its
interior, ``pad`` = window radius (5 px) in from each edge, and the window centred there never
reaches past the crop. So a patch's score is the mean of the whole-image SSIM map over the
patch's interior; :func:`annotate` computes that map once and reads every patch off an
integral image.

Decisions: a flat patch has both Laplacians 0, so SSIM = C1*C2 / (C1*C2) = 1 (severe: nothing
left to lose). A scale whose grid would be empty (image side < patch size) uses one patch, the
whole image, scored as a single crop. Images with a side under the SSIM window are refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from deblurbench.config import from_dict
from deblurbench.paths import atomic_file
from deblurbench.pba_definition import PBAParams

LEVEL_NAMES = ("slight", "mild", "moderate", "severe")
_CV_BORDER = {"reflect": cv2.BORDER_REFLECT, "mirror": cv2.BORDER_REFLECT_101}
#: Float rounding (e.g. a Gaussian of a 0/1 image reaching 1 + 1e-7) is not a range error.
_RANGE_SLACK = 1e-5


DEFAULT_PARAMS = PBAParams()


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: compare fields instead
class PBAResult:
    """Scores (float32) and levels (uint8) per scale, coarsening with ``patch_sizes``."""

    image_size: tuple[int, int]
    patch_sizes: tuple[int, ...]
    scores: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    params: PBAParams

    def pixel_maps(self) -> list[np.ndarray]:
        """One HxW uint8 level map per scale."""
        h, w = self.image_size
        return [pixel_levels(g, s, h, w) for g, s in zip(self.labels, self.patch_sizes)]


def grid_shape(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """Patch grid anchored top-left; (1, 1), the whole image, when it would be empty."""
    rows, cols = height // patch_size, width // patch_size
    return (rows, cols) if rows and cols else (1, 1)


def _patch_edges(height: int, width: int, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(row edges, col edges): arrays of [start, stop) pairs, one per patch row / column."""
    rows, cols = height // patch_size, width // patch_size
    if not (rows and cols):
        return np.array([[0, height]]), np.array([[0, width]])
    r, c = np.arange(rows) * patch_size, np.arange(cols) * patch_size
    return np.stack([r, r + patch_size], 1), np.stack([c, c + patch_size], 1)


def _check_image(image: np.ndarray, params: PBAParams) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected float RGB HxWx3, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected float RGB in [0, 1], got dtype {image.dtype}")
    if min(image.shape[:2]) < params.ssim_window:
        raise ValueError(f"image {image.shape[0]}x{image.shape[1]} is smaller than the "
                         f"{params.ssim_window}-px SSIM window")
    lo, hi = float(image.min()), float(image.max())
    if lo < -_RANGE_SLACK or hi > 1.0 + _RANGE_SLACK:
        raise ValueError(f"expected values in [0, 1], got [{lo:.6g}, {hi:.6g}]")


def _gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def laplacian_pair(image: np.ndarray, params: PBAParams = PBAParams()) -> tuple[np.ndarray, ...]:
    """(Laplacian of the re-blurred luma, Laplacian of the luma), float32, whole image."""
    _check_image(image, params)
    rgb = np.ascontiguousarray(image, dtype=np.float32)
    y = cv2.transform(rgb, np.array([params.luma_weights], dtype=np.float32))
    border = _CV_BORDER[params.border]
    g = _gaussian_taps(params.reblur_sigma, params.reblur_radius).astype(np.float32)
    reblurred = cv2.sepFilter2D(y, cv2.CV_32F, g, g, borderType=border)
    # filter2D correlates; flipping the kernel makes it the convolution of Eq. 1.
    k = np.ascontiguousarray(np.asarray(params.laplacian, dtype=np.float32)[::-1, ::-1])
    return (cv2.filter2D(reblurred, cv2.CV_32F, k, borderType=border),
            cv2.filter2D(y, cv2.CV_32F, k, borderType=border))


def ssim_map(x: np.ndarray, y: np.ndarray, params: PBAParams = PBAParams()) -> np.ndarray:
    """scikit-image's Gaussian-window SSIM map (population covariance), float32, in place."""
    w = _gaussian_taps(params.ssim_sigma, params.ssim_pad).astype(np.float32)

    def smooth(z: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(z, cv2.CV_32F, w, w, borderType=cv2.BORDER_REFLECT)

    ux, uy = smooth(x), smooth(y)
    vx, vy, vxy = smooth(x * x), smooth(y * y), smooth(x * y)
    vx -= ux * ux
    vy -= uy * uy
    vxy -= ux * uy
    c1 = np.float32((params.ssim_k1 * params.ssim_data_range) ** 2)
    c2 = np.float32((params.ssim_k2 * params.ssim_data_range) ** 2)
    num = ux * uy
    num *= 2
    num += c1
    vxy *= 2
    vxy += c2
    num *= vxy
    ux *= ux
    uy *= uy
    ux += uy
    ux += c1
    vx += vy
    vx += c2
    ux *= vx
    num /= ux
    return num


def _interior_means(integral: np.ndarray, height: int, width: int, patch_size: int,
                    pad: int) -> np.ndarray:
    """Mean of the SSIM map over each patch's interior, read off its float64 integral image."""
    rows, cols = _patch_edges(height, width, patch_size)
    r0, r1 = rows[:, 0] + pad, rows[:, 1] - pad
    c0, c1 = cols[:, 0] + pad, cols[:, 1] - pad
    total = (integral[r1][:, c1] - integral[r0][:, c1]
             - integral[r1][:, c0] + integral[r0][:, c0])
    return (total / np.outer(r1 - r0, c1 - c0)).astype(np.float32)


def _score_grids(image: np.ndarray, sizes: Iterable[int], params: PBAParams) -> list[np.ndarray]:
    ssim = ssim_map(*laplacian_pair(image, params), params)
    integral = cv2.integral(ssim, sdepth=cv2.CV_64F)
    h, w = image.shape[:2]
    return [_interior_means(integral, h, w, s, params.ssim_pad) for s in sizes]


def blur_scores(image: np.ndarray, patch_size: int, params: PBAParams = PBAParams()) -> np.ndarray:
    """Blur score grid (float32, :func:`grid_shape`) of one scale; higher is blurrier."""
    return _score_grids(image, [patch_size], params)[0]


def blur_levels(scores: np.ndarray, params: PBAParams = PBAParams()) -> np.ndarray:
    """Eq. 3: 0 slight (< t0), 1 mild (< t1), 2 moderate (< t2), 3 severe; uint8."""
    return np.digitize(scores, params.thresholds).astype(np.uint8)


def annotate(image: np.ndarray, params: PBAParams = PBAParams()) -> PBAResult:
    """All scales of one float RGB [0, 1] image, sharing one whole-image SSIM map."""
    scores = _score_grids(image, params.patch_sizes, params)
    return PBAResult(image_size=(image.shape[0], image.shape[1]),
                     patch_sizes=tuple(params.patch_sizes), scores=tuple(scores),
                     labels=tuple(blur_levels(s, params) for s in scores), params=params)


def pixel_levels(levels_grid: np.ndarray, patch_size: int, height: int, width: int) -> np.ndarray:
    """HxW uint8 map: each pixel its patch's level; the right/bottom remainder the nearest's."""
    rows, cols = grid_shape(height, width, patch_size)
    if levels_grid.shape != (rows, cols):
        raise ValueError(f"levels grid {levels_grid.shape} does not fit a {height}x{width} "
                         f"image at patch size {patch_size}: expected {(rows, cols)}")
    r = np.minimum(np.arange(height) // patch_size, rows - 1)
    c = np.minimum(np.arange(width) // patch_size, cols - 1)
    return np.asarray(levels_grid, dtype=np.uint8)[r][:, c]


def summarize_levels(pixel_maps: np.ndarray | Iterable[np.ndarray]) -> dict[str, float]:
    """Share of pixels per level name, pooled over the given maps; the shares sum to 1."""
    maps = [pixel_maps] if isinstance(pixel_maps, np.ndarray) else list(pixel_maps)
    counts = sum(np.bincount(m.ravel(), minlength=4)[:4] for m in maps)
    total = max(int(np.sum(counts)), 1)
    return {name: float(n) / total for name, n in zip(LEVEL_NAMES, counts)}


# --- the definition, literally: one scikit-image call per patch (tests and benchmark) -------


def naive_laplacian_pair(image: np.ndarray,
                         params: PBAParams = PBAParams()) -> tuple[np.ndarray, ...]:
    """float64 scipy version of :func:`laplacian_pair`."""
    _check_image(image, params)
    y = image.astype(np.float64) @ np.asarray(params.luma_weights, dtype=np.float64)
    reblurred = ndimage.gaussian_filter(y, params.reblur_sigma, radius=params.reblur_radius,
                                        mode=params.border)
    k = np.asarray(params.laplacian, dtype=np.float64)
    return (ndimage.convolve(reblurred, k, mode=params.border),
            ndimage.convolve(y, k, mode=params.border))


def naive_patch_scores(lap_reblurred: np.ndarray, lap: np.ndarray, patch_size: int,
                       params: PBAParams = PBAParams()) -> np.ndarray:
    """``structural_similarity`` on each patch crop of whole-image Laplacians; float64 grid."""
    h, w = lap.shape
    rows, cols = _patch_edges(h, w, patch_size)
    out = np.empty((len(rows), len(cols)))
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[i, j] = structural_similarity(
                lap_reblurred[r0:r1, c0:c1], lap[r0:r1, c0:c1],
                data_range=params.ssim_data_range, gaussian_weights=True,
                sigma=params.ssim_sigma, use_sample_covariance=False,
                K1=params.ssim_k1, K2=params.ssim_k2)
    return out


def naive_blur_scores(image: np.ndarray, patch_size: int,
                      params: PBAParams = PBAParams()) -> np.ndarray:
    """Reference for :func:`blur_scores`: whole-image float64 filters, one SSIM call a patch."""
    return naive_patch_scores(*naive_laplacian_pair(image, params), patch_size, params)


# --- storage ----------------------------------------------------------------------------------


def save_npz(result: PBAResult, path: str | os.PathLike) -> None:
    """Write ``score_l`` (float32), ``label_l`` (uint8) for l = 1.., ``patch_sizes``,
    ``image_size`` (needed to rebuild pixel maps) and ``params`` (JSON); atomically."""
    arrays: dict[str, np.ndarray] = {}
    for level, (s, lab) in enumerate(zip(result.scores, result.labels), start=1):
        arrays[f"score_{level}"] = np.asarray(s, dtype=np.float32)
        arrays[f"label_{level}"] = np.asarray(lab, dtype=np.uint8)
    arrays["patch_sizes"] = np.asarray(result.patch_sizes, dtype=np.int64)
    arrays["image_size"] = np.asarray(result.image_size, dtype=np.int64)
    arrays["params"] = np.array(json.dumps(asdict(result.params), sort_keys=True))
    with atomic_file(Path(path)) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path: str | os.PathLike) -> PBAResult:
    """Read what :func:`save_npz` wrote; the error names the file and the missing key."""
    with np.load(path, allow_pickle=False) as data:
        try:
            params = from_dict(PBAParams, json.loads(str(data["params"])), f"{path}:params")
            sizes = tuple(int(s) for s in data["patch_sizes"])
            n = range(1, len(sizes) + 1)
            scores = tuple(data[f"score_{i}"] for i in n)
            labels = tuple(data[f"label_{i}"] for i in n)
            h, w = (int(v) for v in data["image_size"])
        except KeyError as exc:
            raise ValueError(f"{path}: not a PBA annotation ({exc.args[0]})") from None
    return PBAResult(image_size=(h, w), patch_sizes=sizes, scores=scores, labels=labels,
                     params=params)
