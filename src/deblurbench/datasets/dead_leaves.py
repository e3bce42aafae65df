"""Procedural dead-leaves images: a scale-invariant content prior for restoration networks.

After Achddou, Gousseau and Ladjal (2021), "Synthetic images as a regularity prior for image
restoration neural networks": discs with radii drawn from p(r) ~ r^-3 on [r_min, r_max] (the
law that makes the model scale invariant, as natural images roughly are), uniform centres and
random colours, each new disc occluding the ones drawn before (painter's order = front to back
reversed). Some discs carry a texture (a two-colour sinusoid or band-pass noise) so that the
network also sees fine periodic and stochastic detail, not only flat regions and edges.

Rendering is vectorised: the discs are drawn as integer labels into one map (cv2.circle, last
disc on top), colours and textures are looked up per label, and the picture is rendered at
``supersample`` times the size and area-downsampled so that disc edges are anti-aliased.
"""

from __future__ import annotations

import cv2
import numpy as np

NOISE_SIGMAS_PX = (0.7, 1.5, 3.0)  # band-pass noise textures, at the output resolution
_SHIFT = 4  # cv2 sub-pixel bits for disc centres and radii


def sample_radii(rng: np.random.Generator, n: int, r_min: float, r_max: float) -> np.ndarray:
    """``n`` radii with density ~ r^-3 on [r_min, r_max] (inverse-CDF sampling), float64."""
    if not 0 < r_min <= r_max:
        raise ValueError(f"dead leaves need 0 < r_min <= r_max, got {r_min}, {r_max}")
    a, b = r_min**-2.0, r_max**-2.0
    return (a - rng.random(n) * (a - b)) ** -0.5


def mean_disc_area(r_min: float, r_max: float) -> float:
    """E[pi r^2] under p(r) ~ r^-3 on [r_min, r_max]: pi ln(r_max/r_min) / ((r_min^-2 - r_max^-2) / 2)."""
    if r_max <= r_min:
        return float(np.pi * r_min**2)
    return float(np.pi * np.log(r_max / r_min) / ((r_min**-2.0 - r_max**-2.0) / 2.0))


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random colours between grey and saturated: grey level g mixed with a random RGB."""
    grey = rng.random((n, 1))
    rgb = rng.random((n, 3))
    sat = rng.random((n, 1))
    return (1 - sat) * grey + sat * rgb


def dead_leaves(height: int, width: int, rng: np.random.Generator, *, r_min: float = 1.5,
                r_max: float = 96.0, textured: float = 0.3, coverage: float = 5.0,
                max_discs: int = 20000, supersample: int = 2) -> np.ndarray:
    """A dead-leaves picture, float32 HxWx3 RGB in [0, 1].

    ``r_min``/``r_max`` are disc radii in output pixels; ``textured`` is the share of discs that
    carry a texture; the disc count is ``coverage`` times the image area over the mean disc area
    (capped at ``max_discs``), so about exp(-coverage) of the background stays uncovered.
    """
    s = int(supersample)
    hs, ws = height * s, width * s
    n = int(min(max_discs, np.ceil(coverage * height * width / mean_disc_area(r_min, r_max))))
    radii = sample_radii(rng, n, r_min, r_max) * s
    cy = rng.random(n) * hs
    cx = rng.random(n) * ws
    labels = np.zeros((hs, ws), np.float32)  # 0 = background; disc i has label i + 1
    scale = 1 << _SHIFT
    for i in range(n):
        centre = (round(float(cx[i]) * scale), round(float(cy[i]) * scale))
        cv2.circle(labels, centre, round(float(radii[i]) * scale), float(i + 1), -1, cv2.LINE_8,
                   _SHIFT)
    lab = labels.astype(np.int32)

    # Per-label tables (row 0 is the background): base colour, second colour, texture.
    c1 = _colours(rng, n + 1)
    c2 = np.clip(c1 + rng.normal(0.0, 0.3, (n + 1, 3)), 0, 1)
    kind = np.where(rng.random(n + 1) < textured, rng.integers(1, 3, n + 1), 0)  # 1 sine, 2 noise
    kind[0] = 0
    period = np.exp(rng.uniform(np.log(3.0), np.log(40.0), n + 1)) * s
    theta = rng.uniform(0, np.pi, n + 1)
    phase = rng.uniform(0, 2 * np.pi, n + 1)
    band = rng.integers(0, len(NOISE_SIGMAS_PX), n + 1)
    noise = rng.standard_normal((len(NOISE_SIGMAS_PX), hs, ws)).astype(np.float32)

    out = c1[lab].astype(np.float32)
    tex = kind[lab]
    if (tex > 0).any():
        yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float32)
        w = 2 * np.pi / period[lab]
        sine = np.sin(w * (np.cos(theta[lab]) * xx + np.sin(theta[lab]) * yy) + phase[lab])
        fields = np.empty_like(noise)
        for j, sigma in enumerate(NOISE_SIGMAS_PX):
            f = cv2.GaussianBlur(noise[j], (0, 0), sigma * s)
            fields[j] = np.clip(f / max(float(f.std()), 1e-6) / 2.0, -1, 1)
        band_map = band[lab]
        grain = np.take_along_axis(fields, band_map[None], axis=0)[0]
        pattern = np.where(tex == 1, sine, grain)
        t = np.where(tex > 0, 0.5 + 0.5 * pattern, 0.0).astype(np.float32)[:, :, None]
        out = out + (c2[lab].astype(np.float32) - out) * t
    if s > 1:
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
    return np.clip(out, 0, 1).astype(np.float32)
