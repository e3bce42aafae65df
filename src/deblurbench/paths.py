"""Where things live: everything is relative to the project root (the folder with dvc.yaml)."""

from __future__ import annotations

import os
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
