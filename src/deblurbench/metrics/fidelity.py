"""Pixel fidelity metrics of both protocols, and the classical blur measures.

``defocus`` (what the DPDD literature computes): RGB in [0, 1] from the native bit depth, the
whole image (no crop), PSNR with peak 1, SSIM as scikit-image's default (7x7 uniform window,
``channel_axis=-1``), MAE over all pixels and channels. ``matlab`` (BasicSR / MATLAB style): SSIM
with an 11x11 Gaussian window (sigma 1.5) averaged over the valid region. ``psnr_y`` is BT.601
YCbCr luma (16-235) with peak 255, as BasicSR and MATLAB compute it; pyiqa's ``psnry`` uses YIQ
luma (0-255), so on any pair ``psnr_y`` = pyiqa ``psnry`` + 20 log10(255/219) = +1.3219 dB.

Each FR metric here also scores masked regions (PBA blur levels): PSNR and MAE over the masked
pixels, SSIM as the mean of its map over the masked pixels of the region the image value
averages (the map's interior).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from deblurbench.metrics.spec import Metric, MetricFailure, MetricSpec, register

BT601_Y = np.array([65.481, 128.553, 24.966]) / 255.0  # on RGB in [0, 1]; + 16/255


def _f64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64, copy=False)


BAND = 128  # rows per band: the float64 temporaries of a pixel metric stay a band's worth


def _bands(restored: np.ndarray, reference: np.ndarray):
    """(rows, restored band, reference band) in float64, ``BAND`` rows at a time: without
    them, a 4096x2160 pair takes ~5 image-sized float64 temporaries (about 500 MB)."""
    for y in range(0, restored.shape[0], BAND):
        rows = slice(y, y + BAND)
        yield rows, _f64(restored[rows]), _f64(reference[rows])


def _band_mean(f, restored: np.ndarray, reference: np.ndarray) -> float:
    """Mean of the elementwise ``f(restored, reference)`` over the whole image, summed band by
    band (the one-shot mean to float64 rounding)."""
    total, count = 0.0, 0
    for _, a, b in _bands(restored, reference):
        v = f(a, b)
        total += float(v.sum())
        count += v.size
    return total / count


def _pixel_map(f, restored: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """HxW float64 map of the elementwise ``f`` (averaged over channels), made band by band."""
    out = np.empty(restored.shape[:2])
    for rows, a, b in _bands(restored, reference):
        v = f(a, b)
        out[rows] = v.mean(axis=2) if v.ndim == 3 else v
    return out


def _squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) ** 2


def _absolute(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b)


def _squared_luma(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (luma_bt601(a) - luma_bt601(b)) ** 2


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def psnr(restored: np.ndarray, reference: np.ndarray | None) -> float:
    """10 log10(1 / MSE) over all pixels and channels; +inf for identical images."""
    assert reference is not None
    return _psnr_from_mse(_band_mean(_squared, restored, reference))


def psnr_regions(restored, reference, masks):
    sq = _pixel_map(_squared, restored, reference)
    return {k: _psnr_from_mse(float(sq[m].mean())) for k, m in masks.items() if m.any()}


def luma_bt601(img: np.ndarray) -> np.ndarray:
    """BT.601 YCbCr Y in [16/255, 235/255] from RGB in [0, 1] (float64, HxW)."""
    return _f64(img) @ BT601_Y + 16.0 / 255.0


def psnr_y(restored: np.ndarray, reference: np.ndarray | None) -> float:
    assert reference is not None
    return _psnr_from_mse(_band_mean(_squared_luma, restored, reference))


def psnr_y_regions(restored, reference, masks):
    sq = _pixel_map(_squared_luma, restored, reference)
    return {k: _psnr_from_mse(float(sq[m].mean())) for k, m in masks.items() if m.any()}


def mae(restored: np.ndarray, reference: np.ndarray | None) -> float:
    assert reference is not None
    return _band_mean(_absolute, restored, reference)


def mae_regions(restored, reference, masks):
    ab = _pixel_map(_absolute, restored, reference)
    return {k: float(ab[m].mean()) for k, m in masks.items() if m.any()}


def _ssim_map(restored, reference, gaussian: bool) -> tuple[float, np.ndarray, int]:
    """(image value, per-pixel map averaged over channels, border the value leaves out)."""
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False} if gaussian else {}
    win = 11 if gaussian else 7
    if min(restored.shape[:2]) < win:
        raise MetricFailure(f"image {restored.shape[1]}x{restored.shape[0]} is smaller than the "
                            f"{win}x{win} SSIM window")
    value, smap = structural_similarity(restored, reference, channel_axis=-1, data_range=1.0,
                                        full=True, **kw)
    return float(value), smap.mean(axis=2), (win - 1) // 2


def _interior(shape, pad: int) -> np.ndarray:
    inside = np.zeros(shape, bool)
    inside[pad:shape[0] - pad, pad:shape[1] - pad] = True
    return inside


def ssim(restored: np.ndarray, reference: np.ndarray | None) -> float:
    assert reference is not None
    return _ssim_map(restored, reference, gaussian=False)[0]


def ssim_regions(restored, reference, masks, gaussian: bool = False):
    _, smap, pad = _ssim_map(restored, reference, gaussian)
    inside = _interior(smap.shape, pad)
    return {k: float(smap[m & inside].mean()) for k, m in masks.items() if (m & inside).any()}


def ssim_matlab(restored: np.ndarray, reference: np.ndarray | None) -> float:
    assert reference is not None
    return _ssim_map(restored, reference, gaussian=True)[0]


def ssim_matlab_regions(restored, reference, masks):
    return ssim_regions(restored, reference, masks, gaussian=True)


def blur_effect(restored: np.ndarray, reference: np.ndarray | None = None) -> float:
    from skimage.measure import blur_effect as be

    value = float(be(restored, h_size=11, channel_axis=-1))
    if not np.isfinite(value):
        raise MetricFailure("blur_effect is undefined on this image (flat image?)")
    return value


def _fr(name, version, protocol, fn, region_fn, library, colour, window, definition,
        direction="higher", identical=None, rng=(0.0, float("inf")), crop=0, impl=""):
    return register(Metric(MetricSpec(
        name=name, version=version, kind="FR", direction=direction, library=library,
        colour_space=colour, window=window, data_range=1.0, crop=crop, definition=definition,
        identical_value=identical, value_range=rng, family="fidelity", protocol=protocol,
        regions=True, implementation=impl), fn, library, region_fn))


for _p in ("defocus", "matlab"):
    _fr("psnr", f"{_p}-1", _p, psnr, psnr_regions, "numpy", "RGB", "none",
        "10*log10(1/MSE), MSE over all pixels and RGB channels in [0, 1], float64, no crop; "
        "+inf for identical images (pyiqa's psnr adds eps=1e-8 and caps at 80 dB)",
        identical=float("inf"))
    _fr("mae", f"{_p}-1", _p, mae, mae_regions, "numpy", "RGB", "none",
        "mean |restored - sharp| over all pixels and RGB channels in [0, 1], float64",
        direction="lower", identical=0.0, rng=(0.0, 1.0))
_fr("ssim", "defocus-1", "defocus", ssim, ssim_regions, "scikit-image", "RGB",
    "7x7 uniform, sample covariance",
    "skimage.metrics.structural_similarity(restored, sharp, channel_axis=-1, data_range=1.0), "
    "mean over channels and over the map's interior (3 px border left out)",
    identical=1.0, rng=(-1.0, 1.0))
_fr("ssim", "matlab-1", "matlab", ssim_matlab, ssim_matlab_regions, "scikit-image", "RGB",
    "11x11 Gaussian sigma 1.5, population covariance",
    "SSIM of Wang et al. 2004 as BasicSR/MATLAB: Gaussian 11x11 sigma 1.5, K=(0.01, 0.03), "
    "averaged over the valid region (5 px border left out) and over RGB channels; computed as "
    "skimage structural_similarity(gaussian_weights=True, sigma=1.5, "
    "use_sample_covariance=False, data_range=1)",
    identical=1.0, rng=(-1.0, 1.0))
_fr("psnr_y", "bt601-1", "any", psnr_y, psnr_y_regions, "numpy", "YCbCr BT.601 Y (16-235)",
    "none",
    "PSNR of BT.601 luma Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1]), peak 255 "
    "on Y, float64, no rounding, no crop; equals pyiqa psnry (YIQ luma) + 20*log10(255/219)",
    identical=float("inf"))
register(Metric(MetricSpec(
    name="blur_effect", version="skimage-h11-1", kind="NR", direction="lower",
    library="scikit-image", colour_space="RGB (channel-averaged)", window="re-blur h_size=11",
    data_range=1.0, crop=0,
    definition="skimage.measure.blur_effect(image, h_size=11, channel_axis=-1): Crete et al. "
               "2007 perceptual blur, 0 sharp .. 1 maximally blurred", identical_value=None,
    value_range=(0.0, 1.0), family="blur"), blur_effect, "scikit-image"))
