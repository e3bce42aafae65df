"""`methods/<name>/method.yaml`, validated strictly; plugins are found by this file alone.

A card that has an unknown or missing key, a wrong type, or a value that contradicts another
field fails with the file and the field named, before any of the method's code is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from deblurbench.config import ConfigError, from_dict, load_yaml


@dataclass(frozen=True)
class MethodCard:
    name: str  # lowercase letters, digits and dashes; equals the folder name
    version: str  # bump it whenever outputs may change; results are keyed by it
    title: str
    entry: str  # "module:Class", module relative to the method folder
    kind: Literal["baseline", "classical", "learned", "diffusion"]
    paper: str | None = None  # title / venue of the paper the method comes from
    citation: str | None = None  # BibTeX or a plain reference
    description: str = ""
    license: str = "MIT"
    inputs: list[str] = field(default_factory=lambda: ["blurry"])
    device: Literal["cpu", "gpu"] = "cpu"  # "gpu": its paper configuration needs a GPU
    trainable: bool = False  # True: `methods train` makes a checkpoint that `methods run` uses
    needs_training: bool = True  # False: a trainable method may run on its card params untrained
    params: dict[str, Any] = field(default_factory=dict)  # the paper configuration
    small_params: dict[str, Any] = field(default_factory=dict)  # overrides for CPU-sized runs
    label: str = ""  # honest note the leaderboard shows (e.g. "tiny, random init, CPU")
    tile_size: int | None = None  # runner tiles images larger than this (pixels per side)
    tile_overlap: int = 32  # pixels shared by neighbouring tiles, blended linearly
    pad_multiple: int = 1  # runner reflect-pads H and W to a multiple of this, then crops
    amp: bool = False  # True: the runner may use bf16 autocast on a GPU
    folder: Path = Path(".")


_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*$")
INPUTS = {"blurry", "left", "right", "blur_map"}


def load_method_card(path: str | Path) -> MethodCard:
    path = Path(path)
    data = load_yaml(path)
    if isinstance(data, dict) and "folder" in data:
        raise ConfigError(f"{path}: unknown key 'folder' (the folder is where the card lies)")
    card = from_dict(MethodCard, data, str(path))
    _check(card, path)
    return replace(card, folder=path.parent.resolve())


def _check(card: MethodCard, path: Path) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {why}")

    if not _NAME.match(card.name):
        raise bad("name", f"must be lowercase letters, digits and dashes, got {card.name!r}")
    if path.parent.name != card.name:
        raise bad("name", f"folder name {path.parent.name!r} must equal name {card.name!r}")
    if not card.version.strip():
        raise bad("version", "must not be empty")
    if not card.title.strip():
        raise bad("title", "must not be empty")
    if not _ENTRY.match(card.entry):
        raise bad("entry", f"must be 'module:Class', got {card.entry!r}")
    module = card.entry.split(":")[0]
    if not (path.parent / f"{module}.py").is_file():
        raise bad("entry", f"entry module {module}.py not found in {path.parent}")
    unknown = sorted(set(card.inputs) - INPUTS)
    if unknown or "blurry" not in card.inputs:
        raise bad("inputs", f"must include 'blurry' and be among {sorted(INPUTS)}, "
                            f"got {card.inputs}")
    if len(set(card.inputs)) != len(card.inputs):
        raise bad("inputs", f"lists an input twice: {card.inputs}")
    if not card.needs_training and not card.trainable:
        raise bad("needs_training", "only a trainable method can say whether it needs training")
    extra = sorted(set(card.small_params) - set(card.params))
    if extra:
        raise bad("small_params", f"overrides keys that params does not define: {extra}")
    if card.device == "gpu" and not card.small_params:
        raise bad("small_params", "a method whose paper configuration needs a GPU must give "
                                  "small_params for CPU runs")
    if card.tile_size is not None and card.tile_size < 16:
        raise bad("tile_size", f"must be at least 16 pixels, got {card.tile_size}")
    if card.tile_overlap < 0 or (card.tile_size and card.tile_overlap * 2 >= card.tile_size):
        raise bad("tile_overlap", f"must be >= 0 and under half of tile_size, "
                                  f"got {card.tile_overlap}")
    if card.pad_multiple < 1:
        raise bad("pad_multiple", f"must be >= 1, got {card.pad_multiple}")
    if card.tile_size and card.tile_size % card.pad_multiple:
        raise bad("tile_size", f"{card.tile_size} is not a multiple of pad_multiple "
                               f"{card.pad_multiple}")


def resolve_params(card: MethodCard, small: bool) -> dict[str, Any]:
    """The paper params, overridden by ``small_params`` for a small (CPU) configuration."""
    return {**card.params, **(card.small_params if small else {})}
