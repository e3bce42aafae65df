"""`synth target`: blurry-only scenes of the test photos, the offline stand-in for PixelDP.
No sharp image or blur map may leak into it, its scenes are new views (not copies of the
paired test split), and it shares no photo with training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deblurbench.config import SynthParams
from deblurbench.datasets.card import load_card
from deblurbench.datasets.synthetic import make_synthetic_defocus
from deblurbench.datasets.synthetic_target import make_synthetic_target, target_scenes
from deblurbench.io import read_image, read_image_with_info
from deblurbench.paths import datasets_dir

TINY = SynthParams(seed=3, photos=["astronaut"], extra_photos=[], scenes_per_photo=1,
                   dead_leaves=0, val_photos=["chelsea"], val_scenes_per_photo=1,
                   test_photos=["coffee"], test_scenes_per_photo=2, target_scenes_per_photo=3,
                   max_side=64)


def test_only_blurry_16_bit_images_are_written(tmp_path):
    recs = make_synthetic_target(tmp_path, TINY)
    assert [r["image_id"] for r in recs] == ["coffee-t00", "coffee-t01", "coffee-t02"]
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                   if p.is_file())
    assert files == ["scenes.json", "stats.json", "test/blurry/coffee-t00.png",
                     "test/blurry/coffee-t01.png", "test/blurry/coffee-t02.png"]
    _, info = read_image_with_info(tmp_path / "test/blurry/coffee-t00.png")
    assert info.bit_depth == 16


def test_target_scenes_are_other_views_of_the_test_photos_not_copies(tmp_path):
    make_synthetic_defocus(tmp_path / "paired", TINY)
    make_synthetic_target(tmp_path / "target", TINY)
    paired = [read_image(p) for p in sorted((tmp_path / "paired/test/blurry").glob("*.png"))]
    target = [read_image(p) for p in sorted((tmp_path / "target/test/blurry").glob("*.png"))]
    for t in target:
        assert all(np.abs(t - p).mean() > 1e-3 for p in paired)
    assert len({sc.seed for sc in target_scenes(TINY)}) == 3
    assert {sc.source for sc in target_scenes(TINY)} == {"coffee"}


def test_the_same_params_give_the_same_bytes(tmp_path):
    make_synthetic_target(tmp_path / "a", TINY)
    make_synthetic_target(tmp_path / "b", TINY)
    a = (tmp_path / "a/test/blurry/coffee-t01.png").read_bytes()
    assert a == (tmp_path / "b/test/blurry/coffee-t01.png").read_bytes()


def test_no_scene_is_refused_with_the_parameter_named():
    with pytest.raises(ValueError, match="target_scenes_per_photo must be at least 1"):
        target_scenes(replace(TINY, target_scenes_per_photo=0))


def test_the_card_says_there_is_no_ground_truth_and_one_test_split():
    card = load_card(datasets_dir() / "synthetic-target.yaml")
    assert card.has_gt is False and list(card.splits) == ["test"] and card.bit_depth == 16
