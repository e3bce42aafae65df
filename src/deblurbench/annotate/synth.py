"""Synthetic blur generators; each returns the blurred image and the truth that made it.

All generators take float32 RGB in [0, 1] and a seed (or a ``numpy.random.Generator``) and are
deterministic: the same seed gives the same bytes. Every kernel sums to 1 and filtering uses
reflect borders, so the mean intensity of the image is kept (up to border effects).

- Defocus lens models: Gaussian or anti-aliased disk PSF; optional cat's-eye vignetting (the
  disk is clipped by a second, displaced circle that grows with the distance from the image
  centre, as a lens barrel clips off-axis bundles), applied per tile and blended with soft
  bilinear weights; optional sensor noise (Poisson shot noise + Gaussian read noise).
- Motion: random camera trajectories in the spirit of Boracchi and Foi (2012): a 2-D random
  walk whose velocity has inertia, Gaussian perturbations, occasional impulsive jerks and a pull
  back towards the start; sampled finely and splatted bilinearly into a kernel. Uniform (one
  kernel) or non-uniform (one kernel per SLIC segment, composited with soft masks).
- Corruption-style blurs at 5 severities (defocus, Gaussian, glass, motion, zoom) in the spirit
  of Hendrycks and Dietterich (2019); the severity tables below are our own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from deblurbench.datasets.synthetic import disk_kernel

SeedLike = int | np.random.Generator
CORRUPTIONS = ("defocus", "gaussian", "glass", "motion", "zoom")
_BORDER = cv2.BORDER_REFLECT


@dataclass
class Blurred:
    """A blurred image with its truth: ``kernels`` (name -> PSF), an optional per-pixel
    ``blur_map`` (pixels of blur radius / streak length) and ``meta`` (settings, seed)."""

    image: np.ndarray
    kernels: dict[str, np.ndarray] = field(default_factory=dict)
    blur_map: np.ndarray | None = None
    masks: np.ndarray | None = None  # K x H x W soft masks of a non-uniform blur
    meta: dict[str, Any] = field(default_factory=dict)


def as_rng(seed: SeedLike) -> np.random.Generator:
    """A seed or a generator, as a generator (a generator is used as it is)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected float RGB HxWx3, got shape {image.shape}")
    return np.ascontiguousarray(image, dtype=np.float32)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True convolution (kernel flipped for OpenCV's correlation), reflect borders."""
    k = np.ascontiguousarray(np.asarray(kernel, np.float32)[::-1, ::-1])
    return cv2.filter2D(np.ascontiguousarray(image, np.float32), -1, k, borderType=_BORDER)


# --- defocus lens models ----------------------------------------------------------------------


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """Isotropic 2-D Gaussian PSF (truncated at 3 sigma unless ``radius``), summing to 1."""
    if sigma <= 0:
        return np.ones((1, 1), np.float32)
    r = int(np.ceil(3 * sigma)) if radius is None else radius
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def cats_eye_kernel(radius: float, dy: float, dx: float, strength: float) -> np.ndarray:
    """Disk PSF clipped by a circle of the same radius displaced by ``strength * radius *
    (dy, dx)`` (``(dy, dx)`` the pixel's offset from the centre, normalised to [-1, 1])."""
    base = disk_kernel(radius)
    if radius < 0.5 or strength <= 0:
        return base
    n = base.shape[0] // 2
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1].astype(np.float32)
    sy, sx = strength * radius * dy, strength * radius * dx
    clip = np.clip(radius + 0.5 - np.sqrt((yy - sy) ** 2 + (xx - sx) ** 2), 0, 1)
    k = base * clip
    if k.sum() <= 1e-8:  # fully vignetted: keep the centre tap
        k = np.zeros_like(base)
        k[n, n] = 1
    return (k / k.sum()).astype(np.float32)


