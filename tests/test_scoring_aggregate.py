"""Bootstrap confidence intervals and paired comparisons."""

from __future__ import annotations

import numpy as np

from deblurbench.metrics.aggregate import bootstrap_ci, paired


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 40, 400):
        v = rng.normal(30, 2, n)
        mean, lo, hi = bootstrap_ci(v, seed=1)
        assert mean == v.mean() and lo < mean < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] == np.float64(widths[2]) and 0.2 < widths[2] < 0.6  # ~ 2*1.96*2/sqrt(400)
    assert bootstrap_ci(v, seed=1) == bootstrap_ci(v, seed=1)  # reproducible


def test_paired_comparison_detects_a_planted_difference_and_not_a_null_one():
    rng = np.random.default_rng(3)
    base = rng.normal(28, 3, 40)  # per-image difficulty shared by both methods
    better = base + 0.5 + rng.normal(0, 0.2, 40)
    res = paired(better, base, seed=0)
    assert res["p_value"] < 1e-4 and res["ci_low"] > 0.3 and res["mean_diff"] > 0.4
    null = base + rng.normal(0, 0.2, 40)
    res0 = paired(null, base, seed=0)
    assert res0["p_value"] > 0.05 and res0["ci_low"] < 0 < res0["ci_high"]
    same = paired(base, base)
    assert same["p_value"] == 1.0 and same["mean_diff"] == 0.0
