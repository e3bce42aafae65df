"""Where things live: everything is relative to the project root (the folder with dvc.yaml)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def project_root() -> Path:
    """``$DEBLURBENCH_ROOT`` if set, else the nearest folder upwards holding ``params.yaml``."""
    env = os.environ.get("DEBLURBENCH_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "params.yaml").exists() or (p / "dvc.yaml").exists():
            return p
    return here


def datasets_dir() -> Path:
    return project_root() / "datasets"


def dataset_dir(name: str) -> Path:
    return datasets_dir() / name


def outputs_dir() -> Path:
    return project_root() / "outputs"


def run_dir(method: str, dataset: str, split: str) -> Path:
    return outputs_dir() / method / dataset / split


def pba_dir(dataset: str) -> Path:
    """Where ``deblurbench annotate pba`` stores a data set's blur levels (the DVC stage's
    output): ``<id>.npz`` (all scales) and ``<id>_levels.png`` (the per-pixel map)."""
    return project_root() / "annotate" / "pba" / dataset


@contextmanager
def atomic_file(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block succeeds it replaces
    ``path`` in one rename, so readers never see half a file, and a crash leaves the old one.
    ``suffix`` keeps an encoder's file type (``.png``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
