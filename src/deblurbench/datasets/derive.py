"""Resized evaluation variants as data sets of their own (e.g. RealDOF at 1120x1680).

Papers sometimes evaluate a data set at another size than its native one (MBSD scores RealDOF
resized to 1120x1680). A resized copy has to be *run* on, not only scored against, so it
becomes a new data set ``datasets/<variant>/`` with its own card (``layout: derived``): every
blurry and sharp image resized to the card variant's ``[height, width]`` at the source's bit
depth, and the source's subset lists copied. Prepare it and list it under ``datasets`` like any
other. Filter: area averaging when shrinking (no aliasing), bicubic when enlarging; the papers
do not state theirs, so the filter is part of the derived card and of its version.
Dual-pixel left/right views are not carried over (no method here reads them at another size).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from deblurbench.datasets.card import DatasetCard, Variant, load_card
from deblurbench.datasets.manifest import card_path, load_manifest
from deblurbench.io import read_image, write_png
from deblurbench.paths import dataset_dir, datasets_dir

SHRINK, ENLARGE = "area", "bicubic"


def find_variant(variant: str) -> tuple[DatasetCard, Variant]:
    """The card declaring resize variant ``variant``, searched over every card."""
    known = []
    for path in sorted(datasets_dir().glob("*.yaml")):
        card = load_card(path)
        for v in card.variants:
            if v.resize:
                known.append(v.name)
                if v.name == variant:
                    return card, v
    raise ValueError(f"no card declares a resize variant {variant!r} (known: "
                     f"{', '.join(known) or 'none'})")


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area averaging to shrink, bicubic (clipped to [0, 1]) to enlarge, per axis product."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrink = height * width <= h * w
    out = cv2.resize(image, (width, height),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def derive_resized(variant: str) -> Path:
    """Write ``datasets/<variant>/raw`` and ``datasets/<variant>.yaml``; returns the raw folder.

    Written to a sibling folder first and swapped in at the end: a failure leaves the previous
    copy (if any) untouched and nothing half-written behind.
    """
    card, v = find_variant(variant)
    height, width = v.resize
    df = load_manifest(card.name)
    final = dataset_dir(variant) / "raw"
    partial = dataset_dir(variant) / ".raw.partial"
    shutil.rmtree(partial, ignore_errors=True)
    filters = set()
    try:
        for r in tqdm(list(df.itertuples(index=False)), desc=f"derive {variant}", unit="pair"):
            for kind in ("blurry", "sharp"):
                src = getattr(r, kind)
                if not isinstance(src, str):
                    continue
                img = read_image(src)
                filters.add(SHRINK if height * width <= img.shape[0] * img.shape[1] else ENLARGE)
                write_png(partial / r.split / kind / f"{r.image_id}.png",
                          resize(img, height, width), bits=card.bit_depth)
        (partial / "derive.json").write_text(json.dumps(
            {"source": card.name, "source_version": card.version, "variant": variant,
             "resize": [height, width], "filters": sorted(filters), "pairs": len(df)}, indent=1))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for rel in card.subsets.values():
        src = dataset_dir(card.name) / rel
        (dataset_dir(variant) / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dataset_dir(variant) / rel)
    counts = df.groupby("split").size().to_dict()
    filt = "+".join(sorted(filters)) or SHRINK
    derived = {
        "name": variant, "version": f"{card.version}+resize-{height}x{width}-{filt}",
        "title": f"{card.title}, resized to {height}x{width}",
        "citation": card.citation, "license": card.license, "source": "embedded",
        "layout": "derived", "splits": {s: int(n) for s, n in sorted(counts.items())},
        "has_gt": card.has_gt, "bit_depth": card.bit_depth,
        "native_resolution": [height, width], "eval_resolution": [height, width],
        "homepage": card.homepage, "dual_pixel": False, "subsets": dict(card.subsets),
        "notes": (f"Derived by `deblurbench datasets derive {variant}` from {card.name} "
                  f"{card.version}: {v.description.strip()} Resampling: {filt} (area averaging "
                  "to shrink, bicubic to enlarge; the source paper states none)."),
    }
    card_path(variant).write_text(yaml.safe_dump(derived, sort_keys=False))
    return final
