"""Data set cards: `datasets/<name>.yaml`, validated strictly (unknown keys refused)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deblurbench.config import ConfigError, from_dict, load_yaml


@dataclass(frozen=True)
class SourceUrl:
    """One place the data can be fetched from; ``manual`` explains a step a script cannot do."""

    url: str
    kind: Literal["official", "mirror"] = "official"
    archive: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    manual: str | None = None
    confirmed_from: str | None = None


@dataclass(frozen=True)
class Variant:
    """An evaluation variant derived from the data set (resized, flow-aligned, ...)."""

    name: str
    description: str
    resize: list[int] | None = None  # [height, width]
    aligned: bool = False


@dataclass(frozen=True)
class DatasetCard:
    name: str
    version: str
    title: str
    citation: str
    license: str
    source: Literal["embedded", "download"]
    layout: str
    splits: dict[str, int | None]
    has_gt: bool
    bit_depth: int
    native_resolution: list[int] | None = None  # [height, width]
    eval_resolution: list[int] | None = None
    homepage: str | None = None
    urls: list[SourceUrl] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    dual_pixel: bool = False
    subsets: dict[str, str] = field(default_factory=dict)
    unconfirmed: list[str] = field(default_factory=list)
    notes: str = ""


_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def load_card(path: str | Path) -> DatasetCard:
    """Load and validate one card; the file name must match the card's ``name``."""
    path = Path(path)
    card = from_dict(DatasetCard, load_yaml(path), str(path))
    if not _NAME.match(card.name):
        raise ConfigError(f"{path}: name {card.name!r} must be lower-case letters, digits, '-'")
    if path.stem != card.name:
        raise ConfigError(f"{path}: file name must be {card.name}.yaml")
    if card.bit_depth not in (8, 16):
        raise ConfigError(f"{path}: bit_depth must be 8 or 16, got {card.bit_depth}")
    for key in ("native_resolution", "eval_resolution"):
        res = getattr(card, key)
        if res is not None and (len(res) != 2 or min(res) <= 0):
            raise ConfigError(f"{path}: {key} must be [height, width], got {res}")
    return card
