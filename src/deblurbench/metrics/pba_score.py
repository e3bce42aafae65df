"""PBA blur score: MBSD's patch blur annotator score (Eq. 1-2), averaged over the image: a
no-reference blur measure that needs no weights."""

from __future__ import annotations

import importlib.util

import numpy as np

from deblurbench.metrics.pyiqa_models import finite
from deblurbench.metrics.spec import Metric, MetricFailure, MetricSpec, register

PBA_PATCH = 64


def _pba_reason() -> str | None:
    if importlib.util.find_spec("deblurbench.annotate.pba") is None:
        return "deblurbench.annotate.pba is not installed in this tree (annotate issue)"
    return None


def pba_blur_score(restored: np.ndarray, reference: np.ndarray | None = None) -> float:
    from deblurbench.annotate import pba

    if min(restored.shape[:2]) < PBA_PATCH:
        raise MetricFailure(f"pba_blur_score needs at least {PBA_PATCH} px per side")
    return finite("pba_blur_score", float(np.mean(pba.blur_scores(restored, PBA_PATCH))))


register(Metric(MetricSpec(
    name="pba_blur_score", version=f"mbsd-p{PBA_PATCH}-1", kind="NR", direction="lower",
    library="deblurbench", colour_space="RGB (as deblurbench.annotate.pba)",
    window=f"{PBA_PATCH}x{PBA_PATCH} patches", data_range=1.0, crop=0,
    definition="mean over the image's patches of MBSD's PBA blur score (Eq. 1-2: SSIM between "
               "a patch and its Gaussian re-blur, r=11 sigma=3.6), from "
               "deblurbench.annotate.pba.blur_scores", value_range=(0.0, 1.0), family="blur"),
    pba_blur_score, "deblurbench", available=_pba_reason))
