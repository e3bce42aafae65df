"""The `defocus` protocol's fidelity metrics, as the DPDD literature computes them.

RGB in [0, 1] from the native bit depth, the whole image (no crop): PSNR with peak 1, SSIM as
scikit-image's default (7x7 uniform window, ``channel_axis=-1``), MAE over all pixels and
channels. Not pyiqa's ``ssim``/``psnry``, which work on luma and give other numbers.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from deblurbench.metrics.spec import METRICS, Metric, MetricSpec


def psnr(restored: np.ndarray, reference: np.ndarray | None) -> float:
    """10 log10(1 / MSE) over all pixels and channels; +inf for identical images."""
    assert reference is not None
    mse = float(np.mean((restored.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def ssim(restored: np.ndarray, reference: np.ndarray | None) -> float:
    assert reference is not None
    return float(structural_similarity(restored, reference, channel_axis=-1, data_range=1.0))


def mae(restored: np.ndarray, reference: np.ndarray | None) -> float:
    assert reference is not None
    return float(np.mean(np.abs(restored.astype(np.float64) - reference.astype(np.float64))))


METRICS.register("psnr", Metric(MetricSpec(
    name="psnr", version="defocus-1", kind="FR", direction="higher", library="numpy",
    colour_space="RGB", window="none", data_range=1.0, crop=0,
    definition="10*log10(1/MSE), MSE over all pixels and RGB channels, float64",
    identical_value=float("inf"), value_range=(0.0, float("inf"))), psnr, "numpy"))
METRICS.register("ssim", Metric(MetricSpec(
    name="ssim", version="defocus-1", kind="FR", direction="higher", library="scikit-image",
    colour_space="RGB", window="7x7 uniform, sample covariance", data_range=1.0, crop=0,
    definition="skimage.metrics.structural_similarity(restored, sharp, channel_axis=-1, "
               "data_range=1.0), mean over channels",
    identical_value=1.0, value_range=(-1.0, 1.0)), ssim, "scikit-image"))
METRICS.register("mae", Metric(MetricSpec(
    name="mae", version="defocus-1", kind="FR", direction="lower", library="numpy",
    colour_space="RGB", window="none", data_range=1.0, crop=0,
    definition="mean |restored - sharp| over all pixels and RGB channels, float64",
    identical_value=0.0, value_range=(0.0, 1.0)), mae, "numpy"))
