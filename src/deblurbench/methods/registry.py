"""Method discovery: every `method.yaml` under the method folders; listing imports no method
code (nor torch): a method's module is imported only by :func:`load_class`."""

from __future__ import annotations

import difflib
import hashlib
import importlib.machinery
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


def _plugin_package(card: MethodCard) -> str:
    """The method folder as a package ``deblurbench_plugins.<name>``, so that its modules may
    import each other relatively (``from .unet import UNet``); ``__init__.py`` is optional."""
    import types

    root = "deblurbench_plugins"
    if root not in sys.modules:
        ns = types.ModuleType(root)
        ns.__path__ = []  # a namespace for every plugin, holding no files of its own
        sys.modules[root] = ns
    # the folder's hash in the name: two projects' plugins of one name never share a module
    tag = hashlib.sha1(str(card.folder).encode()).hexdigest()[:8]
    pkg = f"{root}.{card.name.replace('-', '_')}_{tag}"
    if pkg not in sys.modules:
        init = card.folder / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(
                pkg, init, submodule_search_locations=[str(card.folder)])
        else:
            spec = importlib.machinery.ModuleSpec(pkg, None, is_package=True)
            spec.submodule_search_locations = [str(card.folder)]
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[pkg] = module
        try:
            if spec.loader is not None:
                spec.loader.exec_module(module)
        except Exception:
            del sys.modules[pkg]
            raise
    return pkg


def load_class(card: MethodCard) -> type[Method]:
    """Import the entry module of the method folder, loaded as a package of its own."""
    from deblurbench.methods.base import Method

    module_name, cls_name = card.entry.split(":")
    gone = [r for r in card.requires if importlib.util.find_spec(r) is None]
    if gone:
        raise ConfigError(f"{card.folder / 'method.yaml'}: requires {', '.join(gone)}, not "
                          f"installed here (pip install {' '.join(gone)})")
    pkg = _plugin_package(card)
    try:
        module = importlib.import_module(f"{pkg}.{module_name}")
    except Exception:
        for key in [k for k in sys.modules if k == pkg or k.startswith(pkg + ".")]:
            del sys.modules[key]  # a fixed file imports afresh in the same process
        raise
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ConfigError(f"{card.folder / 'method.yaml'}: entry class {cls_name!r} not found "
                          f"in {module_name}.py")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"{card.folder / 'method.yaml'}: {card.entry} is not a "
                          f"deblurbench.methods.base.Method subclass")
    cls.card = card  # the method's pretrained parts are looked up on its card
    if card.trainable and cls.train is Method.train:
        raise ConfigError(f"{card.folder / 'method.yaml'}: trainable: true but {card.entry} "
                          f"does not implement train(loader, params, callbacks)")
    return cls
