"""`methods/<name>/method.yaml`, validated strictly; plugins are found by this file alone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deblurbench.config import ConfigError, from_dict, load_yaml


@dataclass(frozen=True)
class MethodCard:
    name: str
    version: str
    title: str
    entry: str  # "module:Class", module relative to the method folder
    kind: Literal["baseline", "classical", "learned", "diffusion"]
    paper: str | None = None
    description: str = ""
    license: str = "MIT"
    inputs: list[str] = field(default_factory=lambda: ["blurry"])
    device: Literal["cpu", "gpu"] = "cpu"  # "gpu": needs a GPU for its paper configuration
    trainable: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    small_params: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # honest note the leaderboard shows (e.g. "tiny, random init, CPU")
    folder: Path = Path(".")


_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*$")
_INPUTS = {"blurry", "left", "right", "blur_map"}


def load_method_card(path: str | Path) -> MethodCard:
    path = Path(path)
    data = load_yaml(path)
    if isinstance(data, dict) and "folder" in data:
        raise ConfigError(f"{path}: unknown key 'folder'")
    card = from_dict(MethodCard, data, str(path))
    if not _ENTRY.match(card.entry):
        raise ConfigError(f"{path}: entry must be 'module:Class', got {card.entry!r}")
    module = card.entry.split(":")[0]
    if not (path.parent / f"{module}.py").is_file():
        raise ConfigError(f"{path}: entry module {module}.py not found in {path.parent}")
    if path.parent.name != card.name:
        raise ConfigError(f"{path}: folder name {path.parent.name!r} must equal name {card.name!r}")
    bad = sorted(set(card.inputs) - _INPUTS)
    if bad or "blurry" not in card.inputs:
        raise ConfigError(f"{path}: inputs must include 'blurry' and be among {sorted(_INPUTS)}")
    from dataclasses import replace

    return replace(card, folder=path.parent.resolve())
