"""Sanity checks for leaderboard/reported.csv (numbers transcribed from the five source papers).

Spot checks below were verified twice against the paper text files in shared/papers
(see leaderboard/REPORTED.md for which table each comes from).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

CSV = Path(__file__).resolve().parents[1] / "leaderboard" / "reported.csv"
COLUMNS = ["method", "dataset", "subset", "metric", "value", "source", "paper", "table", "notes"]
KEY = ["method", "dataset", "subset", "metric", "paper", "table"]
PAPERS = {"MBSD", "RDDM", "JDRL", "DeblurDiff", "BD-Diff"}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return pd.read_csv(CSV, dtype={"value": str}, keep_default_na=False)


def test_exact_columns(df):
    assert list(df.columns) == COLUMNS


def test_required_fields_not_empty(df):
    for col in ("method", "dataset", "subset", "metric", "value", "source", "paper", "table"):
        empty = df[df[col].astype(str).str.strip() == ""]
        assert empty.empty, f"empty {col} in rows {list(empty.index)}"


def test_values_numeric_and_finite(df):
    values = pd.to_numeric(df["value"], errors="coerce")
    bad = df[values.isna()]
    assert bad.empty, f"non-numeric values: {bad[['method', 'metric', 'value']].to_dict('records')}"
    assert all(math.isfinite(v) for v in values)


def test_no_duplicate_keys(df):
    dup = df[df.duplicated(KEY, keep=False)]
    assert dup.empty, f"duplicate rows: {dup[KEY].to_dict('records')}"


def test_source_and_subset_vocabulary(df):
    assert set(df["source"]) == {"reported"}
    assert set(df["subset"]) <= {"combined", "indoor", "outdoor", "all"}
    assert (df["metric"] == df["metric"].str.lower()).all()
    assert (df["dataset"] == df["dataset"].str.lower()).all()


def test_metric_ranges(df):
    values = pd.to_numeric(df["value"])
    ssim = values[df["metric"] == "ssim"]
    assert ((ssim >= 0) & (ssim <= 1)).all(), ssim[(ssim < 0) | (ssim > 1)]
    psnr = values[df["metric"] == "psnr"]
    assert ((psnr > 10) & (psnr < 60)).all(), psnr[(psnr <= 10) | (psnr >= 60)]


def test_all_papers_present(df):
    assert set(df["paper"]) == PAPERS


def test_rows_per_table(df):
    counts = df.groupby(["paper", "table"]).size().to_dict()
    assert counts == {
        ("MBSD", "Table 1"): 159,
        ("RDDM", "Table 2"): 70,
        ("JDRL", "Table 1"): 75,
        ("JDRL", "Table 3"): 35,
        ("JDRL", "Table 5"): 35,
        ("JDRL", "Table 6"): 15,
        ("DeblurDiff", "Table 1"): 232,
        ("BD-Diff", "Table 2"): 112,
    }


def cell(df, paper, table, method, dataset, metric, subset="all") -> float:
    sel = df[
        (df["paper"] == paper)
        & (df["table"] == table)
        & (df["method"] == method)
        & (df["dataset"] == dataset)
        & (df["metric"] == metric)
        & (df["subset"] == subset)
    ]
    assert len(sel) == 1, f"expected one row for {paper} {table} {method} {dataset} {metric}"
    return float(sel["value"].iloc[0])


SPOT_CHECKS = [
    # MBSD Table 1
    ("MBSD", "Table 1", "MBSD", "dpdd", "psnr", 26.55),
    ("MBSD", "Table 1", "P2IKT", "realdof", "ssim", 0.787),
    ("MBSD", "Table 1", "DefocusGAN", "dpdd", "dists", 0.0965),
    ("MBSD", "Table 1", "ViTDeblur", "pixeldp", "musiq", 46.01),
    # RDDM Table 2
    ("RDDM", "Table 2", "RDDM", "dpdd", "lpips", 0.166),
    ("RDDM", "Table 2", "DiffLL", "realdof", "fid", 18.25),
    ("RDDM", "Table 2", "DRBNet", "realdof", "mae", 0.036),
    # JDRL Tables 1, 3, 5, 6
    ("JDRL", "Table 1", "Loformer†", "sdd", "psnr", 27.20),
    ("JDRL", "Table 3", "Restormer†", "dpdd", "ssim", 0.854),
    ("JDRL", "Table 5", "IFAN", "realdof", "fid", 43.39),
    ("JDRL", "Table 6", "UNet (trained on DPDD)", "realdof", "lpips", 0.401),
    # DeblurDiff Table 1
    ("DeblurDiff", "Table 1", "DeblurDiff", "real-blurry-images", "niqe", 3.6628),
    ("DeblurDiff", "Table 1", "HI-Diff", "gopro", "psnr", 33.33),
    ("DeblurDiff", "Table 1", "FFTformer*", "dvd", "musiq", 60.1091),
    # BD-Diff Table 2
    ("BD-Diff", "Table 2", "BD-Diff", "reds", "liqe", 2.85),
    ("BD-Diff", "Table 2", "DA-CLIP", "realblur-r", "musiq", 21.72),
    ("BD-Diff", "Table 2", "Blur2Blur", "realblur-j", "clipiqa", 0.1623),
]


@pytest.mark.parametrize("paper,table,method,dataset,metric,expected", SPOT_CHECKS)
def test_spot_checks(df, paper, table, method, dataset, metric, expected):
    assert cell(df, paper, table, method, dataset, metric) == pytest.approx(expected, abs=1e-9)


def test_unreported_cells_are_absent(df):
    # MBSD Table 1 prints '-' for RDDM on DISTS and the no-reference metrics.
    rddm = df[(df["paper"] == "MBSD") & (df["method"] == "RDDM")]
    assert set(rddm["metric"]) == {"psnr", "ssim", "lpips"}
    assert set(rddm["dataset"]) == {"dpdd", "realdof"}
