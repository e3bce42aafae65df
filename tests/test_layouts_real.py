"""Layout parsers of DPDD, RealDOF, SDD and PixelDP on tiny copies of their real layouts."""

from __future__ import annotations

import shutil

import cv2
import duckdb
import numpy as np
import pytest
import yaml
from conftest import REPO, cli
from realdata_kit import (
    build_dpdd,
    build_pixeldp,
    build_realdof,
    build_sdd,
    defocus,
    photo,
    write_card,
    write_pairs_csv,
)

from deblurbench.datasets.layouts import LayoutError
from deblurbench.datasets.manifest import load_manifest, prepare
from deblurbench.io import write_png

DPDD_COUNTS = {"train": 2, "val": 1, "test": 2}


@pytest.fixture
def dpdd(project):
    raw = project / "datasets/dpdd/raw"
    pairs = build_dpdd(raw, DPDD_COUNTS)
    write_pairs_csv(project / "datasets/dpdd/pairs.csv", pairs)
    write_card(project, "dpdd", DPDD_COUNTS, None, None)
    return raw, pairs


def test_dpdd_pairs_by_the_official_list_keeps_16_bits_and_both_views(dpdd):
    df = prepare("dpdd")
    assert df.groupby("split").size().to_dict() == DPDD_COUNTS
    row = df[df.image_id == "1P0A0917"].iloc[0]  # the first official test pair
    assert row.split == "test"
    assert row.blurry == "raw/dd_dp_dataset_canon/test_c/source/1P0A0917.png"
    assert row.sharp == "raw/dd_dp_dataset_canon/test_c/target/1P0A0916.png"
    assert row.left == "raw/dd_dp_dataset_canon/test_l/source/1P0A0917_L.png"
    assert row.right == "raw/dd_dp_dataset_canon/test_r/source/1P0A0917_R.png"
    assert set(df.bit_depth) == {16} and set(df.height) == {64} and set(df.width) == {96}
    # Native 16-bit data survives: values are not multiples of 257 (8-bit expanded).
    full = load_manifest("dpdd")
    raw16 = cv2.imread(full.iloc[0].sharp, cv2.IMREAD_UNCHANGED)
    assert raw16.dtype == np.uint16 and np.any(raw16 % 257 != 0)


def test_dpdd_missing_sharp_image_is_named_and_old_manifest_kept(dpdd, project):
    raw, _ = dpdd
    prepare("dpdd")
    before = (project / "datasets/dpdd/manifest.parquet").read_bytes()
    (raw / "dd_dp_dataset_canon/test_c/target/1P0A0916.png").unlink()
    with pytest.raises(LayoutError, match=r"test_c/target/1P0A0916\.png: missing sharp image "
                                          r"for .*1P0A0917\.png"):
        prepare("dpdd")
    assert (project / "datasets/dpdd/manifest.parquet").read_bytes() == before


def test_dpdd_missing_view_and_unlisted_file_are_named(dpdd):
    raw, _ = dpdd
    base = raw / "dd_dp_dataset_canon"
    (base / "val_r/source").joinpath(next(p.name for p in (base / "val_r/source").iterdir())
                                     ).unlink()
    shutil.copy(base / "test_c/source/1P0A0917.png", base / "test_c/source/1P0A9999.png")
    with pytest.raises(LayoutError) as err:
        prepare("dpdd")
    msg = str(err.value)
    assert "missing right dual-pixel view" in msg and "val_r/source" in msg
    assert "1P0A9999.png: not in the official pair list" in msg


def test_dpdd_copy_with_fewer_images_than_the_card_is_refused_with_the_list(dpdd, project):
    write_card(project, "dpdd", {"train": 2, "val": 1, "test": 3}, None, None)
    with pytest.raises(LayoutError, match=r"dpdd/test: found 2 pairs, the card lists 3; 1 missing"
                                          r" \(found: 1P0A0917, 1P0A0933\)"):
        prepare("dpdd")


