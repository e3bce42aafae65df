"""fetch -> prepare -> align -> report through the real CLI, for each real data set, from tiny
archives in the real layouts served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import cli
from realdata_kit import (
    Server,
    build_dpdd,
    build_pixeldp,
    build_realdof,
    build_sdd,
    write_card,
    write_pairs_csv,
    zip_folder,
)

from deblurbench.datasets.manifest import load_manifest


def _run_all(project, name):
    out = {}
    for verb in ("fetch", "prepare", "align", "report"):
        out[verb] = cli("datasets", verb, name, cwd=project).stdout
    return out


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dpdd_16_bit_dual_pixel(project, tmp_path):
    counts = {"train": 1, "val": 1, "test": 2}
    pairs = build_dpdd(tmp_path / "src", counts)
    zip_folder(tmp_path / "src", tmp_path / "www" / "dd_dp_dataset_canon.zip")
    write_pairs_csv(project / "datasets/dpdd/pairs.csv", pairs)
    with Server(tmp_path / "www") as srv:
        write_card(project, "dpdd", counts, srv.url("dd_dp_dataset_canon.zip"),
                   "dd_dp_dataset_canon.zip")
        out = _run_all(project, "dpdd")
    assert "dpdd: 4 pairs {'test': 2, 'train': 1, 'val': 1}" in out["prepare"]
    raw = project / "datasets/dpdd/raw"
    originals = _digest(raw)
    df = load_manifest("dpdd", variant="aligned")
    assert len(df) == 4 and set(df.bit_depth) == {16}
    row = df[df.image_id == "1P0A0917"].iloc[0]
    assert row.sharp_original.endswith("test_c/target/1P0A0916.png")
    assert "/variants/aligned/test/sharp/1P0A0917.png" in row.sharp
    aligned = cv2.imread(row.sharp, cv2.IMREAD_UNCHANGED)
    assert aligned.dtype == np.uint16 and aligned.shape == (64, 96, 3)
    mask = cv2.imread(row["mask"], cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    # DPDD pairs are captured aligned: the global transform is near identity.
    st = pd.read_parquet(project / "datasets/dpdd/variants/aligned/stats.parquet")
    assert (st.scale - 1).abs().max() < 0.01 and st.shift_x.abs().max() < 0.5
    report = (project / "datasets/dpdd/report/report.md").read_text()
    assert "| test | 64 | 96 | 16 | 2 |" in report
    assert "Dual-pixel view balance" in report
    summary = json.loads((project / "datasets/dpdd/report/summary.json").read_text())
    # Right views were written 0.9x the left ones: the left/right ratio is 1/0.9.
    assert summary["means"]["lr_ratio_G"] == pytest.approx(1 / 0.9, rel=0.01)
    # Re-aligning never touches the originals.
    cli("datasets", "align", "dpdd", cwd=project)
    assert _digest(raw) == originals


def test_sdd_zoom_and_shift_are_measured(project, tmp_path):
    counts = {"train": 2, "test": 2}
    truth = build_sdd(tmp_path / "src", counts)
    zip_folder(tmp_path / "src", tmp_path / "www" / "SDD.zip")
    with Server(tmp_path / "www") as srv:
        write_card(project, "sdd", counts, srv.url("SDD.zip"), "SDD.zip")
        out = _run_all(project, "sdd")
    assert "sdd: aligned 4 pairs" in out["align"]
    st = pd.read_parquet(project / "datasets/sdd/variants/aligned/stats.parquet")
    for r in st.itertuples():
        s, dx, dy = truth[r.image_id]
        assert abs(r.scale - s) < 0.006, (r.image_id, r.scale, s)  # tiny 128 px images
        assert abs(r.shift_x - dx) < 0.3 and abs(r.shift_y - dy) < 0.3, r
        assert r.psnr_after > r.psnr_before
    report = (project / "datasets/sdd/report/report.md").read_text()
    assert "## Misalignment" in report and "figures/misalignment.png" in report
    assert (project / "datasets/sdd/report/figures/misalignment.png").stat().st_size > 1000
    assert "### flow_p95" in report


def test_realdof_8_bit(project, tmp_path):
    build_realdof(tmp_path / "src", 3)
    zip_folder(tmp_path / "src", tmp_path / "www" / "RealDOF.zip")
    with Server(tmp_path / "www") as srv:
        write_card(project, "realdof", {"test": 3}, srv.url("RealDOF.zip"), "RealDOF.zip")
        out = _run_all(project, "realdof")
    assert "realdof: 3 pairs {'test': 3}" in out["prepare"]
    # The card names its aligned variant `realdof-aligned`.
    df = load_manifest("realdof", variant="realdof-aligned")
    assert set(df.bit_depth) == {8} and len(df) == 3
    st = pd.read_parquet(project / "datasets/realdof/variants/realdof-aligned/stats.parquet")
    assert np.allclose(st.shift_x, 0.7, atol=0.3) and np.allclose(st.shift_y, -0.4, atol=0.3)
    assert "| test | 64 | 96 | 8 | 3 |" in (project / "datasets/realdof/report/report.md"
                                            ).read_text()


def test_pixeldp_no_ground_truth(project, tmp_path):
    build_pixeldp(tmp_path / "src", 2)
    zip_folder(tmp_path / "src", tmp_path / "www" / "dd_dp_dataset_pixel.zip")
    with Server(tmp_path / "www") as srv:
        write_card(project, "pixeldp", {"test": None}, srv.url("dd_dp_dataset_pixel.zip"),
                   "dd_dp_dataset_pixel.zip")
        out = _run_all(project, "pixeldp")
    assert "pixeldp: no ground truth, nothing to align" in out["align"]
    report = (project / "datasets/pixeldp/report/report.md").read_text()
    assert "No ground truth: nothing to align." in report
    assert "| test | 96 | 64 | 16 | 2 |" in report
    summary = json.loads((project / "datasets/pixeldp/report/summary.json").read_text())
    assert summary["means"]["lr_ratio_R"] == pytest.approx(1 / 0.8, rel=0.01)
