"""Data-quality report: perceptual hash, exposure / colour ratios, near duplicates, worst pairs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from realdata_kit import build_realdof, defocus, photo, write_card

from deblurbench.datasets.manifest import prepare
from deblurbench.quality_report import channel_ratio, hamming, near_duplicates, phash, report
from deblurbench.io import write_png


def test_phash_is_stable_under_small_changes_and_separates_different_photos():
    a = photo(0)
    assert phash(a) == phash(a.copy())
    assert hamming(phash(a), phash(np.clip(a * 1.1, 0, 1))) <= 4  # exposure change
    assert hamming(phash(a), phash(defocus(a, 1.0))) <= 6  # mild blur
    assert hamming(phash(a), phash(photo(1))) > 12
    dups = near_duplicates({"a": 0b1111, "b": 0b1110, "c": 0xFFFF0000}, threshold=2)
    assert dups == [("a", "b", 1)]


def test_channel_ratio_is_the_per_channel_mean_ratio_over_the_mask():
    blurry = np.full((4, 4, 3), 0.5, np.float32)
    sharp = blurry * np.array([1.2, 1.0, 0.8], np.float32)
    assert np.allclose(channel_ratio(sharp, blurry, None), [1.2, 1.0, 0.8])
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    sharp[1:, :] = 1.0  # outside the mask: ignored
    assert np.allclose(channel_ratio(sharp, blurry, mask), [1.2, 1.0, 0.8])


def test_report_finds_the_duplicate_the_exposure_shift_and_ranks_the_worst(project):
    raw = project / "datasets/realdof/raw"
    build_realdof(raw, 4)
    # Pair 0002 is brighter in the sharp image (+25 % red), pair 0003 duplicates pair 0000.
    tgt = raw / "RealDOF/target/0002.png"
    from deblurbench.io import read_image

    img = read_image(tgt)
    img[..., 0] = np.clip(img[..., 0] * 1.25, 0, 1)
    write_png(tgt, img, bits=8)
    for side in ("source", "target"):  # a pair shipped twice
        (raw / f"RealDOF/{side}/0003.png").write_bytes(
            (raw / f"RealDOF/{side}/0000.png").read_bytes())
    write_card(project, "realdof", {"test": 4}, None, None)
    prepare("realdof")
    md = report("realdof", top_k=2, pba=False)
    text = md.read_text()
    summary = json.loads((md.parent / "summary.json").read_text())
    assert summary["near_duplicates"] == [["test/0000", "test/0003", 0]]
    assert "Pairs within Hamming distance 6 of 64 bits: 1" in text
    worst = summary["worst"]["colour_cast"]
    assert worst[0]["image_id"] == "0002" and worst[0]["colour_cast"] > 1.15
    pairs = pd.read_csv(md.parent / "pairs.csv", dtype={"image_id": str})
    r = pairs.set_index("image_id")
    assert r.loc["0002", "ratio_R"] / r.loc["0002", "ratio_G"] > 1.15
    assert abs(r.loc["0000", "ratio_R"] - 1) < 0.05  # a defocused copy keeps its mean
    assert "Not aligned yet: run `deblurbench datasets align realdof`" in text
    assert (md.parent / "figures/exposure.png").stat().st_size > 1000
    assert (md.parent / "figures/worst_colour_cast.png").exists()


def test_pba_shares_use_the_params_settings_and_stored_maps_only_when_they_match(prepared):
    """The report's blur-level shares are those of the per-pixel map the scorer uses
    (params.yaml: pba, pixel_map_patch), from a stored annotation only if made with them."""
    from conftest import TINY_PARAMS, cli

    from deblurbench.annotate import pba
    from deblurbench.datasets.manifest import load_manifest
    from deblurbench.quality_report import measure
    from deblurbench.io import read_image

    section = TINY_PARAMS["pba"] | {"pixel_map_patch": 32}
    row = load_manifest("synthetic-defocus").iloc[0]
    blurry = read_image(row.blurry)
    params = pba.PBAParams(**{k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in section.items() if k != "pixel_map_patch"})
    grid = pba.blur_levels(pba.blur_scores(blurry, 32, params), params)
    want = pba.summarize_levels(pba.pixel_levels(grid, 32, *blurry.shape[:2]))

    m, notes = measure("synthetic-defocus", True, section)
    got = m.set_index("image_id").loc[row.image_id]
    assert notes["pba"] == ["computed"]
    for level, share in want.items():
        assert got[f"pba_{level}"] == share
    # annotations stored with other patch sizes are not used for a 32-px map...
    cli("annotate", "pba", "synthetic-defocus", "--out", "annotate/pba/synthetic-defocus",
        cwd=prepared)
    assert measure("synthetic-defocus", True, section)[1]["pba"] == ["computed"]
    # ...but are at the default 64 px, and give the same shares as computing afresh
    stored = measure("synthetic-defocus", True, TINY_PARAMS["pba"])[0]
    assert measure("synthetic-defocus", True, TINY_PARAMS["pba"])[1]["pba"] == ["stored"]
    grid64 = pba.blur_levels(pba.blur_scores(blurry, 64, params), params)
    want64 = pba.summarize_levels(pba.pixel_levels(grid64, 64, *blurry.shape[:2]))
    for level, share in want64.items():
        assert stored.set_index("image_id").loc[row.image_id, f"pba_{level}"] == share