def test_dpdd_extra_folder_level_is_found(dpdd):
    raw, _ = dpdd
    (raw / "dd_dp_dataset_canon").rename(raw / "x")
    (raw / "dd_dp_dataset_canon" / "dd_dp_dataset_png").parent.mkdir()
    (raw / "x").rename(raw / "dd_dp_dataset_canon" / "dd_dp_dataset_png")
    df = prepare("dpdd")
    assert len(df) == 5 and df.blurry.str.contains("dd_dp_dataset_png").all()


def test_wrong_layout_names_the_path_and_what_was_expected(project):
    write_card(project, "sdd", {"train": 1, "test": 1}, None, None)
    (project / "datasets/sdd/raw/SDD/testing/blurry").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"raw: no SDD \(\{test,train,train_patches\}/\{blur,gt\}"
                                          r"\) layout found \(expected one of test/blur"):
        prepare("sdd")


def test_realdof_and_missing_target(project):
    build_realdof(project / "datasets/realdof/raw", 3)
    write_card(project, "realdof", {"test": 3}, None, None)
    df = prepare("realdof")
    assert list(df.image_id) == ["0000", "0001", "0002"] and set(df.bit_depth) == {8}
    assert df.sharp.str.endswith("RealDOF/target/0001.png").sum() == 1
    (project / "datasets/realdof/raw/RealDOF/target/0002.png").unlink()
    with pytest.raises(LayoutError, match=r"RealDOF/target/0002\.png: missing sharp image"):
        prepare("realdof")


def test_sdd_pairs_by_name_in_patches_and_test(project):
    build_sdd(project / "datasets/sdd/raw", {"train": 2, "test": 1})
    write_card(project, "sdd", {"train": 2, "test": 1}, None, None)
    df = prepare("sdd")
    assert df.groupby("split").size().to_dict() == {"train": 2, "test": 1}
    row = df[df.image_id == "test_000"].iloc[0]
    assert row.blurry == "raw/SDD/test/blur/test_000.png"
    assert row.sharp == "raw/SDD/test/gt/test_000.png"
    (project / "datasets/sdd/raw/SDD/train_patches/blur/train_001.png").unlink()
    with pytest.raises(LayoutError, match=r"train_patches/gt/train_001\.png: sharp image without "
                                          r"blurry partner"):
        prepare("sdd")


def test_pixeldp_has_no_sharp_and_keeps_views(project):
    build_pixeldp(project / "datasets/pixeldp/raw", 2)
    write_card(project, "pixeldp", {"test": None}, None, None)
    df = prepare("pixeldp")
    assert len(df) == 2 and df.sharp.isna().all() and set(df.bit_depth) == {16}
    assert df.left.str.endswith("_L.png").all() and df.right.str.endswith("_R.png").all()
    assert set(df.height) == {96} and set(df.width) == {64}  # portrait, as the Pixel 4 shoots


