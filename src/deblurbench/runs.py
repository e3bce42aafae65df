"""A run as a neutral record: what was restored, by what, with which weights, and how.

``outputs/<name>/<dataset>/<split>/`` holds a run's images and ``run.json``; this module is the
only place that knows that layout. The runner and ``submit results`` write a :class:`RunRecord`;
the scorer reads one and nothing else, so scores never depend on a method's code.

A run's identity has five parts beside the data set and split: the method, its variant, the
data set it was trained on, its configuration (small or paper) and the checkpoint. The first
three name its folder (:func:`run_name`); all of them name its board row (:attr:`board_name`)
and are stored with its scores.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deblurbench.paths import atomic_file, outputs_dir

RUN_FILE = "run.json"


def run_name(method: str, dataset: str, variant: str | None = None,
             trained_on: str | None = None) -> str:
    """The run's folder under ``outputs/``: ``method[+variant][~trained_on]``, the last part
    only when it was trained on another data set than the one it restores."""
    name = method + (f"+{variant}" if variant else "")
    return name + (f"~{trained_on}" if trained_on and trained_on != dataset else "")


def run_folder(name: str, dataset: str, split: str) -> Path:
    return outputs_dir() / name / dataset / split


def output_path(name: str, dataset: str, split: str, image_id: str) -> Path:
    return run_folder(name, dataset, split) / f"{image_id}.png"


class RunRecordError(ValueError):
    """A run.json that is missing or does not hold a run record; names the file."""


@dataclass
class RunRecord:
    """``run.json``: every field a run writes and the scorer may read."""

    method: str
    method_version: str
    dataset: str
    dataset_version: str
    split: str
    config: str  # small | paper | submitted
    status: str  # running | ok | failed
    started: str
    device: str
    git_rev: str | None
    versions: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    # the card's facts the board shows (title, kind, paper, label, ...): scores need no plugin
    method_card: dict[str, Any] = field(default_factory=dict)
    source: str = "measured"  # measured | submitted
    variant: str | None = None
    trained_on: str | None = None  # the data set of the checkpoint (None: untrained)
    checkpoint: dict[str, Any] | None = None  # path, sha256, step, selected (None: untrained)
    weights: list[dict[str, Any]] = field(default_factory=list)  # pretrained parts used
    finished: str | None = None
    error: str | None = None
    precision: str = "fp32"
    seed: int = 0
    tiling: dict[str, Any] = field(default_factory=dict)
    output_bits: int = 16
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    cost: dict[str, Any] | None = None
    cost_spec: dict[str, Any] = field(default_factory=dict)
    processes: int = 1
    upload: str | None = None  # submitted: where the files came from
    card: dict[str, Any] | None = None  # submitted: the submission card

    @property
    def name(self) -> str:
        return run_name(self.method, self.dataset, self.variant, self.trained_on)

    @property
    def board_name(self) -> str:
        """The row's name on the board: the folder name, ``@paper`` for a paper config."""
        return self.name + ("@paper" if self.config == "paper" else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> RunRecord:
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise RunRecordError(f"{where}: not a run record (missing {', '.join(missing)})")
        unknown = sorted(set(data) - names)
        if unknown:
            raise RunRecordError(f"{where}: unknown run record fields {unknown}")
        return cls(**data)

    def write(self, folder: Path) -> Path:
        """Write ``folder/run.json`` atomically."""
        path = folder / RUN_FILE
        with atomic_file(path) as tmp, open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        return path


def read_record(folder: Path) -> RunRecord:
    path = folder / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunRecordError(f"{path}: unreadable run record ({exc})") from None
    if not isinstance(data, dict):
        raise RunRecordError(f"{path}: not a run record")
    return RunRecord.from_dict(data, str(path))


def load_run(name: str, dataset: str, split: str) -> RunRecord:
    """The record of run ``name`` on (dataset, split); says how to make it when absent."""
    folder = run_folder(name, dataset, split)
    try:
        return read_record(folder)
    except FileNotFoundError:
        method = name.split("~")[0].split("+")[0]
        raise FileNotFoundError(f"{folder / RUN_FILE}: no run; run `deblurbench methods run "
                                f"{method} --dataset {dataset} --split {split}` first") from None


def latency_ms_per_mp(images: dict[str, dict[str, Any]]) -> float | None:
    """Median milliseconds per megapixel over a run's images (None for an empty run)."""
    import numpy as np

    per = [1000 * v["seconds"] / v["megapixels"] for v in images.values()
           if v.get("megapixels")]
    return float(np.median(per)) if per else None
