"""`deblurbench review`: a persistent FiftyOne dataset per (data set, split) for failure review.

Grouped by image pair. Slices: ``blurry``, ``sharp``, ``aligned_sharp`` (when the manifest has
a flow-aligned ground truth), and one per scored method (its restored image). Fields:

- every method slice: each metric of its run (``psnr``, ``ssim``, ...; names sanitised), the
  PSNR gain over the identity floor (``psnr_gain``), and ``error``: the per-pixel absolute
  error against the sharp image (mean over RGB) as a heatmap;
- the blurry slice: ``pba`` (the PBA blur-level map of ``annotate/pba/<dataset>/<id>.npz``,
  finest scale, as a segmentation with targets slight/mild/moderate/severe), ``blur_map``
  (the true blur radius of synthetic data, pixels, as a heatmap), ``misalignment_px`` when the
  manifest measured one;
- tags ``worst-psnr-gain`` on the worst-k samples of each method (lowest PSNR gain, or the
  worst value of its first metric when there is no identity run).

Heatmaps use one fixed range per data set so colours compare across methods and images: the
error range is the largest 99th percentile of any output's error, the blur range the largest
true radius; both are in ``dataset.info``. Map images are written under
``review/<dataset>/<split>/``. Rebuilding deletes and recreates the dataset, so building twice
gives the same dataset.

Saved views: "worst 20 by PSNR gain over identity" and "largest misalignment".
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from deblurbench.io import read_image, write_png
from deblurbench.leaderboard.snapshot import open_snapshot
from deblurbench.paths import pba_dir, project_root, run_dir
from deblurbench.store import queries

LEVELS = ["slight", "mild", "moderate", "severe"]

#: FiftyOne's settings the review needs however it is started (the CLI, a notebook, ``make``):
#: no check of the bundled MongoDB's version against the deprecation list (it prints an
#: exception text for 6.0), and no usage tracking nor the App's analytics prompt
FIFTYONE_ENV = {"FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_DO_NOT_TRACK": "true"}


def fiftyone():
    """``import fiftyone`` with :data:`FIFTYONE_ENV` set first (a user's own values win);
    FiftyOne reads them once, at import."""
    import os

    for k, v in FIFTYONE_ENV.items():
        os.environ.setdefault(k, v)
    import fiftyone as fo

    return fo
WORST_VIEW = "worst 20 by PSNR gain over identity"
MISALIGN_VIEW = "largest misalignment"
WORST_TAG = "worst-psnr-gain"


def dataset_name(dataset: str, split: str) -> str:
    return f"deblurbench-{dataset}-{split}"


def field_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", metric)


def pba_path(dataset: str, image_id: str) -> Path:
    return pba_dir(dataset) / f"{image_id}.npz"


def pba_level_map(dataset: str, image_id: str) -> np.ndarray | None:
    """HxW uint8 PBA levels (0 slight .. 3 severe) at the finest scale, or None if absent."""
    path = pba_path(dataset, image_id)
    if not path.exists():
        return None
    from deblurbench.annotate.pba import load_npz

    return load_npz(path).pixel_maps()[0]


def review_dir(dataset: str, split: str) -> Path:
    return project_root() / "review" / dataset / split


def _manifest(dataset: str, split: str, images: pd.DataFrame) -> pd.DataFrame:
    """The manifest (for blur maps), with ``sharp_aligned`` and ``misalignment_px`` (mean
    displacement of the sharp image's alignment, native pixels) from the data set's aligned
    variant when `datasets align` made one; the DB's images if there is no manifest."""
    from deblurbench.datasets.manifest import load_manifest
    from deblurbench.paths import dataset_dir

    try:
        man = load_manifest(dataset, split)
    except (ValueError, FileNotFoundError):
        return images
    base = dataset_dir(dataset) / "variants"
    for v in sorted(base.iterdir()) if base.is_dir() else []:
        if v.name.startswith(".") or not (v / "stats.parquet").exists():
            continue
        aligned = load_manifest(dataset, split, variant=v.name)[["image_id", "sharp"]]
        stats = pd.read_parquet(v / "stats.parquet")
        stats = stats[stats["split"] == split][["image_id", "total_flow_mean"]]
        man = (man.merge(aligned.rename(columns={"sharp": "sharp_aligned"}), on="image_id",
                         how="left")
               .merge(stats.rename(columns={"total_flow_mean": "misalignment_px"}),
                      on="image_id", how="left"))
        break  # one aligned variant per data set (`datasets align` writes one)
    return man


def error_map(restored: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """Per-pixel |restored - sharp| averaged over RGB; float32 HxW in [0, 1]."""
    return np.abs(restored - sharp).mean(axis=2).astype(np.float32)


def _heatmap_png(path: Path, values: np.ndarray, vmax: float) -> Path:
    """Write values / vmax (clipped) as an 8-bit grey PNG; the Heatmap range is [0, 255]."""
    scaled = np.clip(values / max(vmax, 1e-12), 0, 1)
    return write_png(path, scaled, bits=8)


def _nice_ceiling(x: float) -> float:
    if x <= 0 or not math.isfinite(x):
        return 1.0
    e = math.floor(math.log10(x)) - 1
    return math.ceil(x / 10**e) * 10**e


def build_review(dataset: str, split: str, db_path: str | Path, worst_k: int = 5,
                 protocol: str = "defocus"):
    """(Re)build the FiftyOne dataset of (dataset, split) from the results database.

    The per-sample scores are those of one leaderboard board, ``protocol`` (a board protocol
    such as ``defocus`` or ``defocus+aligned``), so no field mixes two metric definitions.
    """
    fo = fiftyone()

    from deblurbench.leaderboard.table import load_boards, on_board

    con = open_snapshot(db_path)
    try:
        images = queries.images(con, dataset, split)
        board = load_boards(con).get((dataset, split, protocol))
        scores = queries.image_scores(con, dataset, split,
                                      board.table["run_id"] if board else [])
    finally:
        con.close()
    if images.empty:
        raise ValueError(f"{db_path}: no images of {dataset}/{split} in the results database; "
                         f"score a run on it first")
    if board is None:
        raise ValueError(f"{db_path}: no scored runs of {dataset}/{split} under protocol "
                         f"{protocol!r}")
    scores = on_board(scores, board)
    scores["metric"] = scores["metric"].str.replace("@", "_", regex=False)  # field names
    runs = board.table[board.table["status"] == "ok"]
    methods = sorted(runs["method"].unique())
    man = _manifest(dataset, split, images).set_index("image_id")
    wide = _wide_scores(scores)
    folder = review_dir(dataset, split)

    # First pass: the fixed ranges of the data set.
    err_max, blur_max = 0.0, 0.0
    sharp_cache: dict[str, np.ndarray] = {}
    for r in tqdm(images.itertuples(), total=len(images), desc="review ranges", unit="img"):
        if r.sharp:
            sharp_cache[r.image_id] = read_image(r.sharp)
            for m in methods:
                out = run_dir(m, dataset, split) / f"{r.image_id}.png"
                if out.exists():
                    err = error_map(read_image(out), sharp_cache[r.image_id])
                    err_max = max(err_max, float(np.percentile(err, 99)))
        bm = man["blur_map"].get(r.image_id) if "blur_map" in man else None
        if isinstance(bm, str) and Path(bm).exists():
            blur_max = max(blur_max, float(np.load(bm).max()))
    err_range, blur_range = _nice_ceiling(err_max), _nice_ceiling(blur_max)

    name = dataset_name(dataset, split)
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    ds.persistent = True
    ds.add_group_field("group", default="blurry")
    ds.add_sample_field("misalignment_px", fo.FloatField)  # None: not measured
    ds.mask_targets = {"pba": {i + 1: lvl for i, lvl in enumerate(LEVELS)}}
    ds.info = {"dataset": dataset, "split": split, "error_range": err_range,
               "blur_map_range_px": blur_range, "db": str(db_path), "methods": methods,
               "heatmaps": "8-bit PNG, 255 = the range's upper end"}
    samples = []
    for r in tqdm(images.itertuples(), total=len(images), desc=f"review {name}", unit="img"):
        samples += _group(fo, r, dataset, split, methods, man, wide, sharp_cache, folder,
                          err_range, blur_range)
    ds.add_samples(samples)
    _tag_worst(ds, methods, wide, worst_k)
    _save_views(fo, ds, methods, runs)
    ds.save()
    return ds


def _wide_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """(method, image_id) x metric, with psnr_gain over the identity floor when both exist."""
    if scores.empty:
        return pd.DataFrame()
    wide = scores.pivot_table(index=["method", "image_id"], columns="metric", values="value")
    if "psnr" in wide.columns and "identity" in wide.index.get_level_values(0):
        floor = wide.loc["identity", "psnr"]
        wide["psnr_gain"] = [v - floor.get(i, np.nan) for (_, i), v in wide["psnr"].items()]
    return wide


def _group(fo, r, dataset, split, methods, man, wide, sharp_cache, folder, err_range,
           blur_range) -> list:
    g = fo.Group()
    row = man.loc[r.image_id] if r.image_id in man.index else None
    blurry = fo.Sample(filepath=str(r.blurry), group=g.element("blurry"), image_id=r.image_id,
                       height=int(r.height), width=int(r.width), bit_depth=int(r.bit_depth))
    levels = pba_level_map(dataset, r.image_id)
    if levels is not None:
        mask = folder / "pba" / f"{r.image_id}.png"
        write_png(mask, (levels.astype(np.float64) + 1) / 255.0, bits=8)  # 0 = background
        blurry["pba"] = fo.Segmentation(mask_path=str(mask))
        blurry["pba_shares"] = {lvl: float(np.mean(levels == i)) for i, lvl in enumerate(LEVELS)}
    if row is not None and isinstance(row.get("blur_map"), str) and Path(row["blur_map"]).exists():
        png = folder / "blur_map" / f"{r.image_id}.png"
        _heatmap_png(png, np.load(row["blur_map"]), blur_range)
        blurry["blur_map"] = fo.Heatmap(map_path=str(png), range=[0, 255])
    mis = row.get("misalignment_px") if row is not None else None
    blurry["misalignment_px"] = float(mis) if mis is not None and pd.notna(mis) else None
    out = [blurry]
    if r.sharp:
        out.append(fo.Sample(filepath=str(r.sharp), group=g.element("sharp"),
                             image_id=r.image_id))
    aligned = row.get("sharp_aligned") if row is not None else None
    if isinstance(aligned, str):
        out.append(fo.Sample(filepath=aligned, group=g.element("aligned_sharp"),
                             image_id=r.image_id))
    for m in methods:
        path = run_dir(m, dataset, split) / f"{r.image_id}.png"
        if not path.exists():
            continue
        s = fo.Sample(filepath=str(path), group=g.element(m), image_id=r.image_id, method=m)
        if (m, r.image_id) in wide.index:
            for metric, v in wide.loc[(m, r.image_id)].items():
                if pd.notna(v):
                    s[field_name(metric)] = float(v) if math.isfinite(v) else None
        if r.image_id in sharp_cache:
            png = folder / "error" / m / f"{r.image_id}.png"
            _heatmap_png(png, error_map(read_image(path), sharp_cache[r.image_id]), err_range)
            s["error"] = fo.Heatmap(map_path=str(png), range=[0, 255])
        out.append(s)
    return out


def _tag_worst(ds, methods, wide, k: int) -> None:
    if wide.empty or k <= 0:
        return
    key = "psnr_gain" if "psnr_gain" in wide.columns else None
    for m in methods:
        if m not in wide.index.get_level_values(0):
            continue
        col = key or wide.columns[0]
        vals = wide.loc[m, col].dropna()
        if vals.empty:
            continue
        worst = vals.sort_values().index[:k]  # lowest gain / value first
        view = ds.select_group_slices([m]).match(fo_in("image_id", list(worst)))
        view.tag_samples(WORST_TAG)


def fo_in(field: str, values: list):
    from fiftyone import ViewField as F

    return F(field).is_in(values)


def _save_views(fo, ds, methods, runs) -> None:
    from fiftyone import ViewField as F

    floors = set(runs.loc[runs["label"].fillna("").str.startswith("floor"), "method"]) | {
        "identity"}
    compared = [m for m in methods if m not in floors]
    worst = ds.select_group_slices(compared or methods).match(F("psnr_gain") != None)
    ds.save_view(WORST_VIEW, worst.sort_by("psnr_gain").limit(20),
                 description="method outputs with the lowest PSNR gain over the identity floor")
    mis = ds.select_group_slices(["blurry"]).match(F("misalignment_px") != None)
    ds.save_view(MISALIGN_VIEW, mis.sort_by("misalignment_px", reverse=True),
                 description="pairs whose ground truth is most misaligned (measured data only)")


def launch(ds, port: int = 5151) -> None:
    """Open the FiftyOne App on 127.0.0.1 and block until it is closed."""
    fo = fiftyone()

    session = fo.launch_app(ds, port=port, address="127.0.0.1", auto=False)
    print(f"FiftyOne App: {session.url}  (Ctrl+C to stop)")
    session.wait(-1)
