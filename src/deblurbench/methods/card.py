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
from deblurbench.inputs import check_lists
from deblurbench.weights import Pretrained


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
    inputs: list[str] = field(default_factory=lambda: ["blurry"])  # what restore receives
    train_inputs: list[str] = field(default_factory=list)  # supervision only train sees
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
    # named parameter overrides (a paper's ablations): `methods run NAME --variant V`
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # pretrained parts (id, title, files with sha256): loaded when imported, else random init
    pretrained: list[Pretrained] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)  # importable packages the code needs
    folder: Path = Path(".")


_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*$")


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
    why = check_lists(card.inputs, card.train_inputs)
    if why:
        key, _, text = why.partition(": ")
        raise bad(key, text)
    if card.train_inputs and not card.trainable:
        raise bad("train_inputs", "only a trainable method has training inputs")
    ids = [p.id for p in card.pretrained]
    if len(set(ids)) != len(ids):
        raise bad("pretrained", f"an id is listed twice: {ids}")
    for part in card.pretrained:
        for w in part.files:
            if w.kind not in ("pyiqa", "torchvision", "clip", "hf"):
                raise bad(f"pretrained.{part.id}", f"file {w.name}: kind must be pyiqa, "
                                                   f"torchvision, clip or hf, got {w.kind!r}")
            if part.digests not in ("published", "recorded"):
                raise bad(f"pretrained.{part.id}", f"digests must be published or recorded, "
                                                   f"got {part.digests!r}")
            if part.digests == "recorded" and w.kind == "hf" and w.sha256 is None:
                continue  # a hub snapshot whose digests are recorded at load (weights.py)
            if not (w.sha256 and re.fullmatch(r"[0-9a-f]{64}", w.sha256)):
                raise bad(f"pretrained.{part.id}", f"file {w.name}: needs its sha256 (64 hex "
                                                   f"digits) so that a wrong copy is refused")
    for v, over in card.variants.items():
        if not _NAME.match(v):
            raise bad("variants", f"variant name {v!r}: lowercase letters, digits and dashes")
        extra_v = sorted(set(over) - set(card.params))
        if extra_v:
            raise bad(f"variants.{v}", f"overrides keys that params does not define: {extra_v}")
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


def resolve_params(card: MethodCard, small: bool, variant: str | None = None,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The paper params, overridden by ``small_params`` for a small (CPU) configuration, then
    by the variant's overrides (an ablation changes the same knob at either size), then by
    ``overrides`` (params.yaml ``train.overrides``: a training budget)."""
    if variant is not None and variant not in card.variants:
        known = ", ".join(sorted(card.variants)) or "none"
        raise ConfigError(f"{card.folder / 'method.yaml'}: no variant {variant!r} "
                          f"(variants: {known})")
    over = card.variants[variant] if variant else {}
    extra = sorted(set(overrides or {}) - set(card.params))
    if extra:
        raise ConfigError(f"params.yaml train.overrides.{card.name}: keys the card's params do "
                          f"not define: {extra}")
    return {**card.params, **(card.small_params if small else {}), **over, **(overrides or {})}
