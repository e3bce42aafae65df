"""`synthetic-target`: blurry test images of the embedded domain with no ground truth.

PixelDP is how the field scores a method where no sharp image exists: blurry inputs only, and
no-reference metrics. That route needs a data set without ground truth, and the embedded data
has GT everywhere. So this renders new scenes of the *test* photos (same camera and blur
distribution as ``synthetic-defocus``, so the same target domain BD-Diff adapts to from the
held-out half of the training split) and keeps only the blurry image: no sharp picture and no
blur map are written. Image ids (``<photo>-t<k>``) and scene seeds differ from the paired test
split's, so these are other views, never copies. The true blur statistics are still recorded
(``raw/stats.json``): they describe the data set, they are not a label a method can read.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deblurbench.config import SynthParams
from deblurbench.datasets.synthetic import blur_stats, render_scene, split_scenes
from deblurbench.io import write_png

SPLIT = "test"  # the one split: an evaluation set, like PixelDP


def target_scenes(p: SynthParams):
    """``p.target_scenes_per_photo`` scenes of each test photo, blur stratified over them."""
    if p.target_scenes_per_photo < 1:
        raise ValueError(f"synth.target_scenes_per_photo must be at least 1, got "
                         f"{p.target_scenes_per_photo}")
    items = [(f"{photo}-t{j:02d}", photo) for photo in p.test_photos
             for j in range(p.target_scenes_per_photo)]
    return split_scenes(items, SPLIT, p, stream="target")


def make_synthetic_target(root: str | Path, p: SynthParams) -> list[dict]:
    """Write ``root/test/blurry/<id>.png`` (16-bit) for every target scene, the scene list in
    ``root/scenes.json`` and the blur statistics in ``root/stats.json``."""
    root = Path(root)
    records, maps = [], []
    for sc in tqdm(target_scenes(p), desc="synthetic-target", unit="scene"):
        _, blurred, used, focus = render_scene(sc, p)
        write_png(root / SPLIT / "blurry" / f"{sc.image_id}.png", blurred, bits=16)
        maps.append(used)
        records.append(asdict(sc) | {"focus_m": round(focus, 6), "height": blurred.shape[0],
                                     "width": blurred.shape[1],
                                     "mean_radius_px": round(float(np.mean(used)), 6)})
    (root / "scenes.json").write_text(json.dumps({"params": asdict(p), "scenes": records},
                                                 indent=1))
    (root / "stats.json").write_text(json.dumps({SPLIT: blur_stats(maps)}, indent=1))
    return records