def sensor_noise(image: np.ndarray, rng: np.random.Generator, read_sigma: float,
                 photons: float | None) -> np.ndarray:
    """Poisson shot noise at ``photons`` per unit intensity (None: none) + Gaussian read noise."""
    out = image.astype(np.float64)
    if photons:
        out = rng.poisson(np.clip(out, 0, None) * photons) / photons
    if read_sigma > 0:
        out = out + rng.normal(0.0, read_sigma, out.shape)
    return np.clip(out, 0, 1).astype(np.float32)


def defocus(image: np.ndarray, seed: SeedLike, *, model: Literal["disk", "gaussian"] = "disk",
            radius: float | None = None, radius_range: tuple[float, float] = (1.0, 6.0),
            cats_eye: float = 0.0, tiles: int = 4, read_sigma: float = 0.0,
            photons: float | None = None) -> Blurred:
    """Uniform defocus; ``radius`` (disk radius, or Gaussian sigma = radius / 2) drawn from
    ``radius_range`` unless given. ``cats_eye`` > 0 vignettes the disk towards the border."""
    img = _check(image)
    rng = as_rng(seed)
    r = float(rng.uniform(*radius_range)) if radius is None else float(radius)
    h, w = img.shape[:2]
    meta = {"kind": "defocus", "model": model, "radius": r, "cats_eye": cats_eye,
            "read_sigma": read_sigma, "photons": photons}
    if model == "gaussian":
        k = gaussian_kernel(r / 2.0)
        out, kernels = convolve(img, k), {"psf": k}
    elif model != "disk":
        raise ValueError(f"unknown lens model {model!r} (disk, gaussian)")
    elif cats_eye <= 0:
        k = disk_kernel(r)
        out, kernels = convolve(img, k), {"psf": k}
    else:
        # One PSF per tile centre, blended with bilinear (partition of unity) weights.
        cy = (np.arange(tiles) + 0.5) / tiles * 2 - 1
        weights_y = _hat_weights(h, tiles)
        weights_x = _hat_weights(w, tiles)
        out = np.zeros_like(img)
        kernels = {}
        for i in range(tiles):
            for j in range(tiles):
                k = cats_eye_kernel(r, cy[i], cy[j], cats_eye)
                kernels[f"psf_{i}_{j}"] = k
                wgt = np.outer(weights_y[i], weights_x[j]).astype(np.float32)
                out += wgt[:, :, None] * convolve(img, k)
        meta["tiles"] = tiles
    out = np.clip(out, 0, 1)
    if read_sigma > 0 or photons:
        out = sensor_noise(out, rng, read_sigma, photons)
    return Blurred(out.astype(np.float32), kernels, np.full((h, w), r, np.float32), None, meta)


def _hat_weights(n: int, tiles: int) -> np.ndarray:
    """tiles x n bilinear interpolation weights between tile centres; columns sum to 1."""
    centres = (np.arange(tiles) + 0.5) * n / tiles
    x = np.arange(n) + 0.5
    if tiles == 1:
        return np.ones((1, n))
    pos = np.clip(np.interp(x, centres, np.arange(tiles)), 0, tiles - 1)
    wts = np.maximum(0, 1 - np.abs(pos[None, :] - np.arange(tiles)[:, None]))
    return wts / wts.sum(0, keepdims=True)


# --- motion: random camera trajectories -------------------------------------------------------


def trajectory(rng: np.random.Generator, length: int = 64, steps: int = 2000,
               anxiety: float = 0.005, jerk_prob: float = 0.001) -> np.ndarray:
    """Complex-valued random camera path (Boracchi-Foi style): inertial velocity, Gaussian and
    impulsive perturbations, a drift back to the origin; total path length about ``length``."""
    anxiety = anxiety * rng.uniform()
    jerk = jerk_prob * rng.uniform()
    centripetal = 0.7 * rng.uniform()
    gaussian_term = 10 * rng.uniform()
    v0 = np.cos(rng.uniform() * np.pi) + 1j * np.sin(rng.uniform() * np.pi)
    v = v0 * (length / (steps - 1))
    x = np.zeros(steps, np.complex128)
    for t in range(steps - 1):
        if rng.uniform() < jerk:
            angle = np.pi + rng.uniform() * np.pi
            v = 2 * v * np.exp(1j * angle)
        dv = (-centripetal * x[t]
              + gaussian_term * (rng.normal() + 1j * rng.normal()) * anxiety) * (length / (steps - 1))
        v = v + dv
        v = v / max(abs(v), 1e-12) * (length / (steps - 1))
        x[t + 1] = x[t] + v
    return x


