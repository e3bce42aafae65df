"""`deblurbench annotate pba` on a single image and on a prepared data set; params.yaml `pba`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import cli

from deblurbench.annotate import pba
from deblurbench.annotate.run import pba_params_from, read_levels_png
from deblurbench.config import ConfigError, load_params
from deblurbench.datasets.manifest import load_manifest
from deblurbench.io import probe, read_image, write_png


def checkerboard(h: int, w: int, square: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    board = ((yy // square + xx // square) % 2).astype(np.float32)
    return np.repeat(board[:, :, None], 3, axis=2)


def test_params_yaml_pba_section_is_the_paper_definition():
    params, patch = pba_params_from(load_params().pba)
    assert params == pba.PBAParams() and patch == 64
    with pytest.raises(ConfigError, match=r"params.yaml:pba: unknown key 'reblur_sigmaa'"):
        pba_params_from({"reblur_sigmaa": 3.6})
    with pytest.raises(ConfigError, match="thresholds"):
        pba_params_from({"thresholds": [0.5, 0.3, 0.9]})
    with pytest.raises(ConfigError, match="pixel_map_patch"):
        pba_params_from({"pixel_map_patch": 4})


def test_annotate_one_image_writes_npz_overlay_levels_and_summary(project):
    sharp = checkerboard(150, 200)
    write_png(project / "board.png", sharp)
    cli("annotate", "pba", "board.png", "--out", "ann", cwd=project)
    out = project / "ann"
    res = pba.load_npz(out / "board.npz")
    assert res.image_size == (150, 200) and res.patch_sizes == (64, 128, 256, 512)
    assert res.scores[0].shape == (2, 3) and res.scores[2].shape == (1, 1)
    np.testing.assert_allclose(res.scores[0], pba.blur_scores(read_image(project / "board.png"),
                                                              64), atol=1e-6)
    levels = read_levels_png(out / "board_levels.png")
    assert levels.shape == (150, 200)
    # A sharp 4-px checkerboard loses its Laplacian when re-blurred: slight everywhere.
    assert (levels == 0).all()
    info = probe(out / "board.png")
    assert (info.height, info.width, info.bit_depth) == (150, 200, 8)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["blurry"]["image"]["share"]["slight"] == 1.0
    assert summary["blurry"]["image"]["pixels"] == 150 * 200 and summary["pixel_map_patch"] == 64


def test_blurred_image_moves_towards_severe_and_pixel_map_scale_follows_params(project):
    import cv2

    blurred = cv2.GaussianBlur(checkerboard(128, 128, 8), (0, 0), 4.0)
    write_png(project / "soft.png", blurred)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["pba"]["pixel_map_patch"] = 32  # not one of the four scales: re-scored at 32 px
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    cli("annotate", "pba", "soft.png", "--out", "ann", cwd=project)
    levels = read_levels_png(project / "ann/soft_levels.png")
    expected = pba.blur_levels(pba.blur_scores(read_image(project / "soft.png"), 32))
    assert expected.shape == (4, 4)
    np.testing.assert_array_equal(levels, pba.pixel_levels(expected, 32, 128, 128))
    assert levels.mean() > 1.5  # a strongly blurred board is mostly moderate/severe


def test_annotate_dataset_both_kinds_per_split_summary(prepared):
    cli("annotate", "pba", "synthetic-defocus", "--out", "ann", "--which", "both", cwd=prepared)
    out = prepared / "ann"
    df = load_manifest("synthetic-defocus")
    summary = json.loads((out / "summary.json").read_text())
    blur_means, sharp_means = [], []
    for split, rows in df.groupby("split"):
        pooled = {"blurry": [], "sharp": []}
        for row in rows.itertuples():
            for kind, folder in (("blurry", out), ("sharp", out / "sharp")):
                res = pba.load_npz(folder / f"{row.image_id}.npz")
                levels = read_levels_png(folder / f"{row.image_id}_levels.png")
                h, w = res.image_size
                assert (h, w) == (row.height, row.width) and levels.shape == (h, w)
                np.testing.assert_array_equal(levels, res.pixel_maps()[0])
                assert (folder / f"{row.image_id}.png").is_file()
                pooled[kind].append(levels)
                (blur_means if kind == "blurry" else sharp_means).append(float(res.scores[0].mean()))
        for kind in ("blurry", "sharp"):
            entry = summary[kind][split]
            assert entry["images"] == len(rows)
            expect = pba.summarize_levels(pooled[kind])
            assert entry["share"] == pytest.approx(expect)
            assert sum(entry["share"].values()) == pytest.approx(1.0)
    # Data-quality signal: the defocused inputs score blurrier than their sharp references.
    assert np.mean(blur_means) > np.mean(sharp_means)


def test_bad_inputs_fail_with_the_file_named(project):
    proc = cli("annotate", "pba", "nosuch", "--out", "ann", cwd=project, check=False)
    assert proc.returncode == 2 and "nosuch: neither an image file nor a data set" in proc.stderr
    (project / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    proc = cli("annotate", "pba", "broken.png", "--out", "ann", cwd=project, check=False)
    assert proc.returncode == 2 and "broken.png" in proc.stderr
    write_png(project / "tiny.png", np.zeros((8, 8, 3), np.float32))
    proc = cli("annotate", "pba", "tiny.png", "--out", "ann", cwd=project, check=False)
    assert proc.returncode == 2 and "tiny.png" in proc.stderr and "SSIM window" in proc.stderr
    proc = cli("annotate", "pba", "synthetic-defocus", "--out", "ann", cwd=project, check=False)
    assert proc.returncode == 2 and "datasets prepare synthetic-defocus" in proc.stderr
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["pba"]["ssim_sigmaa"] = 1.5
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    write_png(project / "ok.png", checkerboard(64, 64))
    proc = cli("annotate", "pba", "ok.png", "--out", "ann", cwd=project, check=False)
    assert proc.returncode == 2 and "params.yaml:pba: unknown key 'ssim_sigmaa'" in proc.stderr
