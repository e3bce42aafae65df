"""The synthetic misaligned set: sharp targets moved by a known zoom and shift, the truth kept
so that aligned-reference scoring has an exact ground truth."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, cli

from deblurbench.datasets.misalign import source_map, warp
from deblurbench.io import read_image


def test_an_integer_shift_moves_the_image_by_exactly_that_shift():
    img = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    out, outside = warp(img, {"zoom": 1.0, "dx": 3.0, "dy": -2.0})
    # out(x, y) = img(x + 3, y - 2)
    np.testing.assert_allclose(out[2:, :-3], img[:-2, 3:], atol=1e-5)
    assert outside == pytest.approx(1 - (38 * 47) / (40 * 50))


def test_the_zoom_is_about_the_image_centre():
    m = source_map({"zoom": 1.1, "dx": 0.0, "dy": 0.0}, 21, 31)
    centre = m @ np.array([15.0, 10.0, 1.0])
    corner = m @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(centre, [15.0, 10.0])
    np.testing.assert_allclose(corner, [15 - 1.1 * 15, 10 - 1.1 * 10])


@pytest.fixture(scope="module")
def misaligned(tmp_path_factory):
    from methods_kit import build_project

    proj = build_project(tmp_path_factory.mktemp("misalign"))
    shutil.copy(REPO / "datasets" / "synthetic-misaligned.yaml", proj / "datasets")
    cli("synth", "misalign", "--from", "synthetic-defocus", "--out", "synthetic-misaligned",
        cwd=proj)
    cli("datasets", "prepare", "synthetic-misaligned", cwd=proj)
    cli("datasets", "align", "synthetic-misaligned", cwd=proj)
    return proj


def test_sharp_targets_move_by_the_stored_transform_and_blurry_images_do_not(misaligned):
    raw = misaligned / "datasets/synthetic-misaligned/raw"
    src = misaligned / "datasets/synthetic-defocus/raw"
    truth = json.loads((raw / "alignment.json").read_text())
    assert len(truth["pairs"]) == len(list(src.glob("*/sharp/*.png")))
    for t in truth["pairs"]:
        split, i = t["split"], t["image_id"]
        assert abs(t["zoom"] - 1) <= 0.03 and max(abs(t["dx"]), abs(t["dy"])) <= 4.0
        original = read_image(src / split / "sharp" / f"{i}.png")
        expected, _ = warp(original, t)
        np.testing.assert_allclose(read_image(raw / split / "sharp" / f"{i}.png"), expected,
                                   atol=1 / 65535)
        np.testing.assert_array_equal(read_image(raw / split / "blurry" / f"{i}.png"),
                                      read_image(src / split / "blurry" / f"{i}.png"))
        assert not np.allclose(expected, original, atol=1e-3)  # really moved


def test_the_aligned_variant_is_the_exact_original_with_every_pixel_valid(misaligned,
                                                                          monkeypatch):
    from deblurbench.datasets.manifest import load_manifest

    src = misaligned / "datasets/synthetic-defocus/raw"
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(misaligned))
    rows = load_manifest("synthetic-misaligned", "test", variant="aligned")
    assert len(rows) > 0
    for r in rows.itertuples():
        np.testing.assert_array_equal(read_image(r.sharp),
                                      read_image(src / "test" / "sharp" / f"{r.image_id}.png"))
        assert read_image(r.mask).min() == 1.0
    root = misaligned / "datasets/synthetic-misaligned"
    stats = pd.read_parquet(root / "variants/aligned/stats.parquet")
    # the estimated alignment (ECC + DIS) lands close to the truth on these 64 px images
    assert (stats["truth"] == "known (synthetic misalignment)").all()
    assert stats["estimate_psnr_vs_truth"].median() > 30


def test_misalign_without_a_source_says_what_it_needs(misaligned):
    out = cli("synth", "misalign", "--out", "x", cwd=misaligned, check=False)
    assert out.returncode != 0 and "--from" in out.stderr
