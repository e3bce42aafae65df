"""A tiny results database made by the real engine, shared by the leaderboard/review tests.

synth -> prepare -> methods run (identity, unsharp-mask) -> score -> submit reported, all
through the `deblurbench` CLI, plus PBA annotations of the test images by the real annotator.
Built once per test session under pytest's base temp folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
from conftest import REPO, TINY_PARAMS, cli, make_project

TEST_IDS = ["coffee-00", "coffee-01"]
#: identity (the floor) and the README's example method, which these tests own: the built-in
#: methods change with other work, the board's shape here must not.
METHODS = ["identity", "box-sharpen"]


def build_results(base: Path) -> Path:
    root = base / "lb-results"
    done = root / ".built"
    if done.exists():
        return root
    make_project(root, TINY_PARAMS | {"run": {"methods": METHODS, "splits": ["test"]}})
    shutil.copytree(REPO / "examples" / "methods" / "box-sharpen", root / "methods" / "box-sharpen")
    for args in (["synth", "defocus", "--out", "synthetic-defocus"],
                 ["datasets", "prepare", "synthetic-defocus"],
                 *[["methods", "run", m, "--dataset", "synthetic-defocus"] for m in METHODS],
                 ["score"],
                 ["submit", "reported", str(REPO / "leaderboard" / "reported.csv")]):
        cli(*args, cwd=root)
    annotate_pba(root)
    done.write_text("ok")
    return root


def annotate_pba(root: Path) -> None:
    """PBA annotations of the test split's blurry images at annotate/pba/<dataset>/<id>.npz."""
    from deblurbench.annotate.pba import annotate, save_npz
    from deblurbench.io import read_image

    for image_id in TEST_IDS:
        blurry = root / "datasets/synthetic-defocus/raw/test/blurry" / f"{image_id}.png"
        save_npz(annotate(read_image(blurry)),
                 root / "annotate/pba/synthetic-defocus" / f"{image_id}.npz")


def db(root: Path) -> Path:
    return root / "leaderboard" / "results.duckdb"


def means(root: Path) -> dict[tuple[str, str], float]:
    """(method, metric) -> mean over images, computed straight from the scores table."""
    con = duckdb.connect(str(db(root)), read_only=True)
    try:
        rows = con.execute("SELECT r.method, s.metric, avg(s.value) FROM scores s JOIN runs r "
                           "USING (run_id) WHERE s.region = 'all' GROUP BY ALL").fetchall()
    finally:
        con.close()
    return {(m, k): v for m, k, v in rows}


def env(root: Path, **extra: str) -> dict[str, str]:
    return os.environ | {"DEBLURBENCH_ROOT": str(root), **extra}
