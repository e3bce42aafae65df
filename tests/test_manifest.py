"""Cards, prepare and the manifest contract (parquet + Hugging Face dataset on disk)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import cli

from deblurbench.config import ConfigError
from deblurbench.datasets.card import load_card
from deblurbench.datasets.manifest import COLUMNS, load_manifest


def test_the_repo_card_of_the_embedded_data_set_is_valid():
    from conftest import REPO

    card = load_card(REPO / "datasets" / "synthetic-defocus.yaml")
    assert card.name == "synthetic-defocus" and card.bit_depth == 16 and card.has_gt


def test_card_with_unknown_or_missing_key_is_refused_with_file_and_key(tmp_path):
    good = (tmp_path / "x.yaml")
    base = {"name": "x", "version": "1", "title": "t", "citation": "c", "license": "l",
            "source": "embedded", "layout": "synthetic", "splits": {"test": 2}, "has_gt": True,
            "bit_depth": 16}
    import yaml

    good.write_text(yaml.safe_dump(base | {"bitdepth": 8}))
    with pytest.raises(ConfigError, match=r"x\.yaml: unknown key 'bitdepth' \(did you mean "
                                          r"'bit_depth'\?\)"):
        load_card(good)
    good.write_text(yaml.safe_dump({k: v for k, v in base.items() if k != "license"}))
    with pytest.raises(ConfigError, match=r"x\.yaml: missing required key 'license'"):
        load_card(good)
    good.write_text(yaml.safe_dump(base | {"bit_depth": 12}))
    with pytest.raises(ConfigError, match="bit_depth must be 8 or 16"):
        load_card(good)
    good.write_text(yaml.safe_dump(base | {"has_gt": "yes"}))
    with pytest.raises(ConfigError, match=r"x\.yaml\.has_gt: expected true/false"):
        load_card(good)


def test_prepare_writes_the_manifest_contract(prepared):
    df = load_manifest("synthetic-defocus")
    assert list(df.columns) == COLUMNS
    assert sorted(df["image_id"]) == ["astronaut-00", "astronaut-01", "chelsea-00", "coffee-00",
                                      "coffee-01"]
    assert df.groupby("split").size().to_dict() == {"test": 2, "train": 2, "val": 1}
    assert set(df["bit_depth"]) == {16}
    row = df[df.image_id == "coffee-00"].iloc[0]
    assert row.blurry.endswith("raw/test/blurry/coffee-00.png") and row.left is None
    assert np.load(row.blur_map).shape == (row.height, row.width)
    # Stored paths are relative, so the folder can move.
    raw = pd.read_parquet(prepared / "datasets/synthetic-defocus/manifest.parquet")
    assert raw["blurry"].iloc[0].startswith("raw/")


def test_manifest_is_also_a_hugging_face_dataset(prepared):
    from datasets import load_from_disk

    ds = load_from_disk(str(prepared / "datasets/synthetic-defocus/hf"))
    assert len(ds) == 5 and set(ds["split"]) == {"train", "val", "test"}
    first = ds[0]
    assert first["blurry"].size == (first["width"], first["height"])
    assert first["sharp"].size == first["blurry"].size


def test_unknown_split_is_refused_by_name(prepared):
    with pytest.raises(ConfigError,
                       match=r"synthetic-defocus: no split 'holdout' \(has test, train, val\)"):
        load_manifest("synthetic-defocus", "holdout")


def test_prepare_names_a_missing_sharp_image_and_keeps_the_old_manifest(prepared):
    before = (prepared / "datasets/synthetic-defocus/manifest.parquet").read_bytes()
    (prepared / "datasets/synthetic-defocus/raw/test/sharp/coffee-01.png").unlink()
    proc = cli("datasets", "prepare", "synthetic-defocus", cwd=prepared, check=False)
    assert proc.returncode == 2
    assert "missing sharp image" in proc.stderr and "coffee-01.png" in proc.stderr
    assert (prepared / "datasets/synthetic-defocus/manifest.parquet").read_bytes() == before


def test_prepare_refuses_a_pair_of_different_sizes(prepared):
    from deblurbench.io import write_png

    write_png(prepared / "datasets/synthetic-defocus/raw/test/sharp/coffee-01.png",
              np.zeros((10, 12, 3)))
    proc = cli("datasets", "prepare", "synthetic-defocus", cwd=prepared, check=False)
    assert proc.returncode == 2
    assert "coffee-01.png: size 12x10 differs from its blurry image" in proc.stderr


def test_datasets_list_shows_cards(prepared):
    out = cli("datasets", "list", cwd=prepared).stdout
    assert "synthetic-defocus" in out and "16-bit" in out and "prepared" in out
    shutil.rmtree(prepared / "datasets/synthetic-defocus")
    assert "not prepared" in cli("datasets", "list", cwd=prepared).stdout
