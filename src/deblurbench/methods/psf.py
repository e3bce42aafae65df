"""Classical defocus tools shared by the baselines: PSFs, edge-based blur estimation, deconvolution.

Blur estimation follows the edge re-blurring idea of the classical two-stage literature (Zhuo and
Sim 2011; Karaali and Jung 2017, cited by the MBSD paper): re-blur the image with a Gaussian of
known ``sigma0``; at an edge the ratio R of gradient magnitudes before and after gives the
Gaussian-equivalent blur ``sigma0 / sqrt(R^2 - 1)``. Our gradients are Sobel's, which add their
own smoothing, and the PSF may be a disk rather than a Gaussian, so the estimate is mapped to a
PSF radius through a lookup table calibrated once on step edges blurred with known PSFs
(:func:`calibration`): the table, not a formula, absorbs both biases.

Deconvolution runs in torch (CPU or GPU): Wiener with a gradient image prior
``X = conj(K) Y / (|K|^2 + lam (|Dx|^2 + |Dy|^2))`` and Richardson-Lucy, both on reflect-padded
images so that the FFT's periodic boundary does not ring across the frame.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

SIGMA0 = 1.0
MAX_RADIUS = 12.0


def psf_kernel(shape: str, radius: float, supersample: int = 8) -> np.ndarray:
    """A normalised float64 PSF: ``disk`` of ``radius`` pixels (area-sampled), or ``gaussian``
    with sigma = radius / 2 (the disk's per-axis standard deviation)."""
    if shape == "gaussian":
        sigma = max(radius / 2, 1e-3)
        half = max(1, math.ceil(3 * sigma))
        t = np.arange(-half, half + 1, dtype=np.float64)
        g = np.exp(-0.5 * (t / sigma) ** 2)
        k = np.outer(g, g)
        return k / k.sum()
    if shape != "disk":
        raise ValueError(f"unknown PSF shape {shape!r} (known: disk, gaussian)")
    half = math.ceil(radius)
    n = 2 * half + 1
    t = (np.arange(n * supersample) + 0.5) / supersample - (half + 0.5)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    inside = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    k = inside.reshape(n, supersample, n, supersample).mean(axis=(1, 3))
    if k.sum() == 0:  # radius well under a pixel: a delta
        k[half, half] = 1.0
    return k / k.sum()


def luma(img: np.ndarray) -> np.ndarray:
    """HxWx3 RGB [0, 1] -> HxW float32 luma (Rec. 601 weights)."""
    return (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def _sobel_mag(g: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.hypot(gx, gy)


def edge_sigmas(gray: np.ndarray, min_contrast: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-equivalent blur at edge pixels of ``gray`` (HxW float32 [0, 1]).

    Returns (ys, xs, sigma) stacked as an Nx3 array and the boolean edge mask. Edges are Canny's
    on the 8-bit image with gradient magnitude above ``min_contrast`` per pixel.
    """
    g1 = cv2.GaussianBlur(gray, (0, 0), SIGMA0, borderType=cv2.BORDER_REFLECT)
    m0, m1 = _sobel_mag(gray), _sobel_mag(g1)
    u8 = np.clip(gray * 255 + 0.5, 0, 255).astype(np.uint8)
    edges = cv2.Canny(u8, 10, 30, L2gradient=True) > 0
    edges &= m0 > 8 * min_contrast  # Sobel's gain is 8 for a unit step
    ratio = m0[edges] / np.maximum(m1[edges], 1e-8)
    ys, xs = np.nonzero(edges)
    ok = ratio > 1 + 1e-4
    sigma = SIGMA0 / np.sqrt(ratio[ok] ** 2 - 1)
    return np.stack([ys[ok], xs[ok], sigma], axis=1), edges


@lru_cache(maxsize=4)
def calibration(shape: str = "disk") -> tuple[np.ndarray, np.ndarray]:
    """(estimated sigma, true radius) on step edges blurred by known PSFs; estimate increasing."""
    radii = np.arange(0.0, MAX_RADIUS + 1e-9, 0.25)
    est = []
    for r in radii:
        img = np.full((128, 128), 0.2, np.float32)
        img[:, 64:] = 0.8
        if r > 0:
            k = psf_kernel(shape, float(r)).astype(np.float32)
            img = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
        est.append(float(np.median(edge_sigmas(img)[0][:, 2])))
    est_arr = np.maximum.accumulate(np.array(est))  # monotone for interpolation
    return est_arr, radii


def sigma_to_radius(sigma: np.ndarray | float, shape: str = "disk") -> np.ndarray:
    est, radii = calibration(shape)
    return np.interp(sigma, est, radii)


def global_radius(img: np.ndarray, shape: str = "disk", quantile: float = 0.5) -> float:
    """One PSF radius for the whole HxWx3 image: a quantile of the per-edge estimates."""
    found, _ = edge_sigmas(luma(img))
    if len(found) < 16:  # too few edges to say: assume sharp
        return 0.0
    return float(sigma_to_radius(np.quantile(found[:, 2], quantile), shape))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide (box filters); edge-aware smoothing."""
    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1),
                             borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov = box(guide * src) - mean_i * mean_p
    var = box(guide * guide) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def defocus_map(img: np.ndarray, shape: str = "disk", spread: float = 8.0,
                guide_radius: int = 4, eps: float = 1e-3) -> np.ndarray:
    """Dense per-pixel PSF radius (HxW float32) from sparse edge estimates.

    Normalised convolution spreads the edge estimates (Gaussian of ``spread`` pixels), then a
    guided filter on the luma aligns the map with image structure. Pixels far from any edge
    take the image's median edge estimate.
    """
    gray = luma(img)
    found, _ = edge_sigmas(gray)
    h, w = gray.shape
    if len(found) < 16:
        return np.zeros((h, w), np.float32)
    r = sigma_to_radius(found[:, 2], shape).astype(np.float32)
    num = np.zeros((h, w), np.float32)
    den = np.zeros((h, w), np.float32)
    ys, xs = found[:, 0].astype(int), found[:, 1].astype(int)
    num[ys, xs] = r
    den[ys, xs] = 1.0
    num = cv2.GaussianBlur(num, (0, 0), spread, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(den, (0, 0), spread, borderType=cv2.BORDER_REFLECT)
    conf = den / (den + 1e-3)
    dense = np.where(den > 1e-6, num / np.maximum(den, 1e-12), 0)
    dense = conf * dense + (1 - conf) * float(np.median(r))
    dense = guided_filter(gray, dense.astype(np.float32), guide_radius, eps)
    return np.clip(dense, 0, MAX_RADIUS).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# deconvolution (torch, Bx3xHxW in [0, 1])


def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    mode = "reflect" if p < h and p < w else "replicate"
    return F.pad(x, (p, p, p, p), mode=mode)


def _otf(kernel: np.ndarray, h: int, w: int, device, dtype=torch.float64) -> torch.Tensor:
    """The kernel's transfer function on an h x w grid, centred at the origin."""
    k = torch.zeros(h, w, dtype=dtype, device=device)
    n = kernel.shape[0]
    k[:n, :n] = torch.as_tensor(kernel, dtype=dtype, device=device)
    k = torch.roll(k, shifts=(-(n // 2), -(n // 2)), dims=(0, 1))
    return torch.fft.fft2(k)


def wiener(y: torch.Tensor, kernel: np.ndarray, lam: float) -> torch.Tensor:
    """Wiener deconvolution with a gradient prior (``lam`` weighs it); float64 FFTs."""
    if kernel.shape[0] <= 1:
        return y.clone()
    p = kernel.shape[0]
    h, w = y.shape[-2:]
    yp = _pad(y.double(), p)
    hp, wp = yp.shape[-2:]
    K = _otf(kernel, hp, wp, y.device)
    dx = _otf(np.array([[0, 0, 0], [0, -1, 1], [0, 0, 0]], float), hp, wp, y.device)
    dy = _otf(np.array([[0, 0, 0], [0, -1, 0], [0, 1, 0]], float), hp, wp, y.device)
    reg = lam * (dx.abs() ** 2 + dy.abs() ** 2)
    X = torch.conj(K) * torch.fft.fft2(yp) / (K.abs() ** 2 + reg)
    x = torch.fft.ifft2(X).real[..., p:p + h, p:p + w]
    return x.to(y.dtype).clamp(0, 1)


def richardson_lucy(y: torch.Tensor, kernel: np.ndarray, iterations: int) -> torch.Tensor:
    """Richardson-Lucy deconvolution, started from the blurry image; FFT convolutions."""
    if kernel.shape[0] <= 1 or iterations <= 0:
        return y.clone()
    p = kernel.shape[0]
    h, w = y.shape[-2:]
    yp = _pad(y.double(), p).clamp_min(1e-6)
    hp, wp = yp.shape[-2:]
    K = _otf(kernel, hp, wp, y.device)

    def conv(a: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(a) * T).real

    x = yp.clone()
    Kc = torch.conj(K)
    for _ in range(iterations):
        ratio = yp / conv(x, K).clamp_min(1e-6)
        x = (x * conv(ratio, Kc)).clamp(0, 1.5)
    return x[..., p:p + h, p:p + w].to(y.dtype).clamp(0, 1)
