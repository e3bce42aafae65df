"""`datasets derive`: a card's resize variant (RealDOF at 1120x1680 for MBSD) becomes a data
set of its own that methods run on and the scorer scores, at the source's bit depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from conftest import cli
from realdata_kit import build_realdof, write_card

from deblurbench.datasets.card import load_card
from deblurbench.datasets.derive import derive_resized, resize
from deblurbench.datasets.manifest import load_manifest, prepare
from deblurbench.io import read_image, read_image_with_info

SMALL = {"name": "realdof-32x48", "description": "shrunk for the test", "resize": [32, 48]}


@pytest.fixture
def realdof(project):
    build_realdof(project / "datasets/realdof/raw", 3)
    write_card(project, "realdof", {"test": 3}, None, None, variants=[SMALL])
    prepare("realdof")
    return project


def test_the_variant_is_a_preparable_data_set_with_resized_pairs_and_a_card(realdof):
    derive_resized("realdof-32x48")
    card = load_card(realdof / "datasets/realdof-32x48.yaml")
    assert (card.layout, card.bit_depth, card.eval_resolution) == ("derived", 8, [32, 48])
    assert card.version == "1.0+resize-32x48-area" and "area averaging" in card.notes
    prepare("realdof-32x48")
    df = load_manifest("realdof-32x48")
    src = load_manifest("realdof").set_index("image_id")
    assert sorted(df.image_id) == sorted(src.index) and set(df.split) == {"test"}
    for r in df.itertuples():
        img, info = read_image_with_info(r.sharp)
        assert img.shape == (32, 48, 3) and info.bit_depth == 8
        # values are the area average of the source, to 8-bit quantisation
        want = cv2.resize(read_image(src.loc[r.image_id, "sharp"]), (48, 32),
                          interpolation=cv2.INTER_AREA)
        assert np.abs(img - want).max() <= 0.5 / 255 + 1e-6


def test_unknown_variant_is_refused_naming_the_known_ones(realdof):
    with pytest.raises(ValueError, match=r"no card declares a resize variant 'nope' "
                                         r"\(known: realdof-32x48\)"):
        derive_resized("nope")


def test_enlarging_is_bicubic_and_stays_in_range():
    img = np.zeros((4, 4, 3), np.float32)
    img[1:3, 1:3] = 1.0
    out = resize(img, 8, 8)
    assert out.shape == (8, 8, 3) and out.min() >= 0.0 and out.max() <= 1.0
    assert resize(img, 4, 4) is img


def test_cli_derive_then_run_and_score_the_resized_set(realdof):
    out = cli("datasets", "derive", "realdof-32x48", cwd=realdof).stdout
    assert "next: deblurbench datasets prepare realdof-32x48" in out
    cli("datasets", "prepare", "realdof-32x48", cwd=realdof)
    params = yaml.safe_load((realdof / "params.yaml").read_text())
    params["score"]["metrics"] = ["psnr"]
    (realdof / "params.yaml").write_text(yaml.safe_dump(params))
    cli("methods", "run", "identity", "--dataset", "realdof-32x48", cwd=realdof)
    scored = cli("score", "--method", "identity", "--dataset", "realdof-32x48",
                 cwd=realdof).stdout
    assert "identity/realdof-32x48/test/defocus: ok (3 images)" in scored
