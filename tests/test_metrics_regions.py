"""Region-stratified scores: only the corrupted blur level moves; PBA label maps of the input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deblurbench.metrics import regions
from deblurbench.metrics.spec import get_metric


def quadrant_labels(h=128, w=128):
    lab = np.zeros((h, w), np.uint8)
    lab[:h // 2, w // 2:] = 1
    lab[h // 2:, :w // 2] = 2
    lab[h // 2:, w // 2:] = 3  # severe
    return lab


@pytest.mark.parametrize("protocol", ["defocus", "matlab"])
def test_corrupting_only_the_severe_region_moves_only_its_scores(protocol):
    rng = np.random.default_rng(0)
    sharp = cv2.GaussianBlur(rng.random((128, 128, 3)).astype(np.float32), (0, 0), 1)
    clean = np.clip(sharp + rng.normal(0, 0.01, sharp.shape), 0, 1).astype(np.float32)
    bad = clean.copy()
    bad[72:, 72:] = np.clip(bad[72:, 72:] + 0.2, 0, 1)  # inside severe, 8 px from its edges
    masks = regions.masks_from_labels(quadrant_labels())
    for name in ("psnr", "psnr_y", "mae", "ssim"):
        m = get_metric(name, protocol)
        before = m.region_fn(clean, sharp, masks)
        after = m.region_fn(bad, sharp, masks)
        assert set(before) == set(regions.LEVELS)
        for level in ("slight", "mild", "moderate"):
            assert after[level] == pytest.approx(before[level], abs=1e-12), (name, level)
        worse = after["severe"] < before["severe"] if m.spec.direction == "higher" else \
            after["severe"] > before["severe"]
        assert worse and abs(after["severe"] - before["severe"]) > 1e-3, name


def test_region_values_pool_back_to_the_image_value():
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 64, 80, 3)).astype(np.float32)
    lab = rng.integers(0, 4, (64, 80)).astype(np.uint8)
    masks = regions.masks_from_labels(lab)
    per = get_metric("mae").region_fn(b, a, masks)
    pooled = sum(per[k] * masks[k].sum() for k in per) / lab.size
    assert pooled == pytest.approx(get_metric("mae").fn(b, a), abs=1e-12)


def test_valid_mask_restricts_every_region():
    lab = quadrant_labels(32, 32)
    valid = np.zeros((32, 32), bool)
    valid[:, :8] = True
    masks = regions.masks_from_labels(lab, valid)
    assert masks["mild"].sum() == 0 and masks["slight"].sum() == 16 * 8


def test_label_map_on_the_fly_marks_the_blurred_half_as_more_blurred(project):
    pytest.importorskip("deblurbench.annotate.pba")
    rng = np.random.default_rng(2)
    img = rng.random((256, 256, 3)).astype(np.float32)
    img[:, :128] = cv2.GaussianBlur(img, (0, 0), 6)[:, :128]
    lab = regions.label_map("nosuch", "test", "x", img)
    assert lab.shape == (256, 256) and lab.dtype == np.uint8 and lab.max() <= 3
    assert lab[:, :128].mean() > lab[:, 128:].mean()
