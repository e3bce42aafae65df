"""Batching and streaming in the scoring engine.

Same-size images are scored together by metrics with a batch path, tiles of large images are
batched inside one image, the values never depend on either, a learned metric with random
weights behaves as a distance through the whole engine, and memory stays flat on 4096x2160
images however many there are.
"""

from __future__ import annotations

import itertools
import tracemalloc
from types import SimpleNamespace

import cv2
import duckdb
import lpips
import numpy as np
import pytest
import torch
import yaml
from conftest import cli
from scoring_kit import (
    SIGMAS,
    make_blur_ladder,
    make_card,
    make_dataset,
    photo,
    scores,
    spec_ids,
)

from deblurbench.config import ConfigError, load_params
from deblurbench.datasets.manifest import prepare
from deblurbench.io import read_image, write_png
from deblurbench.methods.runner import output_path, run_method
from deblurbench.metrics.learned import lpips_computer
from deblurbench.metrics.pyiqa_models import tiled
from deblurbench.metrics.scorer import Batching, groups, score_run
from deblurbench.metrics.spec import METRICS, Metric, MetricSpec, get_metric, register

RANDOM_LPIPS = "lpips_random_test"


def _random_lpips(device: str):
    torch.manual_seed(0)  # the same random AlexNet every time the engine builds it
    return lpips_computer(lpips.LPIPS(net="alex", pnet_rand=True, verbose=False), device)


if RANDOM_LPIPS not in METRICS:
    register(Metric(MetricSpec(
        name=RANDOM_LPIPS, version="test-random-alex-1", kind="FR", direction="lower",
        library="lpips", colour_space="RGB mapped to [-1, 1]", window="random AlexNet features",
        data_range=1.0, crop=0, definition="LPIPS with a seeded random AlexNet (tests only)",
        identical_value=0.0, family="perceptual", regions=True), None, "lpips",
        build=_random_lpips))


# ---------------------------------------------------------------------------------------------
# Grouping and tiles


def test_groups_hold_one_image_size_within_the_count_and_pixel_budget():
    rows = ([SimpleNamespace(height=100, width=100)] * 5 + [SimpleNamespace(height=50, width=50)]
            + [SimpleNamespace(height=2160, width=4096)] * 2)
    got = groups(rows, Batching(size=2, max_pixels=30_000))
    assert [len(g) for g in got] == [2, 2, 1, 1, 1, 1]
    assert {(r.height, r.width) for r in got[2] + got[3]} == {(100, 100), (50, 50)}
    # A budget below one image still scores it, alone.
    assert [len(g) for g in groups(rows[:3], Batching(size=8, max_pixels=10))] == [1, 1, 1]
    for bad in (0, -1, True, "4"):
        with pytest.raises(ValueError, match="positive"):
            Batching(size=bad)


def test_auto_batching_is_four_on_cuda_and_one_on_cpu_and_flows_from_params(project):
    assert Batching().on("cuda").size == 4 and Batching().on("cuda:1").size == 4
    assert Batching().on("cpu").size == 1
    assert Batching(3, 100).on("cuda") == Batching(3, 100)  # a count is kept as given
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert load_params(project / "params.yaml").score.batch_size == "auto"
    params["score"]["batch_size"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert load_params(project / "params.yaml").score.batch_size == 2
    params["score"]["batch_size"] = "many"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="batch_size"):
        load_params(project / "params.yaml")
    bad = cli("score", "--batch-size", "0", cwd=project, check=False)
    assert bad.returncode == 2 and "positive integer or auto" in bad.stderr


