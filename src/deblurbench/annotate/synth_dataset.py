"""Synthetic data sets made with the blur generators of :mod:`deblurbench.annotate.synth`:
one dispatch over every kind the CLI offers (``deblurbench synth KIND --from DATASET``), and the
builder that blurs a prepared data set's sharp images into a new data set, with its card and
manifest. The generators themselves know nothing of data sets."""

from __future__ import annotations

import numpy as np

from deblurbench.annotate.synth import (
    CORRUPTIONS,
    Blurred,
    SeedLike,
    as_rng,
    corrupt,
    defocus,
    motion,
    motion_nonuniform,
)

KINDS = ("defocus", "defocus-gaussian", "defocus-catseye", "motion", "motion-nonuniform",
         "motion-mixed", *(f"corrupt-{c}" for c in CORRUPTIONS))


def generate(kind: str, image: np.ndarray, seed: SeedLike, *, severity: int = 3,
             kernel_size: int = 31, noise: float = 0.0) -> Blurred:
    """Dispatch ``kind`` (one of :data:`KINDS`) with CLI-level settings."""
    if kind == "defocus":
        return defocus(image, seed, model="disk", read_sigma=noise)
    if kind == "defocus-gaussian":
        return defocus(image, seed, model="gaussian", read_sigma=noise)
    if kind == "defocus-catseye":
        return defocus(image, seed, model="disk", cats_eye=0.6, read_sigma=noise)
    if kind == "motion":
        return motion(image, seed, size=kernel_size)
    if kind == "motion-nonuniform":
        return motion_nonuniform(image, seed, size=kernel_size)
    if kind == "motion-mixed":  # DeblurDiff's training mix: uniform or per-segment, 1:1
        rng = as_rng(seed)
        fn = motion if rng.random() < 0.5 else motion_nonuniform
        return fn(image, rng, size=kernel_size)
    if kind.startswith("corrupt-"):
        return corrupt(image, kind.removeprefix("corrupt-"), severity, seed)
    raise ValueError(f"unknown synthetic kind {kind!r} (known: {', '.join(KINDS)})")


def _image_seed(seed: int, image_id: str) -> np.random.Generator:
    import zlib

    return np.random.default_rng([seed, zlib.crc32(image_id.encode())])


def make_from_dataset(kind: str, source: str, name: str, *, seed: int = 0, severity: int = 3,
                      kernel_size: int = 31, noise: float = 0.0) -> list[dict]:
    """Blur every sharp image of prepared data set ``source`` into new data set ``name``:
    ``datasets/<name>/raw/{split}/{sharp,blurry,blur_map,truth}`` (synthetic layout; ``truth``
    holds each pair's kernels and masks as npz), the card ``datasets/<name>.yaml`` and the
    manifest."""
    import json
    import os
    import shutil

    import yaml
    from tqdm import tqdm

    from deblurbench.datasets.manifest import card_path, load_manifest, prepare
    from deblurbench.io import read_image, write_png
    from deblurbench.paths import dataset_dir

    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r} (known: {', '.join(KINDS)})")
    if name == source:
        raise ValueError(f"--out {name!r} would overwrite its source data set")
    df = load_manifest(source)
    rows = [r for r in df.itertuples(index=False) if isinstance(r.sharp, str)]
    if not rows:
        raise ValueError(f"{source}: no sharp images to blur (a data set without ground truth)")
    # Written beside the old copy and swapped in at the end: a failure keeps what was there.
    final = dataset_dir(name) / "raw"
    raw = final.parent / ".raw.incoming"
    shutil.rmtree(raw, ignore_errors=True)
    records = []
    for r in tqdm(rows, desc=f"synth {kind} from {source}", unit="img"):
        sharp = read_image(r.sharp)
        try:
            res = generate(kind, sharp, _image_seed(seed, r.image_id), severity=severity,
                           kernel_size=kernel_size, noise=noise)
        except ValueError as exc:
            raise ValueError(f"{r.sharp}: {exc}") from None
        base = raw / r.split
        write_png(base / "sharp" / f"{r.image_id}.png", sharp, bits=16)
        write_png(base / "blurry" / f"{r.image_id}.png", res.image, bits=16)
        if res.blur_map is not None:
            (base / "blur_map").mkdir(parents=True, exist_ok=True)
            np.save(base / "blur_map" / f"{r.image_id}.npy", res.blur_map)
        (base / "truth").mkdir(parents=True, exist_ok=True)
        arrays = dict(res.kernels)
        if res.masks is not None:
            arrays["masks"] = res.masks.astype(np.float16)
        np.savez_compressed(base / "truth" / f"{r.image_id}.npz", **arrays,
                            meta=np.array(json.dumps(res.meta, sort_keys=True)))
        records.append({"split": r.split, "image_id": r.image_id, **res.meta})
    (raw / "synth.json").write_text(json.dumps(
        {"kind": kind, "source": source, "seed": seed, "severity": severity,
         "kernel_size": kernel_size, "noise": noise, "pairs": records}, indent=1))
    splits = sorted({r.split for r in rows})
    card = {"name": name, "version": "1.0",
            "title": f"Synthetic {kind} blur of {source}'s sharp images",
            "citation": f"DeblurBench synthetic {kind} over {source} (see datasets/{source}.yaml)",
            "license": f"as {source}", "source": "embedded", "layout": "synthetic",
            "splits": {s: None for s in splits}, "has_gt": True, "bit_depth": 16,
            "notes": f"Made by `deblurbench synth {kind} --from {source} --out {name}` (seed "
                     f"{seed}, severity {severity}, kernel size {kernel_size}, noise {noise}). "
                     f"raw/<split>/truth/<id>.npz holds the true kernels (and masks)."}
    old = final.parent / ".raw.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(raw, final)
    shutil.rmtree(old, ignore_errors=True)
    card_path(name).write_text(yaml.safe_dump(card, sort_keys=False))
    prepare(name)  # card + manifest: the new data set is ready for the rest of the pipeline
    return records
