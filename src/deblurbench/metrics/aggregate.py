"""Run-level aggregates: bootstrap confidence intervals of the mean (images resampled) and
paired comparisons of two runs on the same images (mean difference with a bootstrap CI and the
Wilcoxon signed-rank p-value). Seeds derive from the run ids, so a rerun gives the same CI.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.stats import wilcoxon

N_BOOT = 2000
LEVEL = 0.95


def seed_of(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "little")


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_boot: int = N_BOOT,
                 level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap over images; one image gives (v, v, v)."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2 or not np.isfinite(v).all():
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    means = v[idx].mean(axis=1)
    a = (1 - level) / 2
    return mean, float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    """A - B on the same images: mean difference, its bootstrap CI, Wilcoxon p (two-sided)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = len(d)
    if n == 0:
        return {"n": 0, "mean_diff": None, "ci_low": None, "ci_high": None, "p_value": None}
    mean, lo, hi = bootstrap_ci(d, seed)
    p = 1.0 if not np.any(d != 0) else float(wilcoxon(d, zero_method="wilcox").pvalue)
    return {"n": n, "mean_diff": mean, "ci_low": lo, "ci_high": hi, "p_value": p}
