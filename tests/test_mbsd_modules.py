"""MBSD's building blocks: MSBE (grids and Eq. 4), PMoECB (Eq. 5's mixing rule), BAEM (its
outputs and Eq. 6) and PBCA. The files are loaded by path, as the method's plugin is."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deblurbench.annotate.pba import PBAParams, annotate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HERE = Path(__file__).resolve().parents[1] / "methods" / "mbsd"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mbsd_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


msbe_mod, baem_mod, pbca_mod = _load("msbe"), _load("baem"), _load("pbca")
SIZES = (12, 24, 48, 96)


# --- MSBE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw", [(96, 96), (100, 130), (50, 200), (8, 8)])
def test_msbe_logits_land_on_the_pba_grid_of_each_scale(hw):
    h, w = hw
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    params = PBAParams(patch_sizes=SIZES)
    if min(h, w) >= 11:
        pba = annotate(img, params).labels
        expected = [lab.shape for lab in pba]
    else:  # smaller than PBA's SSIM window: every scale is one whole-image patch
        expected = [(1, 1)] * 4
    msbe = msbe_mod.MSBE(3, 8, 8, (1, 2, 4, 8), SIZES)
    logits = msbe(torch.from_numpy(img).permute(2, 0, 1)[None])
    assert [tuple(lg.shape[-2:]) for lg in logits] == [tuple(e) for e in expected]
    assert all(lg.shape[:2] == (1, 4) for lg in logits)


def test_msbe_has_eight_conv_relu_blocks_and_two_1x1_convs_per_branch():
    msbe = msbe_mod.MSBE(3, 16, 8, (1, 2, 4, 8), SIZES)
    convs = [m for m in msbe.pbe if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 8
    assert sum(isinstance(m, torch.nn.ReLU) for m in msbe.pbe) == 8
    for br in msbe.branches:
        assert [c.kernel_size for c in br if isinstance(c, torch.nn.Conv2d)] == [(1, 1)] * 2
        assert br[-1].out_channels == 4


def test_msbe_rejects_patch_sizes_that_the_pooling_rates_cannot_reach():
    with pytest.raises(ValueError, match="pooling rates"):
        msbe_mod.MSBE(3, 8, 8, (1, 2, 4, 8), (12, 24, 36, 96))


def test_msbe_loss_is_the_cross_entropy_summed_over_patches_of_all_scales_over_their_count():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 1, 1, generator=g)]
    labels = [torch.randint(0, 4, (2, 4, 4), generator=g), torch.randint(0, 4, (2, 1, 1),
                                                                         generator=g)]
    got = msbe_mod.msbe_loss(logits, labels)
    nll = [-torch.log_softmax(lg, 1).gather(1, lab[:, None]).sum()
           for lg, lab in zip(logits, labels, strict=True)]
    want = sum(nll) / (2 * 16 + 2 * 1)
    torch.testing.assert_close(got, want)
    # not the mean of per-scale means: the fine scale's 16 patches weigh 16 times more
    assert not torch.isclose(got, (nll[0] / 32 + nll[1] / 2) / 2)


def test_msbe_loss_of_a_confident_correct_prediction_is_near_zero():
    labels = [torch.tensor([[[2]]])]
    logits = [F.one_hot(labels[0], 4).permute(0, 3, 1, 2).float() * 50]
    assert float(msbe_mod.msbe_loss(logits, labels)) < 1e-6
    assert float(msbe_mod.msbe_loss(logits, [torch.tensor([[[0]]])])) == pytest.approx(50.0)


def test_probabilities_sum_to_one_over_the_four_levels():
    probs = msbe_mod.probabilities([torch.randn(1, 4, 3, 5)])
    torch.testing.assert_close(probs[0].sum(1), torch.ones(1, 3, 5))


# --- PMoECB ----------------------------------------------------------------------------------

def _mixed_conv(x, k, b, groups):
    return F.conv2d(x, k, b, padding=k.shape[-1] // 2, groups=groups)


@pytest.mark.parametrize("groups", [1, 6])
def test_pmoe_conv_equals_the_mixed_kernel_of_each_patch(groups):
    """Eq. 5 on a 2 x 2 grid of patches with different weights: inside each patch, the output
    is the single convolution with sum_i w_i K_i (and sum_i w_i b_i), at every pixel."""
    torch.manual_seed(0)
    conv = baem_mod.PMoEConv(6, 6, 3, groups=groups)
    x = torch.randn(1, 6, 8, 10)
    grid = torch.softmax(torch.randn(1, 4, 2, 2), 1)
    w = baem_mod.patch_weights(grid, 8, 10, 1, 4)  # 4 px patches; columns 8-9 are ragged
    out = conv(x, w)
    for i in range(2):
        for j in range(2):
            k, b = conv.mixed_kernel(grid[0, :, i, j].tolist())
            ref = _mixed_conv(x, k, b, groups)
            rows = slice(4 * i, 4 * i + 4)
            cols = slice(4 * j, 4 * j + 4) if j == 0 else slice(4, 10)
            torch.testing.assert_close(out[..., rows, cols], ref[..., rows, cols], atol=1e-5,
                                       rtol=0)


def test_pmoe_conv_with_one_hot_weights_is_that_expert():
    conv = baem_mod.PMoEConv(3, 5, 3)
    x = torch.randn(2, 3, 6, 6)
    w = torch.zeros(2, 4, 6, 6)
    w[:, 2] = 1
    torch.testing.assert_close(conv(x, w), conv.experts[2](x))


def test_patch_weights_spread_each_patch_over_its_pixels_at_any_stride():
    grid = torch.arange(6.0).view(1, 1, 2, 3)
    full = baem_mod.patch_weights(grid, 5, 7, 2, 4)  # stride 2: 2 px per patch, ragged edge
    assert full[0, 0].tolist() == [[0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 2, 2, 2],
                                   [3, 3, 4, 4, 5, 5, 5], [3, 3, 4, 4, 5, 5, 5],
                                   [3, 3, 4, 4, 5, 5, 5]]


def test_expert_head_gives_convex_weights_per_patch():
    head = baem_mod.ExpertHead()
    w = head(torch.softmax(torch.randn(2, 4, 3, 3), 1))
    assert w.shape == (2, 4, 3, 3)
    torch.testing.assert_close(w.sum(1), torch.ones(2, 3, 3))
    assert [m.kernel_size for m in head.net if isinstance(m, torch.nn.Conv2d)] == [(1, 1)] * 2


# --- BAEM ------------------------------------------------------------------------------------

def _weights(h, w, sizes=SIZES):
    return [torch.softmax(torch.randn(1, 4, max(h // s, 1), max(w // s, 1)), 1) for s in sizes]


@pytest.mark.parametrize("hw", [(96, 96), (70, 100)])
def test_baem_shapes_and_untrained_restoration_is_the_input(hw):
    h, w = hw
    baem = baem_mod.BAEM(3, 8, (1, 1, 1, 1), 1, (1, 1, 1, 1), pbf_ch=32)
    x = torch.rand(1, 3, h, w)
    f_pbf, restored = baem(x, _weights(h, w), SIZES)
    assert f_pbf.shape == (1, 32, -(-h // 16), -(-w // 16))
    assert restored.shape == x.shape
    torch.testing.assert_close(restored, x)  # zero-initialised residual


def test_baem_features_depend_on_the_expert_weights():
    torch.manual_seed(0)
    baem = baem_mod.BAEM(3, 8, (1, 1, 1, 1), 1, (1, 1, 1, 1), pbf_ch=16)
    for p in baem.parameters():  # leave NAFNet's zero-init scales: make the blocks act
        if p.dim() == 4 and p.shape[0] == 1:
            torch.nn.init.normal_(p, std=0.5)
    x = torch.rand(1, 3, 96, 96)
    one = [torch.zeros(1, 4, *g.shape[-2:]).index_fill_(1, torch.tensor([0]), 1.0)
           for g in _weights(96, 96)]
    other = [torch.zeros_like(g).index_fill_(1, torch.tensor([3]), 1.0) for g in one]
    assert not torch.allclose(baem(x, one, SIZES)[0], baem(x, other, SIZES)[0])


def test_restoration_loss_is_the_pixel_mse():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert float(baem_mod.restoration_loss(a, b)) == pytest.approx(0.25)


# --- PBCA ------------------------------------------------------------------------------------

def test_pbca_starts_as_a_zero_residual_and_attends_to_its_context():
    pbca = pbca_mod.PBCA(32, 32, heads=4)
    h, ctx = torch.randn(2, 36, 32), torch.randn(2, 9, 32)
    assert torch.equal(pbca(h, ctx), torch.zeros_like(h))
    torch.nn.init.normal_(pbca.to_out.weight)
    out = pbca(h, ctx)
    assert out.shape == h.shape
    assert not torch.allclose(out, pbca(h, ctx.flip(1) * 2))


def test_feature_tokens_pool_to_the_requested_grid():
    f = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 3, 1, 1)
    tok = pbca_mod.feature_tokens(f, (2, 2))
    assert tok.shape == (1, 4, 3)
    assert tok[0, :, 0].tolist() == [2.5, 4.5, 10.5, 12.5]
