"""Scoring benchmark: the engine vs a plain per-image pyiqa loop over the same 16-bit files.

N DPDD-sized pairs (1120x1680, 16-bit PNG) are written to a temporary project; the identity
method's outputs (the blurry inputs) are scored against the sharp images with psnr, ssim,
ms_ssim and mae, once through ``deblurbench.metrics.scorer.score_run`` (database writes,
aggregates and all) and once by a plain loop: per image, read the pair with the project's
16-bit-safe I/O, then pyiqa ``psnr`` (eps=0) and ``ms_ssim``, scikit-image SSIM (pyiqa's ``ssim``
is luma-only, so the defocus protocol's RGB SSIM is scikit-image's) and numpy MAE. Values must
agree to 1e-5; prints images/s of both and the ratio.

    .venv/bin/python bench/bench_scoring.py --n 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ["psnr", "ssim", "ms_ssim", "mae"]


def make_project(root: Path, n: int, h: int = 1120, w: int = 1680) -> None:
    from deblurbench.io import write_png

    (root / "datasets").mkdir(parents=True)
    shutil.copy(REPO / "datasets/synthetic-defocus.yaml", root / "datasets")
    shutil.copytree(REPO / "methods/identity", root / "methods/identity")
    (root / "params.yaml").write_text("datasets: [synthetic-defocus]\n")
    rng = np.random.default_rng(0)
    raw = root / "datasets/synthetic-defocus/raw"
    for split, k in (("train", 1), ("test", n)):
        for i in range(k):
            small = rng.random((h // 8, w // 8, 3)).astype(np.float32)
            sharp = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
            blurry = cv2.GaussianBlur(sharp, (0, 0), 2.5)
            write_png(raw / split / "sharp" / f"p{i:03d}.png", sharp)
            write_png(raw / split / "blurry" / f"p{i:03d}.png", blurry)


def plain_loop(rows, outputs: Path) -> dict:
    import pyiqa
    import torch
    from skimage.metrics import structural_similarity

    from deblurbench.io import read_image

    def t(x):
        return torch.from_numpy(x).permute(2, 0, 1)[None]

    psnr = pyiqa.create_metric("psnr", device="cpu", eps=0.0)
    ms_ssim = pyiqa.create_metric("ms_ssim", device="cpu")
    out = {}
    for r in rows.itertuples():
        restored = read_image(outputs / f"{r.image_id}.png")
        sharp = read_image(r.sharp)
        with torch.no_grad():
            out[(r.image_id, "psnr")] = float(psnr(t(restored), t(sharp)))
            out[(r.image_id, "ms_ssim")] = float(ms_ssim(t(restored), t(sharp)))
        out[(r.image_id, "ssim")] = float(structural_similarity(restored, sharp,
                                                                channel_axis=-1, data_range=1.0))
        out[(r.image_id, "mae")] = float(np.mean(np.abs(restored - sharp)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4, help="number of pairs (default: 4)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        make_project(root, args.n)
        os.environ["DEBLURBENCH_ROOT"] = str(root)
        os.chdir(root)
        from deblurbench.datasets.manifest import load_manifest, prepare
        from deblurbench.methods.runner import run_method
        from deblurbench.metrics.scorer import score_run
        from deblurbench.paths import run_dir

        prepare("synthetic-defocus")
        run_method("identity", "synthetic-defocus", "test", device="cpu")
        rows = load_manifest("synthetic-defocus", "test")
        db = root / "results.duckdb"

        t0 = time.perf_counter()
        res = score_run("identity", "synthetic-defocus", "test", db, METRICS)
        t_engine = time.perf_counter() - t0
        assert res["status"] == "ok", res

        t0 = time.perf_counter()
        plain = plain_loop(rows, run_dir("identity", "synthetic-defocus", "test"))
        t_plain = time.perf_counter() - t0

        import duckdb

        con = duckdb.connect(str(db), read_only=True)
        engine = {(i, m): v for i, m, v in con.execute(
            "SELECT image_id, metric, value FROM scores WHERE region = 'all'").fetchall()}
        con.close()
    worst = max(abs(engine[k] - v) for k, v in plain.items())
    n = args.n
    print(f"pairs: {n} x 1120x1680 16-bit; metrics: {', '.join(METRICS)}")
    print(f"engine:     {t_engine:7.2f} s  {n / t_engine:6.3f} images/s")
    print(f"plain loop: {t_plain:7.2f} s  {n / t_plain:6.3f} images/s")
    print(f"ratio (engine / plain images/s): {t_plain / t_engine:.1f}x")
    print(f"max |engine - plain| over {len(plain)} values: {worst:.2e}")
    if worst > 1e-5:
        print("FAIL: values differ by more than 1e-5", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
