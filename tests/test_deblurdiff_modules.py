"""DeblurDiff's building blocks: the element-wise adaptive convolution (EAC) and the latent
kernel prediction network (LKPN). Both files are loaded by path, as the method's plugin does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from deblurbench.nn import count_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HERE = Path(__file__).resolve().parents[1] / "methods" / "deblurdiff"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deblurdiff_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eac_mod = _load("eac")
lkpn_mod = _load("lkpn")
K = 5


def _delta(b: int, c: int, h: int, w: int, dy: int, dx: int) -> torch.Tensor:
    """Kernels that pick the neighbour at offset (dy, dx) for every pixel and channel."""
    taps = torch.zeros(b, c, K, K, h, w)
    taps[:, :, dy + K // 2, dx + K // 2] = 1.0
    return taps.reshape(b, c * K * K, h, w)


# --- EAC -------------------------------------------------------------------------------------

@pytest.mark.parametrize("residual", [True, False])
def test_eac_matches_pixel_by_pixel_reference(residual):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 6, 7, generator=g)
    kernels = torch.randn(1, 4 * K * K, 6, 7, generator=g)
    fast = eac_mod.eac(z, kernels, K, residual=residual)
    slow = eac_mod.eac_reference(z, kernels, K, residual=residual)
    assert fast.shape == z.shape
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_eac_kernel_layout_is_per_channel_row_major():
    """Channel 1's tap (dy, dx) = (-1, +2) sits at 1*25 + (dy+2)*5 + (dx+2) = 34."""
    z = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    kernels = torch.zeros(1, 2 * K * K, 5, 6)
    kernels[0, 34, 2, 3] = 1.0
    out = eac_mod.eac(z, kernels, K, residual=False)
    assert out[0, 1, 2, 3] == z[0, 1, 1, 5]
    assert torch.count_nonzero(out) == 1


def test_eac_centre_delta_is_identity():
    z = torch.randn(2, 4, 6, 7)
    out = eac_mod.eac(z, _delta(2, 4, 6, 7, 0, 0), K, residual=False)
    assert torch.equal(out, z)


def test_eac_offset_delta_shifts_with_zero_padding():
    """Tap (0, +1) reads the right-hand neighbour: the latent moves one pixel left and the last
    column, whose neighbour is outside the latent, reads the zero padding."""
    z = torch.randn(1, 4, 6, 7)
    out = eac_mod.eac(z, _delta(1, 4, 6, 7, 0, 1), K, residual=False)
    assert torch.equal(out[..., :-1], z[..., 1:])
    assert torch.equal(out[..., -1], torch.zeros_like(z[..., -1]))


def test_eac_zero_kernels_with_residual_return_z():
    z = torch.randn(1, 4, 6, 7)
    assert torch.equal(eac_mod.eac(z, torch.zeros(1, 4 * K * K, 6, 7), K), z)
    assert torch.equal(eac_mod.eac(z, torch.zeros(1, 4 * K * K, 6, 7), K, residual=False),
                       torch.zeros_like(z))


def test_eac_gradients_match_reference():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 2, 4, 5, generator=g, requires_grad=True)
    kernels = torch.randn(1, 2 * K * K, 4, 5, generator=g, requires_grad=True)
    w = torch.randn(1, 2, 4, 5, generator=g)
    grads = []
    for fn in (eac_mod.eac, eac_mod.eac_reference):
        grads.append(torch.autograd.grad((fn(z, kernels, K) * w).sum(), (z, kernels)))
    for fast, slow in zip(*grads, strict=True):
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_eac_rejects_mismatched_kernels_and_even_size():
    z = torch.randn(1, 4, 6, 7)
    with pytest.raises(ValueError, match="kernels must be"):
        eac_mod.eac(z, torch.zeros(1, 4 * 9, 6, 7), K)
    with pytest.raises(ValueError, match="odd"):
        eac_mod.eac(z, torch.zeros(1, 4 * 16, 6, 7), 4)


# --- timestep embedding ---------------------------------------------------------------------

def test_timestep_embedding_is_cos_then_sin():
    emb = lkpn_mod.timestep_embedding(torch.tensor([0, 999]), 8)
    assert emb.shape == (2, 8)
    assert torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    torch.testing.assert_close(emb[1, 0], torch.cos(torch.tensor(999.0)))
    torch.testing.assert_close(emb[1, 4], torch.sin(torch.tensor(999.0)))
    # the slowest frequency is 1/max_period**(3/4) for dim 8
    torch.testing.assert_close(emb[1, 3], torch.cos(torch.tensor(999.0 / 10000 ** 0.75)))
    assert lkpn_mod.timestep_embedding(torch.tensor([3.0]), 7).shape == (1, 7)


# --- LKPN -----------------------------------------------------------------------------------

def _small(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    args = {"width": 16, "mults": (1, 2, 2, 2), "blocks_per_level": 1,
            "attn_levels": (False, False, True, True)}
    return lkpn_mod.LKPN(**(args | kw))


def test_lkpn_kernel_shape_for_odd_latent_and_zero_at_init():
    """13 x 9 is no multiple of 8: padded inside, cropped back. groups=8 on 16 channels and
    heads=4 need no fallback; groups=6 falls back to gcd(6, 16) = 2."""
    x, zb = torch.randn(1, 4, 13, 9), torch.randn(1, 4, 13, 9)
    for net in (lkpn_mod.LKPN(width=16, blocks_per_level=1), _small(groups=6)):
        out = net(x, zb, torch.tensor([500]))
        assert out.shape == (1, 4 * 25, 13, 9)
        assert torch.count_nonzero(out) == 0
        # zero kernels through the residual EAC: the condition starts as z_blur itself
        assert torch.equal(eac_mod.eac(zb, out, K), zb)


def test_lkpn_learns_and_depends_on_t_after_one_step():
    net = _small()
    g = torch.Generator().manual_seed(2)
    x, zb = torch.randn(2, 4, 12, 10, generator=g), torch.randn(2, 4, 12, 10, generator=g)
    target = torch.randn(2, 100, 12, 10, generator=g)
    t = torch.tensor([10, 900])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    torch.nn.functional.mse_loss(net(x, zb, t), target).backward()
    opt.step()
    with torch.no_grad():
        out = net(x, zb, t)
        assert out.abs().max() > 1e-4
        early, late = net(x[:1], zb[:1], torch.tensor([10])), net(x[:1], zb[:1], 900)
        torch.testing.assert_close(early, out[:1])  # batch and scalar t give the same
        assert (early - late).abs().max() > 1e-6


def test_lkpn_attention_levels_switch_off_and_validate():
    assert count_parameters(_small()) == 233_652
    all_attn = _small(attn_levels=None)
    assert count_parameters(all_attn) > count_parameters(_small())
    assert all(isinstance(level[0].attn, torch.nn.Identity) for level in _small().encoders[:2])
    with pytest.raises(ValueError, match="attn_levels"):
        lkpn_mod.LKPN(width=16, attn_levels=(True, False))


def test_lkpn_default_is_paper_sized():
    """Width 64, mults (1, 2, 4, 4), 2 blocks per level, attention everywhere: ~17 M
    parameters (the paper gives no count; its SD-derived U-Nets are larger)."""
    assert count_parameters(lkpn_mod.LKPN()) == 17_115_172
