"""pyiqa's learned metrics with random weights built here, through the project's own pyiqa path
(``pyiqa_build``: tensors from our I/O, batching, tiling, failure checks) and the whole engine.

No weight file can be downloaded here, so each model is pyiqa's real architecture with its
pretrained parts replaced by seeded random ones: DISTS (random VGG16, pyiqa's alpha/beta init),
MUSIQ (``pretrained=False``), MANIQA (random timm ViT, two crops), CLIP-IQA and LIQE (pyiqa's
own CLIP class, random and narrow: a ResNet for CLIP-IQA, a ViT for LIQE, as their backbones).
The values mean nothing as quality; the properties tested are what any build of the metric
must have.
"""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pytest
import torch
import torchvision
from scoring_kit import SIGMAS, make_blur_ladder, photo, scores, spec_ids

from deblurbench.metrics.pyiqa_models import pyiqa_build
from deblurbench.metrics.scorer import Batching, score_run
from deblurbench.metrics.spec import METRICS, Metric, MetricSpec, get_metric, register

DISTS, MUSIQ, MANIQA = "dists_random_test", "musiq_random_test", "maniqa_random_test"
CLIPIQA, LIQE, BROKEN = "clipiqa_random_test", "liqe_random_test", "broken_build_test"


def _seeded(build):
    """The same random weights every time the engine builds the metric."""
    def seeded(device: str):
        torch.manual_seed(0)
        return build(device)
    return seeded


def _register(name: str, pyiqa_name: str, fr: bool, **opts) -> None:
    if name in METRICS:
        return
    register(Metric(MetricSpec(
        name=name, version="test-random-1", kind="FR" if fr else "NR",
        direction="lower" if fr else "higher", library="pyiqa", colour_space="RGB",
        window="model", data_range=1.0, crop=0, identical_value=0.0 if fr else None,
        definition=f"pyiqa {pyiqa_name} with seeded random weights (tests only)"),
        None, "pyiqa", build=_seeded(pyiqa_build(name, pyiqa_name, fr, pretrained=False,
                                                 **opts))))


_register(DISTS, "dists", fr=True)
_register(MUSIQ, "musiq", fr=False)
_register(MANIQA, "maniqa", fr=False, test_sample=2)
_register(CLIPIQA, "clipiqa", fr=False)
_register(LIQE, "liqe", fr=False)


def _broken(device: str):
    raise ImportError("No module named 'pkg_resources'")


if BROKEN not in METRICS:
    register(Metric(MetricSpec(
        name=BROKEN, version="test-1", kind="NR", direction="higher", library="pyiqa",
        colour_space="RGB", window="model", data_range=1.0, crop=0,
        definition="a model whose import fails (tests only)"), None, "pyiqa", build=_broken))


@pytest.fixture
def random_backbones(monkeypatch):
    """pyiqa asks torchvision and timm for ImageNet weights even with ``pretrained=False``
    (DISTS's VGG16, MANIQA's ViT): hand it the same architectures, randomly initialised."""
    import pyiqa.archs.dists_arch as dists_arch
    import pyiqa.archs.maniqa_arch as maniqa_arch
    import timm

    vgg16, create = torchvision.models.vgg16, timm.create_model
    monkeypatch.setattr(dists_arch.models, "vgg16", lambda weights=None, **kw: vgg16(**kw))
    monkeypatch.setattr(maniqa_arch.timm, "create_model",
                        lambda name, pretrained=False, **kw: create(name, pretrained=False, **kw))


@pytest.fixture
def random_clip(monkeypatch, tmp_path):
    """pyiqa's CLIP loader downloads OpenAI's weights: build its CLIP class randomly instead,
    narrow enough for CPU tests. LIQE caches its prompts' text features in pyiqa's cache
    folder whatever the weights: point that at a temp folder, never the user's cache."""
    import pyiqa.archs.clipiqa_arch as clipiqa_arch
    import pyiqa.archs.liqe_arch as liqe_arch
    from pyiqa.archs.clip_model import CLIP

    def narrow(resnet: bool):
        def load(name, device="cpu", **kw):
            return CLIP(embed_dim=64, image_resolution=224,
                        vision_layers=(1, 1, 1, 1) if resnet else 2, vision_width=64,
                        vision_patch_size=None if resnet else 32, context_length=77,
                        vocab_size=49408, transformer_width=64, transformer_heads=2,
                        transformer_layers=2).float().eval()
        return load

    monkeypatch.setattr(clipiqa_arch, "load", narrow(resnet=True))
    monkeypatch.setattr(liqe_arch, "load", narrow(resnet=False))
    monkeypatch.setattr(liqe_arch, "DEFAULT_CACHE_DIR", str(tmp_path / "pyiqa-cache"))
    (tmp_path / "pyiqa-cache").mkdir()


@pytest.fixture
def blur_ladder(project, random_backbones):
    return make_blur_ladder(project)


def test_random_dists_through_the_engine_is_zero_on_identical_and_grows_with_blur(blur_ladder):
    p = blur_ladder
    res = score_run("identity", "ladder", "test", p / "a.duckdb", [DISTS], batching=Batching(4))
    assert res["status"] == "ok" and res["n_images"] == 4 * 3 and not res["unavailable"]
    v = scores(p / "a.duckdb", res["run_id"], DISTS)
    for k in range(3):
        ladder = [v[f"p{k}-s{s}"] for s in SIGMAS]
        assert ladder[0] == pytest.approx(0.0, abs=1e-6)
        assert all(a < b for a, b in itertools.pairwise(ladder)), ladder
    one = score_run("identity", "ladder", "test", p / "b.duckdb", [DISTS], batching=Batching(1))
    w = scores(p / "b.duckdb", one["run_id"], DISTS)
    assert w == pytest.approx(v, abs=1e-6)
    assert spec_ids(p / "a.duckdb", DISTS) == spec_ids(p / "b.duckdb", DISTS)


