"""The Patch Blur Annotator (MBSD Eq. 1-3), pinned: definition, fast path, storage, pictures."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import data, img_as_float32
from skimage.metrics import structural_similarity

from deblurbench.annotate.pba import (
    LEVEL_NAMES,
    PBAParams,
    annotate,
    blur_levels,
    blur_scores,
    grid_shape,
    load_npz,
    naive_blur_scores,
    naive_laplacian_pair,
    pixel_levels,
    save_npz,
    summarize_levels,
)
from deblurbench.annotate.pba_plot import LEVEL_COLOURS, overlay_png
from deblurbench.annotate.pba_sweep import SIGMAS, score_curve
from deblurbench.config import from_dict

SMALL = PBAParams(patch_sizes=(16, 32, 64, 128))  # the definition at sizes that fit tiny images
SSIM_KW = {"data_range": 1.0, "gaussian_weights": True, "sigma": 1.5,
           "use_sample_covariance": False}


def grey(a: np.ndarray) -> np.ndarray:
    """Grey RGB float32 from a 2-D array in [0, 1] (luma equals the grey value)."""
    return np.repeat(np.asarray(a, dtype=np.float32)[..., None], 3, axis=2)


def checkerboard(size: int = 128, square: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy // square + xx // square) % 2).astype(np.float32)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return img_as_float32(data.astronaut())


def assert_matches_reference(image: np.ndarray, params: PBAParams) -> None:
    result = annotate(image, params)
    for size, fast in zip(params.patch_sizes, result.scores):
        reference = naive_blur_scores(image, size, params)
        assert fast.shape == reference.shape == grid_shape(*image.shape[:2], size)
        np.testing.assert_allclose(fast, reference, atol=1e-4, rtol=0)


# --- parameters -------------------------------------------------------------------------------


def test_defaults_are_the_papers_numbers():
    p = PBAParams()
    assert p.reblur_sigma == 3.6 and p.reblur_radius == 11
    assert p.patch_sizes == (64, 128, 256, 512)
    assert p.thresholds == (0.25, 0.35, 0.75)
    assert p.luma_weights == (0.299, 0.587, 0.114)
    assert (p.ssim_pad, p.ssim_window) == (5, 11)  # skimage: int(3.5 * 1.5 + 0.5)


def test_params_load_from_yaml_lists_as_a_frozen_dataclass():
    p = from_dict(PBAParams, {"patch_sizes": [32, 64], "thresholds": [0.2, 0.3, 0.7],
                              "border": "mirror"}, "params.yaml:pba")
    assert p == PBAParams(patch_sizes=(32, 64), thresholds=(0.2, 0.3, 0.7), border="mirror")
    hash(p)


@pytest.mark.parametrize("bad", [{"thresholds": (0.5, 0.3, 0.7)}, {"patch_sizes": (8, 64)},
                                 {"border": "wrap"}, {"laplacian": ((0.0, 1.0), (1.0, 0.0))}])
def test_params_refuse_an_inconsistent_definition(bad):
    with pytest.raises(ValueError):
        PBAParams(**bad)


# --- the definition ---------------------------------------------------------------------------


def test_flat_image_scores_exactly_one_severe():
    # Both Laplacians are 0, so SSIM = (C1 * C2) / (C1 * C2) = 1: no detail left to lose.
    flat = np.full((100, 140, 3), 0.37, dtype=np.float32)
    assert np.all(naive_blur_scores(flat, 64) == 1.0)
    result = annotate(flat)
    np.testing.assert_allclose(result.scores[0], 1.0, atol=1e-6)
    assert all(np.all(lab == 3) for lab in result.labels)


def test_checkerboard_score_rises_with_blur_and_levels_move_to_severe():
    sigmas = [0, 1, 1.5, 2, 2.5, 3, 4, 6]
    scores, levels = [], []
    for s in sigmas:
        img = checkerboard() if s == 0 else cv2.GaussianBlur(checkerboard(), (0, 0), s)
        grid = blur_scores(grey(img), 64)
        scores.append(float(grid.mean()))
        levels.append(int(np.max(blur_levels(grid))))
    assert np.all(np.diff(scores) > 0)
    assert scores[0] < 0.05 and scores[-1] > 0.95
    assert levels == [0, 0, 0, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("scores, levels", [
    ([0.0, 0.2499, 0.25, 0.3499, 0.35, 0.7499, 0.75, 1.0], [0, 0, 1, 1, 2, 2, 3, 3]),
])
def test_levels_follow_eq3_thresholds(scores, levels):
    out = blur_levels(np.array(scores))
    assert out.dtype == np.uint8 and out.tolist() == levels


def test_refuses_images_that_are_not_float_rgb_in_unit_range():
    with pytest.raises(ValueError, match="HxWx3"):
        annotate(np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        annotate(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        annotate(np.full((32, 32, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="11-px SSIM window"):
        annotate(np.zeros((10, 40, 3), np.float32))


# --- one whole-image SSIM map serves every patch ------------------------------------------------


def test_patch_score_is_the_whole_image_ssim_map_mean_over_its_interior(astronaut):
    lap_r, lap = naive_laplacian_pair(astronaut[:200, :300])
    _, whole = structural_similarity(lap_r, lap, full=True, **SSIM_KW)
    r0, c0, s, pad = 64, 128, 64, 5
    per_crop = structural_similarity(lap_r[r0:r0 + s, c0:c0 + s], lap[r0:r0 + s, c0:c0 + s],
                                     **SSIM_KW)
    interior = whole[r0 + pad:r0 + s - pad, c0 + pad:c0 + s - pad].mean()
    assert abs(per_crop - interior) < 1e-12
    # The interior is what makes it exact: the full patch area gives another number.
    assert abs(per_crop - whole[r0:r0 + s, c0:c0 + s].mean()) > 1e-4


def test_matches_per_patch_reference_on_random_image_at_every_scale():
    rng = np.random.default_rng(0)
    assert_matches_reference(rng.random((150, 230, 3), dtype=np.float32), SMALL)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_matches_per_patch_reference_on_photos_at_every_scale(name):
    assert_matches_reference(img_as_float32(getattr(data, name)()), PBAParams())


def test_matches_reference_on_blurred_photo_with_small_patches(astronaut):
    blurred = cv2.GaussianBlur(astronaut[:300, :420], (0, 0), 2.0)
    assert_matches_reference(blurred, SMALL)


def test_border_is_scipy_reflect_which_is_opencv_border_reflect(astronaut):
    rng = np.random.default_rng(2)
    x, k = rng.random((7, 9), dtype=np.float32), rng.random((5, 5), dtype=np.float32)
    scipy_reflect = ndimage.correlate(x, k, mode="reflect")
    np.testing.assert_allclose(cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT),
                               scipy_reflect, atol=1e-6)
    # OpenCV's default border (REFLECT_101) is scipy's "mirror", not "reflect".
    np.testing.assert_allclose(cv2.filter2D(x, -1, k), ndimage.correlate(x, k, mode="mirror"),
                               atol=1e-6)
    assert np.abs(cv2.filter2D(x, -1, k) - scipy_reflect).max() > 0.01
    # The choice is visible in edge patches: the two modes disagree beyond the 1e-4 tolerance.
    for mode in ("reflect", "mirror"):
        assert_matches_reference(astronaut[:256, :256], PBAParams(border=mode, patch_sizes=(64,)))
    other = blur_scores(astronaut, 64, PBAParams(border="mirror"))
    assert np.abs(other - naive_blur_scores(astronaut, 64)).max() > 1e-4


def test_annotate_shares_one_map_yet_equals_each_scale_alone(astronaut):
    result = annotate(astronaut)
    assert result.patch_sizes == (64, 128, 256, 512) and result.image_size == (512, 512)
    assert [g.shape for g in result.scores] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    for size, scores, labels in zip(result.patch_sizes, result.scores, result.labels):
        np.testing.assert_array_equal(scores, blur_scores(astronaut, size))
        np.testing.assert_array_equal(labels, blur_levels(scores))
        assert scores.dtype == np.float32 and labels.dtype == np.uint8


# --- pixel maps, remainders, images smaller than a patch ---------------------------------------


def test_remainder_pixels_take_the_nearest_patch_level():
    grid = np.array([[0, 1], [2, 3]], np.uint8)
    out = pixel_levels(grid, 4, 10, 9)  # 2 remainder rows, 1 remainder column
    expected = np.zeros((10, 9), np.uint8)
    expected[:4, 4:], expected[4:, :4], expected[4:, 4:] = 1, 2, 3
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_pixel_map_refuses_a_grid_of_another_image():
    with pytest.raises(ValueError, match="expected"):
        pixel_levels(np.zeros((2, 2), np.uint8), 4, 13, 9)


def test_scale_larger_than_the_image_scores_the_whole_image_as_one_patch():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.random((70, 300, 3), dtype=np.float32), (0, 0), 1.0)
    result = annotate(image)
    assert [g.shape for g in result.scores] == [(1, 4), (1, 1), (1, 1), (1, 1)]
    lap_r, lap = naive_laplacian_pair(image)
    whole = structural_similarity(lap_r, lap, **SSIM_KW)
    for scores in result.scores[1:]:
        assert abs(float(scores[0, 0]) - whole) < 1e-4
    maps = result.pixel_maps()
    assert all(m.shape == (70, 300) for m in maps)
    assert np.all(maps[3] == result.labels[3][0, 0])
    assert_matches_reference(image, PBAParams())


# --- storage and summaries --------------------------------------------------------------------


def test_npz_has_exact_keys_dtypes_and_round_trips(tmp_path, astronaut):
    result = annotate(astronaut[:200, :330], SMALL)
    path = tmp_path / "sub" / "astro.npz"
    save_npz(result, path)
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {f"{k}_{i}" for k in ("score", "label") for i in range(1, 5)} \
            | {"patch_sizes", "image_size", "params"}
        assert all(npz[f"score_{i}"].dtype == np.float32 for i in range(1, 5))
        assert all(npz[f"label_{i}"].dtype == np.uint8 for i in range(1, 5))
        assert npz["patch_sizes"].tolist() == [16, 32, 64, 128]
        assert npz["image_size"].tolist() == [200, 330]
        assert json.loads(str(npz["params"]))["patch_sizes"] == [16, 32, 64, 128]
    loaded = load_npz(path)
    assert loaded.params == SMALL and loaded.image_size == (200, 330)
    for a, b in zip(loaded.scores + loaded.labels, result.scores + result.labels):
        np.testing.assert_array_equal(a, b)
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary left behind


def test_load_npz_names_the_file_when_a_key_is_missing(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(1))
    with pytest.raises(ValueError, match="other.npz"):
        load_npz(path)


def test_summary_gives_each_level_its_share_of_pixels():
    a = np.array([[0, 0, 1, 3]], np.uint8)
    b = np.array([[3, 3, 3, 2]], np.uint8)
    assert summarize_levels(a) == {"slight": 0.5, "mild": 0.25, "moderate": 0.0, "severe": 0.25}
    pooled = summarize_levels([a, b])
    assert list(pooled) == list(LEVEL_NAMES)
    assert pooled == {"slight": 0.25, "mild": 0.125, "moderate": 0.125, "severe": 0.5}


# --- pictures and the Fig. 9 validation -------------------------------------------------------


def test_overlay_paints_blue_green_yellow_red_over_a_dimmed_image():
    levels = np.array([[0, 1, 2, 3]], np.uint8)
    on_black = overlay_png(np.zeros((1, 4, 3), np.float32), levels)
    np.testing.assert_allclose(on_black[0], 0.5 * np.array(
        [[0, 0, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0]]))
    on_white = overlay_png(np.ones((1, 4, 3), np.float32), levels)
    np.testing.assert_allclose(on_white[0], 0.25 + 0.5 * LEVEL_COLOURS)
    assert on_white.dtype == np.float32 and on_white.max() <= 1.0
    with pytest.raises(ValueError):
        overlay_png(np.zeros((2, 4, 3), np.float32), levels)


def test_blur_score_rises_monotonically_with_gaussian_sigma_on_a_photo(astronaut):
    curve = score_curve(astronaut, "sigma", SIGMAS)
    assert np.all(np.diff(curve) > 0)
    assert curve[0] < 0.45 and curve[-1] > 0.99
