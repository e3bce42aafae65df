"""Test data sets for the scoring engine: photo-like images, blur ladders, stored scores."""

from __future__ import annotations

from pathlib import Path

import cv2
import duckdb
import numpy as np
import yaml
from conftest import cli

from deblurbench.datasets.manifest import prepare
from deblurbench.io import write_png

SIGMAS = (0, 1, 2, 4)  # the blur ladder's Gaussian sigmas (0: the sharp image itself)


def photo(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.2)
                   * 1.6 - 0.3, 0, 1)


def make_card(project: Path, name: str, bits: int) -> Path:
    """A test data set card in the flat synthetic layout; returns its raw test folder."""
    card = yaml.safe_load((project / "datasets/synthetic-defocus.yaml").read_text())
    card |= {"name": name, "splits": {"test": None}, "bit_depth": bits, "title": name}
    (project / "datasets" / f"{name}.yaml").write_text(yaml.safe_dump(card))
    return project / "datasets" / name / "raw" / "test"


def make_dataset(project: Path, name: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]],
                 bits: int = 16) -> None:
    """A test data set of these (blurry, sharp) pairs, prepared through the real manifest code."""
    raw = make_card(project, name, bits)
    for image_id, (blurry, sharp) in pairs.items():
        write_png(raw / "blurry" / f"{image_id}.png", blurry, bits=bits)
        write_png(raw / "sharp" / f"{image_id}.png", sharp, bits=bits)
    prepare(name)


def make_blur_ladder(project: Path, name: str = "ladder", n: int = 3, h: int = 96,
                     w: int = 128) -> Path:
    """``n`` photos, each as identical (sigma 0) and increasingly blurred 'blurry' inputs
    (ids ``p{k}-s{sigma}``); the identity method's outputs are those inputs."""
    pairs = {}
    for k in range(n):
        sharp = photo(20 + k, h, w)
        for sigma in SIGMAS:
            blurry = sharp if sigma == 0 else cv2.GaussianBlur(sharp, (0, 0), sigma)
            pairs[f"p{k}-s{sigma}"] = (blurry, sharp)
    make_dataset(project, name, pairs)
    cli("methods", "run", "identity", "--dataset", name, cwd=project)
    return project


def scores(db: Path, run_id: str, metric: str) -> dict[str, float]:
    """{image_id: value} of one run and metric (whole image)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT image_id, value FROM scores WHERE run_id = ? AND "
                                "metric = ? AND region = 'all'", [run_id, metric]).fetchall())
    finally:
        con.close()


def spec_ids(db: Path, metric: str) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT spec_id FROM scores WHERE metric = ?",
                                          [metric]).fetchall()]
    finally:
        con.close()
