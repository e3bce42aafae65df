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
    lab = regions.label_map("nosuch", "test", "x", img, regions.config_from(None))
    assert lab.shape == (256, 256) and lab.dtype == np.uint8 and lab.max() <= 3
    assert lab[:, :128].mean() > lab[:, 128:].mean()


def _half_blurred(seed=3):
    rng = np.random.default_rng(seed)
    img = rng.random((256, 256, 3)).astype(np.float32)
    img[:, :128] = cv2.GaussianBlur(img, (0, 0), 6)[:, :128]
    return img


def test_regions_follow_params_pixel_map_patch_and_record_it(project):
    img = _half_blurred()
    fine = regions.config_from({"pixel_map_patch": 64})
    coarse = regions.config_from({"pixel_map_patch": 128})
    lab64 = regions.label_map("nosuch", "test", "x", img, fine)
    lab128 = regions.label_map("nosuch", "test", "x", img, coarse)
    # 128 px patches: the map is constant on each 128 px block, which 64 px maps need not be
    for by in (0, 128):
        for bx in (0, 128):
            assert len(np.unique(lab128[by:by + 128, bx:bx + 128])) == 1
    assert "64 px patches" in fine.source and "128 px patches" in coarse.source
    assert fine.source != coarse.source and lab64.shape == lab128.shape


def test_a_stored_annotation_is_read_only_when_made_with_the_same_settings(project):
    from deblurbench.annotate.run import annotate_target
    from deblurbench.io import write_png

    img = _half_blurred()
    write_png(project / "x.png", img, bits=16)
    out = project / "annotate/pba/nosuch"
    annotate_target(str(project / "x.png"), out, "blurry", {"pixel_map_patch": 64})
    stored = out / "x_levels.png"
    assert stored.is_file()
    fine = regions.config_from({"pixel_map_patch": 64})
    assert regions.stored_path("nosuch", "test", "x", fine) == stored
    # Tamper with the stored map: the scorer must read it (not recompute) when settings match,
    # and must ignore it when the settings differ.
    from deblurbench.annotate.run import write_levels_png
    write_levels_png(stored, np.full((256, 256), 3, np.uint8))
    assert (regions.label_map("nosuch", "test", "x", img, fine) == 3).all()
    other = regions.config_from({"pixel_map_patch": 64, "thresholds": [0.2, 0.35, 0.75]})
    assert regions.stored_path("nosuch", "test", "x", other) is None
    assert not (regions.label_map("nosuch", "test", "x", img, other) == 3).all()
