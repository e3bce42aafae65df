"""The embedded synthetic-defocus data set: physics, determinism, and a blur map that tells the truth."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import cv2
import numpy as np
import pytest

from deblurbench.config import SynthParams
from deblurbench.datasets.synthetic import (
    coc_radius_px,
    disk_kernel,
    make_synthetic_defocus,
    render_layers,
    scenes,
)
from deblurbench.io import read_image_with_info

TINY = SynthParams(seed=3, photos=["astronaut"], test_photos=["coffee"], scenes_per_photo=2,
                   max_side=96)


def digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    make_synthetic_defocus(tmp_path / "a", TINY)
    make_synthetic_defocus(tmp_path / "b", TINY)
    make_synthetic_defocus(tmp_path / "c", replace(TINY, seed=4))
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert len(a) == 4 * 3 + 1  # 4 scenes x (sharp, blurry, blur map) + scenes.json
    assert a == b
    assert a["test/blurry/coffee-00.png"] != c["test/blurry/coffee-00.png"]
    assert a["test/sharp/coffee-00.png"] == c["test/sharp/coffee-00.png"]  # same photo


def test_splits_use_disjoint_photos_and_16_bit_png(tmp_path):
    recs = make_synthetic_defocus(tmp_path, TINY)
    assert {r["split"]: r["photo"] for r in recs} == {"train": "astronaut", "test": "coffee"}
    img, info = read_image_with_info(tmp_path / "train/blurry/astronaut-01.png")
    assert info.bit_depth == 16 and max(img.shape[:2]) == 96
    with pytest.raises(ValueError, match="both train and test"):
        scenes(replace(TINY, test_photos=["astronaut"]))


def test_thin_lens_radius_is_zero_at_focus_and_grows_away_from_it():
    p = SynthParams(max_radius_px=1e9)
    d = np.array([1.0, 2.0, 3.0, 6.0, 12.0], np.float32)
    r = coc_radius_px(d, 3.0, 256, p)
    assert r[2] == pytest.approx(0.0, abs=1e-6)
    assert r[0] > r[1] > 0 and r[4] > r[3] > 0
    # Closed form for d -> infinity: A f / (2 (S - f) pitch).
    f, a, pitch = 0.085, 0.085 / 1.4, 0.036 / 256
    far = coc_radius_px(np.array([1e9], np.float32), 3.0, 256, p)[0]
    assert far == pytest.approx(a * f / (3.0 - f) / pitch / 2, rel=1e-4)
    assert coc_radius_px(d, 3.0, 256, SynthParams(max_radius_px=2.0)).max() == 2.0


@pytest.mark.parametrize("radius", [0.2, 1.0, 2.5, 7.3])
def test_disk_kernel_sums_to_one_and_is_round(radius):
    k = disk_kernel(radius)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
    assert k.shape[0] == (1 if radius < 0.5 else 2 * int(np.ceil(radius)) + 1)


def test_rendering_a_flat_scene_equals_one_disk_convolution():
    rng = np.random.default_rng(0)
    sharp = rng.random((40, 50, 3), dtype=np.float32)
    depth = np.full((40, 50), 5.0, np.float32)
    radius = np.full((40, 50), 3.0, np.float32)
    out, used = render_layers(sharp, depth, radius, n_layers=4)
    ref = cv2.filter2D(sharp, -1, disk_kernel(3.0), borderType=cv2.BORDER_REFLECT)
    assert np.abs(out - ref).max() < 1e-5
    assert np.all(used == 3.0)


def test_true_blur_map_agrees_with_the_rendered_blur(tmp_path):
    """Where the map says more blur, the image lost more detail (gradient energy ratio falls)."""
    p = replace(TINY, photos=["astronaut", "chelsea"], test_photos=["rocket", "coffee"],
                scenes_per_photo=3, max_side=160)
    make_synthetic_defocus(tmp_path, p)
    bins = [(0, 0.75), (0.75, 2.0), (2.0, 4.0), (4.0, 99)]
    ratios: dict[int, list[float]] = {i: [] for i in range(len(bins))}
    for mp in sorted(tmp_path.glob("*/blur_map/*.npy")):
        split, _, name = mp.parts[-3], mp.parts[-2], mp.stem
        sharp = read_image_with_info(tmp_path / split / "sharp" / f"{name}.png")[0].mean(2)
        blurry = read_image_with_info(tmp_path / split / "blurry" / f"{name}.png")[0].mean(2)
        radius = np.load(mp)
        gs = cv2.Laplacian(sharp, cv2.CV_32F) ** 2
        gb = cv2.Laplacian(blurry, cv2.CV_32F) ** 2
        for i, (lo, hi) in enumerate(bins):
            m = (radius >= lo) & (radius < hi)
            if m.sum() > 200:
                ratios[i].append(float(gb[m].sum() / max(gs[m].sum(), 1e-12)))
    means = [np.mean(ratios[i]) for i in range(len(bins)) if ratios[i]]
    assert len(means) >= 3
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert means[0] > 0.5 and means[-1] < 0.2
