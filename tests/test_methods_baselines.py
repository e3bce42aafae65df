"""Classical baselines: PSF estimation and deconvolution on images the tests blur themselves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from methods_kit import build_project

from deblurbench.methods.psf import defocus_map, global_radius, psf_kernel, richardson_lucy, wiener
from deblurbench.methods.registry import get_card, load_class


def pattern(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Random grey rectangles and lines on a textured ground, float32 RGB [0, 1]."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 0.5, np.float32)
    for _ in range(60):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y0:y0 + rng.integers(6, 30), x0:x0 + rng.integers(6, 30)] = rng.uniform(0.1, 0.9, 3)
    return img


def blur(img: np.ndarray, radius: float) -> np.ndarray:
    k = psf_kernel("disk", radius).astype(np.float32)
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


def n(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def test_disk_psf_is_normalised_and_has_the_disk_area():
    for r in (1.5, 3.0, 5.0):
        k = psf_kernel("disk", r, supersample=16)
        assert k.sum() == pytest.approx(1.0)
        assert k.max() == pytest.approx(1 / (np.pi * r * r), rel=0.02)  # interior pixel
        x = np.arange(k.shape[0]) - k.shape[0] // 2
        assert (k.sum(0) * x**2).sum() == pytest.approx(r * r / 4, abs=0.15)  # disk: r^2/4
    assert psf_kernel("disk", 0.0).shape == (1, 1)


@pytest.mark.parametrize("radius", [1.5, 3.0, 5.0])
def test_global_radius_recovers_a_uniform_disk_blur(radius):
    est = global_radius(blur(pattern(), radius), "disk", 0.5)
    assert est == pytest.approx(radius, abs=0.25 * radius + 0.3)
    assert global_radius(pattern(), "disk", 0.5) < 0.8  # sharp image: (almost) no blur


def test_known_psf_deconvolution_beats_the_blurry_image():
    sharp = pattern()
    blurry = blur(sharp, 3.0)
    base = psnr(blurry, sharp)
    k = psf_kernel("disk", 3.0)
    assert psnr(n(wiener(t(blurry), k, 0.01)), sharp) > base + 2
    assert psnr(n(richardson_lucy(t(blurry), k, 20)), sharp) > base + 2


def test_defocus_map_separates_a_sharp_half_from_a_blurred_half():
    sharp = pattern(96, 160, seed=1)
    mixed = sharp.copy()
    mixed[:, 80:] = blur(sharp, 4.0)[:, 80:]
    m = defocus_map(mixed, "disk")
    assert np.median(m[:, 10:60]) < 1.2
    assert np.median(m[:, 100:150]) > 2.5


@pytest.mark.parametrize("name", ["wiener", "richardson-lucy", "sv-deconv"])
def test_each_deconvolution_baseline_beats_identity_on_uniform_defocus(name, project):
    sharp = pattern(96, 128, seed=2)
    blurry = blur(sharp, 2.5)
    card = get_card(name)
    out = load_class(card)(card.params).restore(t(blurry))
    assert out.shape == (1, 3, 96, 128)
    assert psnr(n(out), sharp) > psnr(blurry, sharp) + 0.5


def test_sv_deconv_beats_identity_and_global_wiener_on_mixed_defocus(project):
    sharp = pattern(96, 160, seed=3)
    mixed = sharp.copy()
    mixed[:, 80:] = blur(sharp, 3.0)[:, 80:]
    sv, wi = (load_class(get_card(m))(get_card(m).params) for m in ("sv-deconv", "wiener"))
    p_sv, p_wi = psnr(n(sv.restore(t(mixed))), sharp), psnr(n(wi.restore(t(mixed))), sharp)
    assert p_sv > psnr(mixed, sharp) + 0.5
    assert p_sv > p_wi


def test_unsharp_mask_grid_search_picks_sharpening_only_when_it_helps(tmp_path, monkeypatch):
    root = build_project(tmp_path / "proj")
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(root))
    from deblurbench.methods.checkpoint import checkpoint_path, load_checkpoint
    from deblurbench.methods.train import train_method

    rec = train_method("unsharp-mask", "synthetic-defocus")
    assert rec["status"] == "finished"
    state = load_checkpoint(checkpoint_path("unsharp-mask", "synthetic-defocus", "small"))["state"]
    grid, sse = state["grid"], state["sse"]
    best = int(torch.argmin(sse))
    assert (state["sigma"], state["amount"]) == tuple(grid[best])
    assert state["amount"] > 0  # blurred data: some sharpening helps
    no_sharpening = min(float(sse[i]) for i, g in enumerate(grid) if g[1] == 0)
    assert float(sse[best]) < no_sharpening
    # pairs with sharp == blurry: the search must keep the image as it is (amount 0)
    from deblurbench.methods.registry import get_card, load_class

    card = get_card("unsharp-mask")
    m = load_class(card)(card.params)

    class Ctx:
        def step(self, loss=None):
            return True

    x = t(pattern())
    m.train([{"blurry": x, "sharp": x}] * 2, card.params, Ctx())
    assert m.amount == 0.0