def test_tiles_of_a_large_image_are_batched_by_shape_and_give_the_same_value():
    img = np.random.default_rng(0).random((2160, 4096, 3), dtype=np.float32)
    calls = []

    def many(rs, ss):
        calls.append(len(rs))
        assert len({r.shape for r in rs}) == 1
        return [float(r.mean()) for r in rs]

    plain = tiled(lambda r, s: float(r.mean()), img, None)
    batched = tiled(lambda r, s: float(r.mean()), img, None, many)
    # 2160x4096 -> 8 tiles of 1024x1024 and 4 of 112x1024, four per pass
    assert sorted(calls) == [4, 4, 4]
    assert batched == plain
    assert batched == pytest.approx(float(img.astype(np.float64).mean()), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Batch paths equal one image at a time


def test_random_lpips_batch_path_equals_one_image_at_a_time_and_is_symmetric():
    comp = _random_lpips("cpu")
    sharp = [photo(i) for i in range(3)]
    blurred = [cv2.GaussianBlur(s, (0, 0), 1.0 + i) for i, s in enumerate(sharp)]
    got = comp.batch_fn(blurred, sharp)
    one = [comp.fn(b, s) for b, s in zip(blurred, sharp)]
    assert got == pytest.approx(one, rel=1e-5, abs=1e-7)
    assert comp.batch_fn(sharp, blurred) == pytest.approx(got, rel=1e-5)
    assert comp.batch_fn(sharp, sharp) == pytest.approx([0, 0, 0], abs=1e-7)


@pytest.mark.parametrize("name", ["niqe", "piqe"])
def test_classical_no_reference_batch_path_equals_one_image_at_a_time(name):
    m = get_metric(name)
    assert m.unavailable_reason() is None, m.unavailable_reason()
    comp = m.computer("cpu")
    imgs = [photo(10 + i, 192, 256) for i in range(3)]
    got = comp.batch_fn(imgs, [None] * 3)
    one = [comp.fn(i, None) for i in imgs]
    assert got == pytest.approx(one, rel=1e-5)
    assert len(set(np.round(got, 6))) == 3  # three images, three different values


def test_brisque_has_no_batch_path_since_batching_moves_its_values():
    comp = get_metric("brisque").computer("cpu")
    assert comp.batch_fn is None


def test_brisque_scores_the_tiles_of_a_large_image_one_at_a_time(monkeypatch):
    """Batching its tiles would move BRISQUE too (by 0.024 on this image): a tiled value is
    exactly the area-weighted mean of the tiles scored alone."""
    import deblurbench.metrics.pyiqa_models as pm

    monkeypatch.setattr(pm, "TILE_ABOVE_PIXELS", 1_000_000)  # tile a 1088x2048 image
    img = photo(7, 1088, 2048)
    comp = get_metric("brisque").computer("cpu")
    boxes = pm.tiles(*img.shape[:2])
    assert len(boxes) == 4  # two 1024x1024 tiles and two 64x1024 tiles
    alone = [comp.fn(img[y0:y1, x0:x1], None) for y0, y1, x0, x1 in boxes]
    areas = [(y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes]
    assert comp.fn(img, None) == pytest.approx(np.dot(alone, areas) / sum(areas), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Through the engine


@pytest.fixture
def blur_ladder(project):
    return make_blur_ladder(project)


def test_a_random_weight_learned_metric_through_the_engine_is_a_distance(blur_ladder):
    p = blur_ladder
    res = score_run("identity", "ladder", "test", p / "a.duckdb", [RANDOM_LPIPS, "psnr"],
                    batching=Batching(size=4))
    assert res["status"] == "ok" and res["n_images"] == 12
    v = scores(p / "a.duckdb", res["run_id"], RANDOM_LPIPS)
    for k in range(3):
        ladder = [v[f"p{k}-s{s}"] for s in SIGMAS]
        assert ladder[0] == pytest.approx(0.0, abs=1e-7)
        assert all(a < b for a, b in itertools.pairwise(ladder)), ladder
    # One image at a time gives the same numbers under the same spec.
    one = score_run("identity", "ladder", "test", p / "b.duckdb", [RANDOM_LPIPS, "psnr"],
                    batching=Batching(size=1))
    w = scores(p / "b.duckdb", one["run_id"], RANDOM_LPIPS)
    assert w.keys() == v.keys()
    assert [w[k] for k in sorted(w)] == pytest.approx([v[k] for k in sorted(v)], abs=1e-6)
    spec_a = spec_ids(p / "a.duckdb", RANDOM_LPIPS)
    assert spec_a == spec_ids(p / "b.duckdb", RANDOM_LPIPS) and len(spec_a) == 1


def test_one_failing_image_in_a_batch_fails_alone(project):
    """NIQE cannot score a flat image: in a batch, that image is recorded failed with the
    reason and its batch neighbours keep the values they get alone."""
    flat = np.full((192, 256, 3), 0.5, np.float32)
    pairs = {"a-flat": (flat, flat)} | {f"b{i}": (photo(30 + i, 192, 256),) * 2 for i in range(3)}
    make_dataset(project, "withflat", pairs)
    cli("methods", "run", "identity", "--dataset", "withflat", cwd=project)
    res = score_run("identity", "withflat", "test", project / "r.duckdb", ["niqe"],
                    batching=Batching(size=4))
    assert res["status"] == "ok" and res["n_failed"] == 1
    con = duckdb.connect(str(project / "r.duckdb"), read_only=True)
    failed = con.execute("SELECT image_id, reason FROM score_failures").fetchall()
    con.close()
    assert [f[0] for f in failed] == ["a-flat"] and "niqe" in failed[0][1]
    comp = get_metric("niqe").computer("cpu")
    got = scores(project / "r.duckdb", res["run_id"], "niqe")
    alone = {f"b{i}": comp.fn(read_image(output_path("identity", "withflat", "test", f"b{i}")),
                              None) for i in range(3)}
    assert got == pytest.approx(alone, rel=1e-6)


def _peak_bytes(project, dataset: str) -> int:
    tracemalloc.start()
    try:
        res = score_run("identity", dataset, "test", project / f"{dataset}.duckdb",
                        ["psnr", "mae"])
        assert res["status"] == "ok" and res["n_images"] > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_on_4096x2160_images_however_many(project):
    """Scoring 6 SDD-sized pairs peaks about where scoring 2 does: images stream through (the
    pair being scored and the next one being decoded), nothing accumulates. How the two
    threads' peaks meet varies from run to run (by up to ~2.6 images), so the bound is two
    pairs' worth, half of what keeping every pair would add (eight images)."""
    h, w = 2160, 4096
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sharp = np.stack([xx / w, yy / h, 0.5 + 0.4 * np.sin(xx / 97) * np.cos(yy / 61)], -1)
    files = {"sharp": write_png(project / "sharp.png", sharp, bits=8),
             "blurry": write_png(project / "blurry.png", sharp * 0.9, bits=8)}
    for name, n in (("big2", 2), ("big6", 6)):
        raw = make_card(project, name, 8)
        for kind, src in files.items():
            (raw / kind).mkdir(parents=True)
            for k in range(n):
                (raw / kind / f"i{k}.png").hardlink_to(src)
        prepare(name)
        run_method("identity", name, "test", device="cpu")
    one_image = h * w * 3 * 4  # float32 RGB
    p2, p6 = _peak_bytes(project, "big2"), _peak_bytes(project, "big6")
    print(f"peak: {p2 / one_image:.2f} images for 2 pairs, {p6 / one_image:.2f} for 6")
    assert p6 < p2 + 4 * one_image, (p2 / one_image, p6 / one_image)
    # and the peak is two pairs, a decode and a band's worth of temporaries (at most ~6 images)
    assert p6 < 7 * one_image, p6 / one_image