def test_dpdd_scores_are_also_reported_per_indoor_and_outdoor_subset(project):
    """The shipped subset lists reach the database: the first ten official test pairs are
    eight outdoor scenes (indices 0-7) then two indoor ones (8, 9)."""
    counts = {"test": 10}
    write_pairs_csv(project / "datasets/dpdd/pairs.csv", build_dpdd(
        project / "datasets/dpdd/raw", counts))
    write_card(project, "dpdd", counts, None, None)
    shutil.copytree(REPO / "datasets/dpdd/subsets", project / "datasets/dpdd/subsets")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"] = ["dpdd"]
    params["train"]["datasets"] = ["dpdd"]
    params["score"]["metrics"] = ["psnr"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    cli("datasets", "prepare", "dpdd", cwd=project)
    cli("methods", "run", "identity", "--dataset", "dpdd", cwd=project)
    cli("score", "--method", "identity", cwd=project)
    with duckdb.connect(str(project / "leaderboard/results.duckdb"), read_only=True) as con:
        sub = dict(con.execute("SELECT subset, n FROM subset_means WHERE metric = 'psnr' "
                               "AND region = 'all'").fetchall())
        per_image = con.execute("SELECT avg(value) FROM scores WHERE metric = 'psnr' "
                                "AND region = 'all'").fetchone()[0]
        means = dict(con.execute("SELECT subset, mean FROM subset_means "
                                 "WHERE metric = 'psnr' AND region = 'all'").fetchall())
    assert sub == {"outdoor": 8, "indoor": 2}
    assert (8 * means["outdoor"] + 2 * means["indoor"]) / 10 == pytest.approx(per_image)
    # ...and the terminal leaderboard shows them beside the combined mean
    out = cli("leaderboard", "--print", cwd=project).stdout
    assert "psnr per image subset of the data set (n: images)" in out
    assert "indoor (n=2)" in out and "outdoor (n=8)" in out
    line = next(l for l in out.splitlines() if l.strip().startswith("identity")
                and f"{means['indoor']:.4f}" in l)
    assert line.index(f"{means['indoor']:.4f}") < line.index(f"{means['outdoor']:.4f}")


def test_cuhk_is_a_flat_folder_of_blurry_images_without_ground_truth(project):
    for i in range(3):
        write_png(project / f"datasets/cuhk/raw/CUHK/image/motion{i:04d}.png", photo(i),
                  bits=8)
        write_png(project / f"datasets/cuhk/raw/CUHK/image/out_of_focus{i:04d}.png",
                  defocus(photo(i)), bits=8)
    write_card(project, "cuhk", {"test": 6}, None, None)
    df = prepare("cuhk")
    assert len(df) == 6 and df.sharp.isna().all() and set(df.split) == {"test"}
    assert "out_of_focus0002" in set(df.image_id)


def test_lfdof_pairs_input_with_ground_truth_by_name_and_names_a_missing_one(project):
    base = project / "datasets/lfdof/raw/LFDOF"
    for split, names in (("train", ["a_1", "a_2"]), ("test", ["b_1"])):
        for i, n in enumerate(names):
            write_png(base / f"{split}_data/ground_truth/{n}.png", photo(i), bits=8)
            write_png(base / f"{split}_data/input/{n}.png", defocus(photo(i)), bits=8)
    write_card(project, "lfdof", {"train": 2, "test": 1}, None, None)
    df = prepare("lfdof")
    assert df.groupby("split").size().to_dict() == {"test": 1, "train": 2}
    row = df[df.image_id == "b_1"].iloc[0]
    assert row.blurry.endswith("test_data/input/b_1.png")
    assert row.sharp.endswith("test_data/ground_truth/b_1.png")
    (base / "train_data/ground_truth/a_2.png").unlink()
    with pytest.raises(LayoutError, match=r"ground_truth/a_2.png: missing sharp image"):
        prepare("lfdof")


def test_ded_pairs_by_the_trailing_number_across_its_three_folders(project):
    base = project / "datasets/ded/raw/DED"
    for n in (1, 2, 10):
        write_png(base / f"sharp/scene_{n}.png", photo(n), bits=8)
        write_png(base / f"image/image_{n}.png", defocus(photo(n)), bits=8)
        write_png(base / f"filtered/defocus_filterd_{n}.png", photo(0)[..., :1], bits=8)
    write_card(project, "ded", {"all": 3}, None, None)
    df = prepare("ded")
    assert list(df.image_id) == ["0001", "0002", "0010"]
    row = df[df.image_id == "0010"].iloc[0]
    assert row.blurry.endswith("image/image_10.png") and row.sharp.endswith("sharp/scene_10.png")
    (base / "sharp/scene_2.png").unlink()
    with pytest.raises(LayoutError, match=r"image_2.png: no sharp/<prefix>_2 image to pair with"):
        prepare("ded")
