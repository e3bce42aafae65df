"""Method discovery: every `method.yaml` under the method folders; listing imports no method
code (nor torch): a method's module is imported only by :func:`load_class`."""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deblurbench.config import ConfigError
from deblurbench.methods.card import MethodCard, load_method_card
from deblurbench.paths import project_root

if TYPE_CHECKING:
    from deblurbench.methods.base import Method


def method_dirs() -> list[Path]:
    """`<root>/methods` plus any folders in ``$DEBLURBENCH_METHOD_PATH`` (os.pathsep-separated)."""
    dirs = [project_root() / "methods"]
    extra = os.environ.get("DEBLURBENCH_METHOD_PATH", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


def discover() -> dict[str, MethodCard]:
    cards: dict[str, MethodCard] = {}
    for d in method_dirs():
        for path in sorted(d.glob("*/method.yaml")):
            card = load_method_card(path)
            if card.name in cards:
                raise ConfigError(f"{path}: method {card.name!r} already defined in "
                                  f"{cards[card.name].folder}")
            cards[card.name] = card
    return cards


def get_card(name: str) -> MethodCard:
    cards = discover()
    if name not in cards:
        close = difflib.get_close_matches(name, list(cards), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown method {name!r}{hint} (known: {', '.join(sorted(cards))})")
    return cards[name]


def load_class(card: MethodCard) -> type[Method]:
    """Import the entry module from the method folder under a private, unique module name."""
    from deblurbench.methods.base import Method

    module_name, cls_name = card.entry.split(":")
    qual = f"deblurbench_plugins.{card.name.replace('-', '_')}.{module_name}"
    if qual in sys.modules:
        module = sys.modules[qual]
    else:
        spec = importlib.util.spec_from_file_location(qual, card.folder / f"{module_name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[qual] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[qual]
            raise
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ConfigError(f"{card.folder / 'method.yaml'}: entry class {cls_name!r} not found "
                          f"in {module_name}.py")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"{card.folder / 'method.yaml'}: {card.entry} is not a "
                          f"deblurbench.methods.base.Method subclass")
    if card.trainable and cls.train is Method.train:
        raise ConfigError(f"{card.folder / 'method.yaml'}: trainable: true but {card.entry} "
                          f"does not implement train(loader, params, callbacks)")
    return cls