def trajectory_kernel(path: np.ndarray, size: int) -> np.ndarray:
    """Splat a path (centred on its mean) bilinearly into a ``size`` x ``size`` PSF."""
    if size % 2 == 0 or size < 3:
        raise ValueError(f"kernel size must be odd and >= 3, got {size}")
    p = path - path.mean()
    extent = max(np.abs(p.real).max(), np.abs(p.imag).max(), 1e-9)
    scale = min(1.0, (size // 2 - 1) / extent)  # fit the path inside the kernel
    xs, ys = p.real * scale + size // 2, p.imag * scale + size // 2
    k = np.zeros((size, size), np.float64)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                        (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(k, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), wgt)
    return (k / k.sum()).astype(np.float32)


def random_motion_kernel(rng: np.random.Generator, size: int = 31) -> np.ndarray:
    """A camera-shake PSF of at most ``size`` px (odd), path length drawn in [size/4, size]."""
    length = rng.uniform(size / 4, size)
    return trajectory_kernel(trajectory(rng, length=int(round(length))), size)


def motion(image: np.ndarray, seed: SeedLike, *, size: int = 31) -> Blurred:
    """Uniform camera-shake blur: one trajectory kernel for the whole image."""
    img = _check(image)
    k = random_motion_kernel(as_rng(seed), size)
    return Blurred(np.clip(convolve(img, k), 0, 1), {"psf": k}, None, None,
                   {"kind": "motion", "size": size})


def soft_masks(labels: np.ndarray, n: int, softness: float) -> np.ndarray:
    """n x H x W masks of a label map, Gaussian-feathered by ``softness`` px, summing to 1."""
    masks = np.stack([(labels == i).astype(np.float32) for i in range(n)])
    if softness > 0:
        masks = np.stack([cv2.GaussianBlur(m, (0, 0), softness, borderType=_BORDER)
                          for m in masks])
    return masks / np.maximum(masks.sum(0, keepdims=True), 1e-8)


def motion_nonuniform(image: np.ndarray, seed: SeedLike, *, size: int = 31, segments: int = 4,
                      softness: float = 4.0) -> Blurred:
    """A different trajectory kernel per SLIC segment, composited with feathered masks."""
    from skimage.segmentation import slic

    img = _check(image)
    rng = as_rng(seed)
    labels = slic(img, n_segments=segments, compactness=10, start_label=0,
                  channel_axis=2)
    n = int(labels.max()) + 1
    masks = soft_masks(labels, n, softness)
    kernels = {f"psf_{i}": random_motion_kernel(rng, size) for i in range(n)}
    out = np.zeros_like(img)
    for i in range(n):
        out += masks[i][:, :, None] * convolve(img, kernels[f"psf_{i}"])
    return Blurred(np.clip(out, 0, 1), kernels, None, masks,
                   {"kind": "motion-nonuniform", "size": size, "segments": n,
                    "softness": softness})


# --- corruption-style blurs, severities 1..5 --------------------------------------------------

#: (disk radius px, Gaussian anti-alias sigma)
DEFOCUS_SEVERITY = ((2.0, 0.1), (3.0, 0.3), (4.5, 0.5), (6.0, 0.5), (8.0, 0.5))
GAUSSIAN_SEVERITY = (1.0, 1.5, 2.5, 3.5, 5.0)  # sigma px
#: (sigma px, max pixel displacement, iterations)
GLASS_SEVERITY = ((0.6, 1, 1), (0.8, 1, 2), (1.0, 2, 2), (1.2, 3, 2), (1.5, 4, 3))
#: (line length px, Gaussian sigma across)
MOTION_SEVERITY = ((5, 0.5), (9, 0.5), (13, 0.8), (17, 1.0), (23, 1.2))
#: maximum zoom factor (streak = (zoom - 1) x distance from centre)
ZOOM_SEVERITY = (1.06, 1.11, 1.16, 1.21, 1.28)


def line_kernel(length: int, angle_deg: float, sigma: float = 0.5) -> np.ndarray:
    """Straight motion streak of ``length`` px at ``angle_deg``, softened across by ``sigma``."""
    size = length + 2 + (length % 2 == 0)
    c = size // 2
    yy, xx = np.mgrid[:size, :size].astype(np.float64) - c
    t = np.deg2rad(angle_deg)
    along = xx * np.cos(t) + yy * np.sin(t)
    across = -xx * np.sin(t) + yy * np.cos(t)
    k = np.exp(-0.5 * (across / max(sigma, 1e-3)) ** 2) * np.clip(length / 2 + 0.5 - np.abs(along), 0, 1)
    return (k / k.sum()).astype(np.float32)


def _zoom_centre(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape[:2]
    big = cv2.resize(img, (int(round(w * factor)), int(round(h * factor))),
                     interpolation=cv2.INTER_LINEAR)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return big[y0:y0 + h, x0:x0 + w]


def corrupt(image: np.ndarray, kind: str, severity: int, seed: SeedLike = 0) -> Blurred:
    """Corruption-style blur ``kind`` (one of :data:`CORRUPTIONS`) at ``severity`` 1..5."""
    img = _check(image)
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r} (known: {', '.join(CORRUPTIONS)})")
    if severity not in range(1, 6):
        raise ValueError(f"severity must be 1..5, got {severity!r}")
    rng = as_rng(seed)
    h, w = img.shape[:2]
    meta: dict[str, Any] = {"kind": f"corrupt-{kind}", "severity": severity}
    kernels: dict[str, np.ndarray] = {}
    blur_map = None
    if kind == "defocus":
        r, aa = DEFOCUS_SEVERITY[severity - 1]
        k = convolve_kernels(disk_kernel(r), gaussian_kernel(aa))
        out, kernels, blur_map = convolve(img, k), {"psf": k}, np.full((h, w), r, np.float32)
        meta |= {"radius": r, "alias_sigma": aa}
    elif kind == "gaussian":
        s = GAUSSIAN_SEVERITY[severity - 1]
        k = gaussian_kernel(s)
        out, kernels = convolve(img, k), {"psf": k}
        meta["sigma"] = s
    elif kind == "motion":
        length, s = MOTION_SEVERITY[severity - 1]
        angle = float(rng.uniform(-45, 45))
        k = line_kernel(length, angle, s)
        out, kernels = convolve(img, k), {"psf": k}
        meta |= {"length": length, "angle_deg": angle, "sigma": s}
    elif kind == "glass":
        s, delta, iters = GLASS_SEVERITY[severity - 1]
        k = gaussian_kernel(s)
        out = convolve(img, k)
        yy, xx = np.mgrid[:h, :w]
        for _ in range(iters):  # local pixel shuffle: each pixel takes a random neighbour's value
            dy = rng.integers(-delta, delta + 1, (h, w))
            dx = rng.integers(-delta, delta + 1, (h, w))
            out = out[np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)]
        out = convolve(out, k)
        kernels = {"psf": k}
        meta |= {"sigma": s, "max_delta": delta, "iterations": iters}
    else:  # zoom
        zmax = ZOOM_SEVERITY[severity - 1]
        factors = np.linspace(1.0, zmax, 8)
        out = np.mean([_zoom_centre(img, f) for f in factors], axis=0)
        yy, xx = np.mgrid[:h, :w]
        dist = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
        blur_map = ((zmax - 1) * dist).astype(np.float32)
        meta |= {"zoom_factors": [float(f) for f in factors]}
    return Blurred(np.clip(out, 0, 1).astype(np.float32), kernels, blur_map, None, meta)


def convolve_kernels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full 2-D convolution of two PSFs (still summing to 1)."""
    from scipy.signal import convolve2d

    k = convolve2d(a.astype(np.float64), b.astype(np.float64), mode="full")
    return (k / k.sum()).astype(np.float32)