def test_random_dists_is_symmetric(random_backbones):
    comp = get_metric(DISTS).computer("cpu")
    sharp = [photo(i) for i in range(3)]
    noisy = [np.clip(s + np.random.default_rng(i).normal(0, 0.05 * (i + 1), s.shape), 0, 1)
             .astype(np.float32) for i, s in enumerate(sharp)]
    there = comp.batch_fn(noisy, sharp)
    assert comp.batch_fn(sharp, noisy) == pytest.approx(there, rel=1e-5)
    assert there == pytest.approx([comp.fn(n, s) for n, s in zip(noisy, sharp)], rel=1e-5)
    assert all(x < y for x, y in itertools.pairwise(there)), there  # more noise, farther


def test_random_musiq_through_the_engine_scores_each_image_as_it_would_alone(blur_ladder):
    p = blur_ladder
    res = score_run("identity", "ladder", "test", p / "a.duckdb", [MUSIQ], batching=Batching(4))
    assert res["status"] == "ok" and res["n_images"] == 12 and res["n_failed"] == 0
    v = scores(p / "a.duckdb", res["run_id"], MUSIQ)
    assert all(np.isfinite(list(v.values())))
    assert len({round(x, 5) for x in v.values()}) == 12  # a different image, a different value
    one = score_run("identity", "ladder", "test", p / "b.duckdb", [MUSIQ], batching=Batching(1))
    assert scores(p / "b.duckdb", one["run_id"], MUSIQ) == pytest.approx(v, rel=1e-5, abs=1e-6)
    # No reference is read: a sharp image scores the same as the blurry input that equals it.
    for k in range(3):
        alone = get_metric(MUSIQ).computer("cpu").fn(photo(20 + k), None)
        assert v[f"p{k}-s0"] == pytest.approx(alone, rel=1e-5)


@pytest.mark.slow
def test_random_maniqa_batch_path_equals_one_image_at_a_time(random_backbones):
    """Slow on CPU (a ViT-B/8 per 224 px crop): ``-m slow``."""
    comp = get_metric(MANIQA).computer("cpu")
    imgs = [photo(40 + i, 256, 256) for i in range(2)]
    assert comp.batch_fn(imgs, [None, None]) == pytest.approx(
        [comp.fn(i, None) for i in imgs], rel=1e-5)


@pytest.mark.parametrize(("name", "low", "high"), [(CLIPIQA, 0.0, 1.0), (LIQE, 1.0, 5.0)])
def test_random_clip_models_through_the_engine_stay_in_range_and_batch_exactly(
        project, random_clip, name, low, high):
    """CLIP-IQA is a probability (softmax over antonym prompts), LIQE an expected rating over
    the levels 1..5, whatever the weights; LIQE needs sides of 224 px, so 256x320 images."""
    make_blur_ladder(project, "big", n=2, h=256, w=320)
    res = score_run("identity", "big", "test", project / "a.duckdb", [name],
                    batching=Batching(4))
    assert res["status"] == "ok" and res["n_images"] == 8 and res["n_failed"] == 0
    v = scores(project / "a.duckdb", res["run_id"], name)
    assert all(low <= x <= high for x in v.values()), v
    assert len({round(x, 6) for x in v.values()}) > 1
    one = score_run("identity", "big", "test", project / "b.duckdb", [name],
                    batching=Batching(1))
    assert scores(project / "b.duckdb", one["run_id"], name) == pytest.approx(v, rel=1e-5)


def test_liqe_on_images_under_224_px_fails_each_image_with_the_reason(project, random_clip):
    """pyiqa refuses with a bare assert; the engine records every image as failed with it, and
    the other metrics of the run are scored."""
    make_blur_ladder(project, "small", n=1)
    res = score_run("identity", "small", "test", project / "r.duckdb", [LIQE, "psnr"],
                    batching=Batching(4))
    assert res["status"] == "ok" and res["n_failed"] == 4
    assert len(scores(project / "r.duckdb", res["run_id"], "psnr")) == 4
    con = duckdb.connect(str(project / "r.duckdb"), read_only=True)
    reasons = con.execute("SELECT DISTINCT reason FROM score_failures WHERE metric = ?",
                          [LIQE]).fetchall()
    con.close()
    assert len(reasons) == 1 and "Short side is less than 224" in reasons[0][0]


def test_a_model_that_cannot_be_built_is_unavailable_with_the_reason_and_the_run_goes_on(
        project):
    make_blur_ladder(project, "small", n=1)
    res = score_run("identity", "small", "test", project / "r.duckdb", [BROKEN, "mae"])
    assert res["status"] == "ok" and res["n_images"] == 4 and "mae" in res["means"]
    assert "could not be built" in res["unavailable"][BROKEN]
    assert "pkg_resources" in res["unavailable"][BROKEN]
    con = duckdb.connect(str(project / "r.duckdb"), read_only=True)
    status = con.execute("SELECT status, n_scored FROM metric_status WHERE metric = ?",
                         [BROKEN]).fetchone()
    con.close()
    assert status == ("unavailable", 0)
