"""Data set cards (datasets/*.yaml) and the shipped DPDD pair list agree with the literature.

Split counts: DPDD 350/74/76 (Abuolaim and Brown, ECCV 2020; the official file lists),
RealDOF 50 (IFAN, CVPR 2021), SDD 115/35 (JDRL papers). Provenance: datasets/SOURCES.md.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from deblurbench.datasets.card import load_card

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
CARDS = sorted(DATASETS.glob("*.yaml"))

LITERATURE_SPLITS = {
    "dpdd": {"train": 350, "val": 74, "test": 76},
    "realdof": {"test": 50},
    "sdd": {"train": 115, "test": 35},
}
REQUIRED_CARDS = ["dpdd", "realdof", "sdd", "pixeldp"]


def _card(name: str):
    return load_card(DATASETS / f"{name}.yaml")


def _pairs() -> list[dict[str, str]]:
    with open(DATASETS / "dpdd" / "pairs.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["split", "source", "target"]
        return list(reader)


def test_required_cards_exist():
    names = {p.stem for p in CARDS}
    assert set(REQUIRED_CARDS) <= names, f"missing cards: {set(REQUIRED_CARDS) - names}"


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_card_loads(path: Path):
    card = load_card(path)
    assert card.name == path.stem
    assert card.version and card.title and card.citation and card.license


@pytest.mark.parametrize("name", sorted(LITERATURE_SPLITS))
def test_split_counts_match_literature(name: str):
    assert _card(name).splits == LITERATURE_SPLITS[name]


def test_pixeldp_has_no_ground_truth_and_one_test_split():
    card = _card("pixeldp")
    assert not card.has_gt and card.dual_pixel
    assert list(card.splits) == ["test"]
    count = card.splits["test"]
    assert count is None or count > 0
    # An unknown count must be declared as such.
    if count is None:
        assert any("number of images" in s for s in card.unconfirmed)


def test_sdd_has_aligned_variant():
    assert any(v.aligned for v in _card("sdd").variants)


def test_realdof_has_mbsd_resize_variant():
    assert [1120, 1680] in [v.resize for v in _card("realdof").variants]


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_every_url_is_fetchable_or_explained(path: Path):
    card = load_card(path)
    if card.source == "download":
        assert card.urls, f"{path.name}: a downloaded data set needs at least one url"
    for u in card.urls:
        assert u.archive or u.manual, f"{path.name}: {u.url} has neither archive nor manual note"
        assert u.confirmed_from, f"{path.name}: {u.url} does not say where it was confirmed"
        assert u.url.startswith(("http://", "https://")), u.url


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_subset_files_are_shipped(path: Path):
    card = load_card(path)
    for subset, rel in card.subsets.items():  # relative to datasets/<name>/, as the scorer reads
        assert (DATASETS / card.name / rel).is_file(), f"{path.name}: subset {subset} file {rel} missing"


def test_dpdd_indoor_and_outdoor_partition_the_official_test_split():
    card = load_card(DATASETS / "dpdd.yaml")
    ids = {k: (DATASETS / "dpdd" / rel).read_text().split() for k, rel in card.subsets.items()}
    assert {k: len(v) for k, v in ids.items()} == {"indoor": 37, "outdoor": 39}
    test = {r["source"] for r in _pairs() if r["split"] == "test"}
    assert set(ids["indoor"]) | set(ids["outdoor"]) == test
    assert not set(ids["indoor"]) & set(ids["outdoor"])
    # The sessions come in runs of capture numbers: spot checks from the 0-based index lists.
    assert sorted(test)[8] == ids["indoor"][0] and sorted(test)[0] == ids["outdoor"][0]


def test_dpdd_pairs_counts_and_uniqueness():
    rows = _pairs()
    assert Counter(r["split"] for r in rows) == {"train": 350, "val": 74, "test": 76}
    sources = [r["source"] for r in rows]
    targets = [r["target"] for r in rows]
    assert len(set(sources)) == len(sources) == 500
    assert len(set(targets)) == len(targets) == 500
    # A target is a separate capture: it never shares its number with any source.
    assert not set(sources) & set(targets)


def test_dpdd_pairs_known_first_pairs():
    rows = _pairs()
    first = {}
    for r in rows:
        first.setdefault(r["split"], (r["source"], r["target"]))
    assert first["test"] == ("1P0A0917", "1P0A0916")
    assert first["train"] == ("1P0A0890", "1P0A0891")


def test_dpdd_pairs_are_sorted_and_close_captures():
    rows = _pairs()
    for split in ("train", "val", "test"):
        sub = [r for r in rows if r["split"] == split]
        src = [r["source"] for r in sub]
        trg = [r["target"] for r in sub]
        # The official lists are sorted, so pairing by sorted order gives the same pairs.
        assert src == sorted(src) and trg == sorted(trg)
        for s, t in zip(src, trg):
            assert s[:4] == t[:4] == "1P0A"
            assert 1 <= abs(int(s[4:]) - int(t[4:])) <= 2, (s, t)


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_every_card_names_a_registered_layout_parser(path: Path):
    from deblurbench.datasets.layouts import LAYOUTS

    card = load_card(path)
    assert callable(LAYOUTS.get(card.layout)), f"{path.name}: layout {card.layout!r}"
