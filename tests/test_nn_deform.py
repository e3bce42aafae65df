"""Deformable conv: the grid_sample path equals torchvision's in values and in every gradient,
reduces to a plain conv at zero offset, and is what "auto" runs on CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deblurbench.nn import DeformConv2d, ModulatedDeformConv, choose_impl
from deblurbench.nn import deform as deform_mod

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# in_ch, out_ch, groups, offset_groups, kernel, stride, padding, dilation
CASES = {
    "plain": (4, 6, 1, 1, 3, 1, 1, 1),
    "groups": (6, 4, 2, 3, 3, 1, 1, 1),
    "strided-dilated": (4, 4, 2, 2, 3, 2, 2, 2),
    "non-square": (3, 5, 1, 1, (3, 2), 1, (1, 0), 1),
}


def random_case(name: str, seed: int = 0):
    cin, cout, g, og, k, s, p, d = CASES[name]
    torch.manual_seed(seed)
    conv = DeformConv2d(cin, cout, k, s, p, d, groups=g, offset_groups=og)
    x = torch.randn(2, cin, 7, 9)
    ho, wo = conv.output_size(7, 9)
    taps = conv.kernel_size[0] * conv.kernel_size[1]
    # fractional offsets up to 4 px: many taps land partly or wholly outside the 7 x 9 image
    offset = (torch.rand(2, 2 * og * taps, ho, wo) - 0.5) * 8
    mask = torch.rand(2, og * taps, ho, wo)
    return conv, x, offset, mask


def run(conv, impl, x, offset, mask):
    """Output and gradients of a fixed weighted sum of it w.r.t. every input and parameter."""
    conv.impl = impl
    conv.zero_grad()
    x, offset, mask = (t.clone().requires_grad_() for t in (x, offset, mask))
    y = conv(x, offset, mask)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return {"out": y.detach(), "d_input": x.grad, "d_offset": offset.grad, "d_mask": mask.grad,
            "d_weight": conv.weight.grad.clone(), "d_bias": conv.bias.grad.clone()}


@pytest.mark.parametrize("name", list(CASES))
def test_grid_sample_path_equals_torchvision_values_and_gradients(name):
    conv, x, offset, mask = random_case(name)
    ref = run(conv, "torchvision", x, offset, mask)
    got = run(conv, "grid_sample", x, offset, mask)
    outside = (offset.abs() > 1).float().mean()
    assert outside > 0.4  # the case does test the borders
    for key in ref:
        err = (got[key] - ref[key]).abs().max().item()
        assert err < 1e-4, f"{key}: max abs difference {err:.2e}"
        assert ref[key].abs().max() > 1e-2, f"{key} is trivially zero"


@pytest.mark.parametrize("impl", ["torchvision", "grid_sample"])
@pytest.mark.parametrize("name", list(CASES))
def test_zero_offset_unit_mask_is_a_plain_conv(name, impl):
    conv, x, offset, mask = random_case(name)
    conv.impl = impl
    expected = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                        conv.groups)
    with torch.no_grad():
        for m in (None, torch.ones_like(mask)):
            torch.testing.assert_close(conv(x, torch.zeros_like(offset), m), expected,
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["torchvision", "grid_sample"])
def test_a_whole_pixel_offset_shifts_the_input(impl):
    """Layout check: channel 2k is dy and 2k + 1 is dx of tap k."""
    conv, x, offset, _ = random_case("plain")
    conv.impl = impl
    shift = torch.zeros_like(offset)
    shift[:, 0::2] = 1.0  # every tap reads one row lower: rows oy .. oy + 2, not oy - 1 .. oy + 1
    lowered = F.pad(x, (1, 1, 0, 2))
    with torch.no_grad():
        torch.testing.assert_close(conv(x, shift), F.conv2d(lowered, conv.weight, conv.bias),
                                   atol=1e-5, rtol=1e-5)


def test_auto_runs_grid_sample_on_cpu(monkeypatch):
    assert choose_impl("auto", torch.device("cpu")) == "grid_sample"
    assert choose_impl("auto", torch.device("cuda")) == "torchvision"
    conv, x, offset, mask = random_case("plain")

    def refuse(*args, **kwargs):
        raise AssertionError("torchvision path taken on CPU")

    monkeypatch.setattr(deform_mod, "torchvision_deform", refuse)
    assert conv.impl == "auto"
    conv(x, offset, mask)


def test_bad_impl_and_bad_offset_shape_are_refused():
    with pytest.raises(ValueError, match="unknown deformable-conv impl 'cuda'"):
        DeformConv2d(4, 4, impl="cuda")
    conv, x, offset, _ = random_case("plain")
    with pytest.raises(ValueError, match=r"offset must be \(2, 18, 7, 9\)"):
        conv(x, offset[:, :9])


@pytest.mark.parametrize("separate_feat", [False, True])
def test_modulated_deform_conv_starts_as_a_plain_conv_and_can_learn(separate_feat):
    torch.manual_seed(0)
    conv = ModulatedDeformConv(4, 6, feat_ch=5 if separate_feat else None)
    x = torch.randn(2, 4, 8, 10)
    feat = torch.randn(2, 5, 8, 10) if separate_feat else None
    y = conv(x, feat)
    torch.testing.assert_close(y, F.conv2d(x, conv.weight, conv.bias, padding=1),
                               atol=1e-5, rtol=1e-5)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    assert conv.conv_offset.weight.grad.abs().max() > 1e-3  # offsets and mask will move
