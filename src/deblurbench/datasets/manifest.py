"""The manifest contract: one row per pair, the same columns for every data set.

Stored as ``datasets/<name>/manifest.parquet`` (paths relative to that folder, so the data set
can be moved) and as a Hugging Face ``datasets`` folder ``datasets/<name>/hf`` with Image
features. HF decodes through Pillow (8-bit); use :func:`deblurbench.io.read_image` on the paths
for the native 16-bit data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from deblurbench.config import ConfigError
from deblurbench.datasets.card import DatasetCard, load_card
from deblurbench.datasets.layouts import LAYOUTS, LayoutError
from deblurbench.io import ImageError, probe
from deblurbench.paths import dataset_dir, datasets_dir

COLUMNS = ["dataset", "split", "image_id", "blurry", "sharp", "height", "width", "bit_depth",
           "left", "right", "blur_map"]
PATH_COLUMNS = ["blurry", "sharp", "left", "right", "blur_map"]
#: Extra column of an aligned evaluation variant: the valid-pixel mask (8-bit PNG, 255 = valid).
VARIANT_PATH_COLUMNS = ["mask", "sharp_original"]


def card_path(name: str) -> Path:
    return datasets_dir() / f"{name}.yaml"


def list_cards() -> list[DatasetCard]:
    return [load_card(p) for p in sorted(datasets_dir().glob("*.yaml"))]


def get_card(name: str) -> DatasetCard:
    path = card_path(name)
    if not path.exists():
        known = [p.stem for p in sorted(datasets_dir().glob("*.yaml"))]
        raise ConfigError(f"unknown data set {name!r}: no card {path} (known: {', '.join(known)})")
    return load_card(path)


def manifest_path(name: str, variant: str | None = None) -> Path:
    """``datasets/<name>/manifest.parquet``, or a variant's ``variants/<variant>/...``."""
    if variant is None:
        return dataset_dir(name) / "manifest.parquet"
    return dataset_dir(name) / "variants" / variant / "manifest.parquet"


def prepare(name: str, raw: Path | None = None) -> pd.DataFrame:
    """Parse the raw layout, check every image header and pair, write parquet + HF dataset."""
    card = get_card(name)
    root = dataset_dir(name)
    raw = raw or root / "raw"
    if not raw.is_dir():
        raise LayoutError(f"{raw}: raw data folder not found (fetch or synthesise {name} first)")
    rows = LAYOUTS.get(card.layout)(raw, card)
    _check_counts(card, rows)
    out = []
    for r in tqdm(rows, desc=f"prepare {name}", unit="pair"):
        info = probe(r["blurry"])
        if r.get("sharp") is not None:
            s = probe(r["sharp"])
            if (s.height, s.width) != (info.height, info.width):
                raise ImageError(r["sharp"], f"size {s.width}x{s.height} differs from its blurry "
                                             f"image {r['blurry']} ({info.width}x{info.height})")
            if s.bit_depth != info.bit_depth:
                raise ImageError(r["sharp"], f"bit depth {s.bit_depth} differs from blurry "
                                             f"({info.bit_depth})")
        row = {c: None for c in COLUMNS} | r
        row |= {"dataset": name, "height": info.height, "width": info.width,
                "bit_depth": info.bit_depth}
        for c in PATH_COLUMNS:
            if row[c] is not None:
                row[c] = Path(row[c]).resolve().relative_to(root.resolve()).as_posix()
        out.append(row)
    df = pd.DataFrame(out, columns=COLUMNS).sort_values(["split", "image_id"], ignore_index=True)
    df["height"] = df["height"].astype("int64")
    df["width"] = df["width"].astype("int64")
    df["bit_depth"] = df["bit_depth"].astype("int64")
    root.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path(name).with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(manifest_path(name))
    save_hf(name, df, root)
    return df


def _check_counts(card: DatasetCard, rows: list[dict]) -> None:
    for split, expected in card.splits.items():
        found = sum(1 for r in rows if r["split"] == split)
        if expected is not None and found < expected:
            have = sorted(r["image_id"] for r in rows if r["split"] == split)
            raise LayoutError(f"{card.name}/{split}: found {found} pairs, the card lists "
                              f"{expected}; {expected - found} missing (found: "
                              f"{', '.join(have[:20])}{' ...' if len(have) > 20 else ''})")


def save_hf(name: str, df: pd.DataFrame, root: Path) -> Path:
    """Write the manifest as a Hugging Face dataset with Image features for blurry and sharp."""
    from datasets import Dataset, Features, Image, Value

    target = root / "hf"
    cols = {c: [str(root / p) if p is not None else None for p in df[c]] for c in ("blurry", "sharp")}
    data = {"dataset": list(df["dataset"]), "split": list(df["split"]),
            "image_id": list(df["image_id"]), **cols,
            "height": [int(x) for x in df["height"]], "width": [int(x) for x in df["width"]],
            "bit_depth": [int(x) for x in df["bit_depth"]]}
    features = Features({"dataset": Value("string"), "split": Value("string"),
                         "image_id": Value("string"), "blurry": Image(), "sharp": Image(),
                         "height": Value("int64"), "width": Value("int64"),
                         "bit_depth": Value("int64")})
    ds = Dataset.from_dict(data, features=features)
    ds.save_to_disk(str(target))
    (target / "deblurbench.json").write_text(json.dumps(
        {"note": "HF Image decodes through Pillow (8-bit); read `path` with deblurbench.io "
                 "for native bit depth", "rows": len(df)}))
    return target


def load_manifest(name: str, split: str | None = None,
                  variant: str | None = None) -> pd.DataFrame:
    """The manifest with absolute paths; ``split`` filters, refusing an unknown split by name.

    ``variant`` reads an evaluation variant (e.g. the aligned ground truth of
    ``deblurbench datasets align``); its paths are relative to ``datasets/<name>`` too.
    """
    path = manifest_path(name, variant)
    if not path.exists():
        verb = "prepare" if variant is None else "align"
        raise ConfigError(f"{path}: no manifest; run `deblurbench datasets {verb} {name}`")
    df = pd.read_parquet(path)
    root = dataset_dir(name)
    for c in PATH_COLUMNS + VARIANT_PATH_COLUMNS:
        if c in df.columns:
            df[c] = [str(root / p) if isinstance(p, str) else None for p in df[c]]
    if split is not None:
        splits = sorted(df["split"].unique())
        if split not in splits:
            raise ConfigError(f"{name}: no split {split!r} (has {', '.join(splits)})")
        df = df[df["split"] == split].reset_index(drop=True)
    return df
