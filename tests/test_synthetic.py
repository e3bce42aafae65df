"""The embedded synthetic-defocus data set: physics, determinism, splits, content, statistics."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from deblurbench.config import SynthParams
from deblurbench.datasets.dead_leaves import dead_leaves, mean_disc_area, sample_radii
from deblurbench.datasets.synthetic import (
    SPLITS,
    STATS_BINS_PX,
    blur_stats,
    coc_radius_px,
    disk_kernel,
    layer_radii,
    load_photo,
    make_synthetic_defocus,
    render_layers,
    scene_blur,
    scene_sharp,
    scene_size,
    scenes,
    stratified,
)
from deblurbench.io import read_image_with_info

TINY = SynthParams(seed=3, photos=["astronaut"], extra_photos=["camera"], scenes_per_photo=2,
                   dead_leaves=1, val_photos=["chelsea"], val_scenes_per_photo=1,
                   val_dead_leaves=1, test_photos=["coffee"], test_scenes_per_photo=2,
                   max_side=96)
TINY_IDS = {"train": {"astronaut-00", "astronaut-01", "camera-00", "camera-01",
                      "deadleaves-0000"},
            "val": {"chelsea-00", "deadleaves-val-0000"}, "test": {"coffee-00", "coffee-01"}}


def digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def blur_map_of(sc, p: SynthParams) -> np.ndarray:
    """The blur map the renderer would write for scene ``sc``, without rendering the image."""
    depth, _, radius = scene_blur(sc, *scene_size(sc, p), p)
    layer, radii = layer_radii(depth, radius, p.n_layers)
    return np.asarray(radii, np.float32)[layer]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    make_synthetic_defocus(tmp_path / "a", TINY)
    make_synthetic_defocus(tmp_path / "b", TINY)
    make_synthetic_defocus(tmp_path / "c", replace(TINY, seed=4))
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    n = sum(len(ids) for ids in TINY_IDS.values())
    assert len(a) == n * 3 + 2  # scenes x (sharp, blurry, blur map) + scenes.json + stats.json
    assert a == b
    assert a["test/blurry/coffee-00.png"] != c["test/blurry/coffee-00.png"]
    assert a["test/sharp/coffee-00.png"] == c["test/sharp/coffee-00.png"]  # same photo
    # Ids are stable: a scene added elsewhere leaves this scene's bytes alone.
    make_synthetic_defocus(tmp_path / "d", replace(TINY, dead_leaves=2))
    d = digest(tmp_path / "d")
    assert d["train/sharp/deadleaves-0000.png"] == a["train/sharp/deadleaves-0000.png"]
    assert "train/sharp/deadleaves-0001.png" in d


def test_three_splits_disjoint_by_photo_and_16_bit_png(tmp_path):
    recs = make_synthetic_defocus(tmp_path, TINY)
    ids = {s: {r["image_id"] for r in recs if r["split"] == s} for s in SPLITS}
    assert ids == TINY_IDS
    sources = {s: {r["source"] for r in recs if r["split"] == s} for s in SPLITS}
    assert sources == {"train": {"astronaut", "camera", "dead-leaves"},
                       "val": {"chelsea", "dead-leaves"}, "test": {"coffee"}}
    img, info = read_image_with_info(tmp_path / "val/blurry/chelsea-00.png")
    assert info.bit_depth == 16 and max(img.shape[:2]) == 96 and img.shape[2] == 3
    with pytest.raises(ValueError, match="in both the train and test splits"):
        scenes(replace(TINY, test_photos=["astronaut"]))
    with pytest.raises(ValueError, match="in both the val and test splits"):
        scenes(replace(TINY, test_photos=["cat"]))  # skimage's cat is chelsea
    with pytest.raises(ValueError, match=r"'motorcycle_right' \(motorcycle\).*train and val"):
        scenes(replace(TINY, extra_photos=["motorcycle_left"], val_photos=["motorcycle_right"]))
    with pytest.raises(ValueError, match="the val split has no scenes"):
        scenes(replace(TINY, val_photos=[], val_dead_leaves=0))


def test_the_default_params_have_a_val_split_and_a_larger_test_split():
    by_split = {s: [sc for sc in scenes(SynthParams()) if sc.split == s] for s in SPLITS}
    counts = {s: len(v) for s, v in by_split.items()}
    assert counts == {"train": 17 * 4 + 160, "val": 12, "test": 16}
    photos = {s: {sc.source for sc in v} - {"dead-leaves"} for s, v in by_split.items()}
    assert photos["val"] == {"motorcycle_left", "camera"}
    assert photos["test"] == {"coffee", "rocket"}
    assert not photos["train"] & (photos["val"] | photos["test"])
    assert len({sc.image_id for v in by_split.values() for sc in v}) == sum(counts.values())


def test_stratified_puts_one_value_in_each_stratum():
    v = stratified(np.random.default_rng(0), 10, 1.0, 4.0)
    strata = np.floor((v - 1.0) / 0.3).astype(int)
    assert sorted(strata) == list(range(10))
    assert not np.all(np.diff(v) > 0)  # shuffled: the order of scenes does not set the blur


def test_stratified_blur_gives_the_three_splits_close_mean_radius():
    """Default camera, blur range and size; fewer train scenes to keep the test fast."""
    p = replace(SynthParams(), extra_photos=["coins", "grass"], scenes_per_photo=2,
                dead_leaves=8)
    maps: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    misses = 0
    for sc in scenes(p):
        m = blur_map_of(sc, p)
        maps[sc.split].append(m)
        misses += abs(float(m.mean()) - sc.target_mean_radius_px) > 1.0
    assert misses <= 0.15 * sum(len(m) for m in maps.values())  # the focus search hits
    means = {s: blur_stats(m)["mean_radius_px"] for s, m in maps.items()}
    assert max(means.values()) < 1.25 * min(means.values()), means
    lo, hi = p.scene_mean_radius_px
    assert all(lo < v < hi for v in means.values()), means
    for s in SPLITS:  # every split covers the whole range of blur
        per_scene = [float(m.mean()) for m in maps[s]]
        assert min(per_scene) < lo + 0.6 and max(per_scene) > hi - 0.9, (s, per_scene)


def test_blur_in_pixels_does_not_depend_on_the_picture_width():
    """The pitch comes from max_side: portrait, landscape and square pictures of one scene get
    the same focus and about the same blur (the old pitch, sensor width / picture width, gave
    a 128 px wide picture twice the pitch, so half the radius)."""
    p = SynthParams()
    sc = scenes(p)[0]
    got = [scene_blur(sc, h, w, p) for h, w in ((256, 256), (256, 128), (170, 256))]
    for depth, focus, radius in got:
        assert focus == pytest.approx(got[0][1], rel=0.1)
        assert float(radius.mean()) == pytest.approx(sc.target_mean_radius_px, abs=0.5)
        assert np.array_equal(radius, coc_radius_px(depth, focus, p.max_side, p))


def test_blur_stats_on_a_hand_made_case():
    maps = [np.full((2, 2), 0.2), np.array([[0.7, 1.5], [5.0, 9.0]])]
    st = blur_stats(maps)
    assert st["images"] == 2 and st["pixels"] == 8
    assert st["mean_radius_px"] == pytest.approx(17.0 / 8, abs=1e-4)
    assert st["share_under_1px"] == pytest.approx(5 / 8, abs=1e-4)
    assert st["bins_px"] == list(STATS_BINS_PX)
    assert st["histogram"] == [0.5, 0.125, 0.125, 0.0, 0.0, 0.125, 0.125]  # 9 px in the last bin


def test_stats_json_matches_the_written_blur_maps(tmp_path):
    p = replace(TINY, max_side=48)
    make_synthetic_defocus(tmp_path, p)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert list(stats) == list(SPLITS)
    for s in SPLITS:
        maps = [np.load(f) for f in sorted((tmp_path / s / "blur_map").glob("*.npy"))]
        assert stats[s] == blur_stats(maps)
        assert stats[s]["images"] == len(TINY_IDS[s])
        assert sum(stats[s]["histogram"]) == pytest.approx(1.0, abs=1e-3)
    listed = json.loads((tmp_path / "scenes.json").read_text())["scenes"]
    assert {r["image_id"] for r in listed} == set().union(*TINY_IDS.values())


def test_grey_photos_become_tinted_rgb():
    grey = load_photo("camera", 64)
    assert grey.ndim == 2
    sc = next(s for s in scenes(TINY) if s.source == "camera")
    rgb = scene_sharp(sc, TINY)
    assert rgb.shape == (*load_photo("camera", TINY.max_side).shape, 3)
    assert rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 1
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 0.01  # tinted, not grey
    g = load_photo("camera", TINY.max_side)
    assert np.corrcoef(rgb.mean(2).ravel(), g.ravel())[0, 1] > 0.9  # same picture
    assert load_photo("logo", 64).shape[2] == 3  # RGBA is composited to RGB
    assert scene_sharp(sc, TINY).tobytes() == rgb.tobytes()  # the tint is the scene's own


def test_dead_leaves_are_deterministic_and_textured():
    a = dead_leaves(64, 80, np.random.default_rng(5))
    b = dead_leaves(64, 80, np.random.default_rng(5))
    c = dead_leaves(64, 80, np.random.default_rng(6))
    assert a.shape == (64, 80, 3) and a.dtype == np.float32
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert 0 <= a.min() and a.max() <= 1 and a.std() > 0.1
    flat = dead_leaves(64, 80, np.random.default_rng(5), textured=0.0, supersample=1)
    assert len(np.unique(flat.reshape(-1, 3), axis=0)) > 50  # many discs, flat colours
    lap = [float(np.abs(cv2.Laplacian(x.mean(2), cv2.CV_32F)).mean()) for x in (flat, a)]
    assert lap[1] > 0  # textured discs add detail


def test_dead_leaves_radii_follow_the_inverse_cube_law():
    r_min, r_max = 2.0, 64.0
    r = sample_radii(np.random.default_rng(0), 50000, r_min, r_max)
    assert r.min() >= r_min and r.max() <= r_max

    def tail(x: float) -> float:  # P(r > x) for p(r) ~ r^-3 on [r_min, r_max]
        return (x**-2 - r_max**-2) / (r_min**-2 - r_max**-2)

    for x in (3.0, 4.0, 8.0, 20.0):
        assert np.mean(r > x) == pytest.approx(tail(x), abs=0.01)
    assert np.mean(r < 2 * r_min) > 0.7 and np.mean(r > 16 * r_min) < 0.005  # many small, few large
    assert mean_disc_area(r_min, r_max) == pytest.approx(float(np.mean(np.pi * r**2)), rel=0.05)


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
    p = replace(TINY, photos=["astronaut", "chelsea"], val_photos=["camera"], extra_photos=[],
                test_photos=["rocket", "coffee"], scenes_per_photo=3, max_side=160)
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
    assert all(a > b for a, b in itertools.pairwise(means)), means
    assert means[0] > 0.5 and means[-1] < 0.2
