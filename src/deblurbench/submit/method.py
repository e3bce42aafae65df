"""`deblurbench submit method FOLDER`: check a method folder, try it, register it.

1. The folder is flat enough to copy safely (no links, nothing over the upload limit) and its
   ``method.yaml`` passes the card contract (``deblurbench.methods.card``).
2. No method of that name exists yet.
3. The class is imported and run on tiny test images (two crops of a scikit-image photo,
   defocused with a disk, one of odd size) with its small configuration on the CPU; the
   runner's own output check applies (same shape, finite, in [0, 1]).
4. The folder is copied to ``methods/<name>/`` and the name appended to ``run.methods`` in
   ``params.yaml`` (comments kept), so the next ``dvc repro`` runs and scores it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from deblurbench.config import ConfigError
from deblurbench.paths import project_root
from deblurbench.submit.archive import UploadError, max_upload_bytes

TINY_SIZES = [(48, 64), (37, 53)]


def tiny_images() -> list[np.ndarray]:
    """Float32 HxWx3 RGB [0, 1] defocused crops of skimage's astronaut (deterministic)."""
    import cv2
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255.0
    r = 3
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = ((xx**2 + yy**2) <= r * r).astype(np.float32)
    disk /= disk.sum()
    out = []
    for i, (h, w) in enumerate(TINY_SIZES):
        crop = photo[100 + 40 * i:100 + 40 * i + h, 150:150 + w]
        out.append(np.clip(cv2.filter2D(crop, -1, disk, borderType=cv2.BORDER_REFLECT), 0, 1))
    return out


def _check_tree(folder: Path) -> None:
    problems, total = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                problems.append(f"{p.relative_to(folder)}: symbolic link (links are refused)")
            elif p.is_file():
                total += p.stat().st_size
    if total > max_upload_bytes():
        problems.append(f"folder holds {total} bytes, over the upload limit {max_upload_bytes()}")
    if problems:
        raise UploadError(folder, problems)


def try_method(card) -> list[dict]:
    """Run the method on the tiny images; returns per-image {shape, seconds}."""
    import torch

    from deblurbench.methods.registry import load_class
    from deblurbench.methods.runner import MethodFailure, make_restorer

    params = {**card.params, **card.small_params}
    try:
        method = load_class(card)(params, device="cpu")
    except ConfigError:
        raise
    except Exception as exc:  # the submitted code's own error, named
        raise ConfigError(f"{card.folder}: constructing {card.entry} failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    report = []
    with torch.no_grad():
        for i, img in enumerate(tiny_images()):
            x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
            # test-time inputs only (views: the image itself); train_inputs never reach restore
            extras = {k: x.clone() for k in card.inputs if k != "blurry"}
            # the runner's own path: padding to pad_multiple, output checks (as `methods run`)
            restore = make_restorer(method, card, f"tiny-{i}", "fp32", "cpu", None, 0, 1)
            t0 = time.perf_counter()
            try:
                restore(x, extras)
            except MethodFailure as exc:
                raise ConfigError(f"{card.folder}: {exc}") from None
            except Exception as exc:
                raise ConfigError(f"{card.folder}: restore failed on tiny image {i} "
                                  f"{img.shape[1]}x{img.shape[0]}: {type(exc).__name__}: "
                                  f"{exc}") from exc
            report.append({"shape": list(img.shape), "seconds": time.perf_counter() - t0})
    return report


def add_to_params(name: str, params_path: Path) -> bool:
    """Append ``name`` to ``run.methods`` keeping comments; False when already listed."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    data = yaml.load(params_path.read_text()) if params_path.exists() else None
    if data is None or "run" not in data or "methods" not in data["run"]:
        raise ConfigError(f"{params_path}: no run.methods list to register {name!r} in")
    methods = data["run"]["methods"]
    if name in methods:
        return False
    methods.append(name)
    tmp = params_path.with_suffix(".yaml.tmp")
    with tmp.open("w") as fh:
        yaml.dump(data, fh)
    tmp.replace(params_path)
    return True


def submit_method(folder: str | Path, params_path: str | Path = "params.yaml") -> dict:
    """Validate, try and register a method folder; returns {name, target, tried}."""
    from deblurbench.methods.card import load_method_card
    from deblurbench.methods.registry import discover

    folder = Path(folder)
    card_path = folder / "method.yaml"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder (expected a method folder with "
                                "method.yaml and its code)")
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path}: missing; a method folder needs method.yaml")
    _check_tree(folder)
    card = load_method_card(card_path)
    target = project_root() / "methods" / card.name
    known = discover()
    if card.name in known or target.exists():
        where = known[card.name].folder if card.name in known else target
        raise ConfigError(f"{card_path}: a method named {card.name!r} already exists ({where}); "
                          "choose another name")
    tried = try_method(card)
    staging = target.with_name(f".{card.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    staging.rename(target)
    try:
        added = add_to_params(card.name, Path(params_path))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return {"name": card.name, "target": str(target), "tried": tried, "params_updated": added}
