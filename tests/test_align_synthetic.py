"""Alignment on a synthesised misalignment with known truth: zoom + shift + a small smooth local
warp of a real photo, then defocus blur. Tolerances are stated in each assertion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from deblurbench.datasets.align import AlignParams, align_pair, calibration_mask

SCALE, SHIFT, LOCAL_AMP = 1.03, (4.0, -2.5), 0.8


def _psnr(a, b, m):
    return 10 * np.log10(1 / np.mean((a[m] - b[m]) ** 2))


@pytest.fixture(scope="module")
def case():
    sharp = data.astronaut()[::2, ::2].astype(np.float32) / 255  # 256x256 real photo
    h, w = sharp.shape[:2]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    dx = LOCAL_AMP * np.sin(2 * np.pi * ys / h)
    dy = LOCAL_AMP * np.cos(2 * np.pi * xs / w)
    # Truth: blurry pixel x shows sharp at T(x) = c + s (x - c) + t + d(x).
    tx = cx + SCALE * (xs - cx) + SHIFT[0] + dx
    ty = cy + SCALE * (ys - cy) + SHIFT[1] + dy
    gt = cv2.remap(sharp, tx.astype(np.float32), ty.astype(np.float32), cv2.INTER_CUBIC,
                   borderMode=cv2.BORDER_REFLECT)
    blurry = cv2.GaussianBlur(gt, (0, 0), 2.0)
    return sharp, blurry, gt, tx, ty, np.hypot(dx, dy)


def test_recovers_zoom_and_shift_and_psnr_against_aligned_truth_rises(case):
    sharp, blurry, gt, tx, ty, local = case
    res = align_pair(blurry, sharp, AlignParams(mask_tile=64))
    st = res.stats
    assert st["global_method"] == "ecc"
    assert abs(st["scale"] - SCALE) < 0.003  # stated tolerance: 0.3 % of scale
    assert abs(st["shift_x"] - SHIFT[0]) < 0.3 and abs(st["shift_y"] - SHIFT[1]) < 0.3  # px
    assert abs(st["rotation_deg"]) < 0.2
    # Residual flow statistics within 0.25 px of the true local warp's.
    assert abs(st["flow_mean"] - local.mean()) < 0.25
    assert abs(st["flow_p95"] - np.percentile(local, 95)) < 0.4
    # The composed map (global then residual) is within 0.5 px of the truth on average.
    h, w = blurry.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    m = res.matrix
    ex = m[0, 0] * (xs + res.residual[..., 0]) + m[0, 1] * (ys + res.residual[..., 1]) + m[0, 2]
    ey = m[1, 0] * (xs + res.residual[..., 0]) + m[1, 1] * (ys + res.residual[..., 1]) + m[1, 2]
    err = np.hypot(ex - tx, ey - ty)
    inner = np.zeros_like(res.mask)
    inner[16:-16, 16:-16] = True
    assert np.mean(err[inner]) < 0.5
    # PSNR against the true aligned ground truth: 13 dB unaligned -> over 30 dB aligned.
    everywhere = np.ones_like(res.mask)
    before = _psnr(gt, sharp, everywhere)
    after = _psnr(gt, res.aligned, res.mask)
    assert before < 15 and after > 30 and after - before > 15
    assert st["psnr_after"] > st["psnr_before"] + 5  # against the blurry image itself
    # The residual flow stage is worth it: the global transform alone leaves the local warp.
    glob = align_pair(blurry, sharp, AlignParams(mask_tile=64, flow="none"))
    assert after > _psnr(gt, glob.aligned, glob.mask) + 5


def test_farneback_and_homography_also_recover_the_transform(case):
    sharp, blurry, *_ = case
    st = align_pair(blurry, sharp, AlignParams(flow="farneback", model="homography")).stats
    assert abs(st["scale"] - SCALE) < 0.005
    assert abs(st["shift_x"] - SHIFT[0]) < 0.4 and abs(st["shift_y"] - SHIFT[1]) < 0.4


def test_aligned_pair_needs_nothing(case):
    sharp, *_ = case
    blurry = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    st = align_pair(blurry, sharp).stats
    assert abs(st["scale"] - 1) < 0.002 and abs(st["shift_x"]) < 0.1 and abs(st["shift_y"]) < 0.1
    assert st["flow_mean"] < 0.35  # the noise floor of flow between blurred and sharp


def test_calibration_mask_is_eq_13_with_lambda_035():
    mag = np.full((8, 8), 2.0)
    mag[0, 0] = 3.0   # 3 / mean(2.02) = 1.49: outside 1.35
    mag[0, 1] = 2.6   # 1.29: inside
    mag[1, 0] = 1.2   # 0.59: below 0.65
    mag[1, 1] = 1.4   # 0.69: inside
    mask = calibration_mask(mag, lam=0.35)
    mean = mag.mean()
    expected = ((1 - 0.35) * mean < mag) & (mag < (1 + 0.35) * mean)
    assert np.array_equal(mask, expected)
    assert not mask[0, 0] and mask[0, 1] and not mask[1, 0] and mask[1, 1]
    assert mask.sum() == 62
    # Per tile, each tile uses its own mean; invalid pixels are masked and ignored in means.
    two = np.concatenate([np.full((4, 4), 10.0), np.full((4, 4), 30.0)], axis=1)
    assert calibration_mask(two, tile=4).all() and not calibration_mask(two).any()
    valid = np.ones((4, 8), bool)
    valid[:, :2] = False
    got = calibration_mask(two, tile=4, valid=valid)
    assert not got[:, :2].any() and got[:, 2:].all()
    # A tile whose mean is below min_flow keeps only the upper bound.
    small = np.array([[0.0, 0.1, 2.0]])
    assert calibration_mask(small, min_flow=1.0).tolist() == [[True, True, False]]
