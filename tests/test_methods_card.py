"""The method plugin contract: every bad `method.yaml` field fails with the file and the field."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from deblurbench.config import ConfigError
from deblurbench.methods.card import load_method_card, resolve_params
from deblurbench.methods.registry import discover, get_card, load_class

GOOD = {"name": "demo", "version": "1.0", "title": "Demo", "entry": "demo:Demo",
        "kind": "learned", "params": {"width": 8, "steps": 100}, "small_params": {"steps": 5}}
CODE = ("from deblurbench.methods.base import Method\n"
        "class Demo(Method):\n    def restore(self, batch):\n        return batch\n"
        "class NotAMethod:\n    pass\n")


def write_plugin(root, card: dict, folder: str | None = None, code: str = CODE):
    d = root / (folder or card.get("name", "demo"))
    d.mkdir(parents=True, exist_ok=True)
    (d / "method.yaml").write_text(yaml.safe_dump(card))
    (d / "demo.py").write_text(code)
    return d / "method.yaml"


def test_good_card_loads_and_resolves_small_params(tmp_path):
    card = load_method_card(write_plugin(tmp_path, GOOD))
    assert card.name == "demo" and card.folder == (tmp_path / "demo").resolve()
    assert resolve_params(card, small=False) == {"width": 8, "steps": 100}
    assert resolve_params(card, small=True) == {"width": 8, "steps": 5}


def test_a_variant_overrides_the_params_at_either_size_and_an_unknown_one_is_refused(tmp_path):
    card = load_method_card(write_plugin(tmp_path, GOOD | {"variants": {"wide": {"width": 16}}}))
    assert resolve_params(card, small=True, variant="wide") == {"width": 16, "steps": 5}
    assert resolve_params(card, small=False, variant="wide") == {"width": 16, "steps": 100}
    with pytest.raises(ConfigError, match="no variant 'narrow'.*wide"):
        resolve_params(card, small=True, variant="narrow")


@pytest.mark.parametrize("change, field, words", [
    ({"name": "Demo_X"}, "name", "lowercase"),
    ({"version": " "}, "version", "empty"),
    ({"version": 1.0}, "version", "expected a string"),
    ({"title": ""}, "title", "empty"),
    ({"entry": "demo.Demo"}, "entry", "module:Class"),
    ({"entry": "missing:Demo"}, "entry", "missing.py not found"),
    ({"kind": "magic"}, "kind", "expected one of"),
    ({"inputs": ["left"]}, "inputs", "must include 'blurry'"),
    ({"inputs": ["blurry", "depth"]}, "inputs", "unknown ['depth']"),
    ({"inputs": ["blurry", "blur_map"]}, "inputs", "list them under train_inputs"),
    ({"train_inputs": ["blur_map"]}, "train_inputs", "only a trainable method"),
    ({"trainable": True, "train_inputs": ["depth"]}, "train_inputs", "unknown"),
    ({"variants": {"wide": {"depth": 3}}}, "variants.wide", "does not define: ['depth']"),
    ({"variants": {"Wide": {"width": 3}}}, "variants", "variant name 'Wide'"),
    ({"inputs": ["blurry", "left", "left"]}, "inputs", "twice"),
    ({"device": "tpu"}, "device", "expected one of"),
    ({"device": "gpu", "small_params": {}}, "small_params", "needs a GPU"),
    ({"trainable": "yes"}, "trainable", "true/false"),
    ({"params": [1, 2]}, "params", "mapping"),
    ({"small_params": {"stepz": 5}}, "small_params", "'stepz'"),
    ({"tile_size": 8}, "tile_size", "at least 16"),
    ({"tile_size": 64, "tile_overlap": 32}, "tile_overlap", "half"),
    ({"pad_multiple": 0}, "pad_multiple", ">= 1"),
    ({"tile_size": 100, "pad_multiple": 8}, "tile_size", "multiple of pad_multiple"),
    ({"amp": "on"}, "amp", "true/false"),
    ({"needs_training": False}, "needs_training", "only a trainable"),
    ({"colour": "red"}, "colour", "unknown key"),
    ({"folder": "/elsewhere"}, "folder", "unknown key"),
])
def test_each_bad_field_is_named(tmp_path, change, field, words):
    path = write_plugin(tmp_path, GOOD | change, folder="demo")
    with pytest.raises(ConfigError) as err:
        load_method_card(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg and words in msg, msg


@pytest.mark.parametrize("missing", ["name", "version", "title", "entry", "kind"])
def test_missing_required_key(tmp_path, missing):
    card = {k: v for k, v in GOOD.items() if k != missing}
    path = write_plugin(tmp_path, card, folder="demo")
    with pytest.raises(ConfigError, match=f"missing required key '{missing}'"):
        load_method_card(path)


def test_folder_must_equal_name(tmp_path):
    path = write_plugin(tmp_path, GOOD, folder="other")
    with pytest.raises(ConfigError, match="folder name 'other' must equal name 'demo'"):
        load_method_card(path)


def test_entry_class_must_exist_subclass_method_and_train_if_trainable(tmp_path):
    card = load_method_card(write_plugin(tmp_path, GOOD | {"entry": "demo:Nope"}))
    with pytest.raises(ConfigError, match="entry class 'Nope' not found in demo.py"):
        load_class(card)
    card = load_method_card(write_plugin(tmp_path, GOOD | {"entry": "demo:NotAMethod"}))
    with pytest.raises(ConfigError, match="not a deblurbench.methods.base.Method subclass"):
        load_class(card)
    card = load_method_card(write_plugin(tmp_path, GOOD | {"name": "demo-t", "trainable": True},
                                         folder="demo-t"))
    with pytest.raises(ConfigError, match="does not implement train"):
        load_class(card)


def test_unknown_method_suggests_close_names_and_duplicates_fail(project, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="did you mean 'unsharp-mask'"):
        get_card("unsharp-mesk")
    write_plugin(tmp_path / "extra", GOOD | {"name": "identity"}, folder="identity")
    monkeypatch.setenv("DEBLURBENCH_METHOD_PATH", str(tmp_path / "extra"))
    with pytest.raises(ConfigError, match="method 'identity' already defined"):
        discover()


def test_listing_imports_no_method_code_nor_torch(project):
    code = ("import sys; from deblurbench.methods.registry import discover; "
            "names = sorted(discover()); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert not any(m.startswith('deblurbench_plugins') for m in sys.modules); "
            "print(','.join(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=project, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(",") == sorted(
        ["identity", "jdrl", "nafnet", "rddm", "mbsd", "deblurdiff", "bd-diff", "unsharp-mask",
         "wiener", "richardson-lucy", "sv-deconv"])
