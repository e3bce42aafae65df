"""Shared NN blocks: LayerNorm2d's definition, NAFNet's identity start, mean-free residual,
paper parameter count, that a tiny NAFNet learns; and the Charbonnier loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deblurbench.nn import (
    CharbonnierLoss,
    Downsample,
    LayerNorm2d,
    NAFBlock,
    NAFNet,
    PixelShuffleDown,
    Upsample,
    charbonnier,
    count_parameters,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_nafnet(**kw) -> NAFNet:
    return NAFNet(width=8, middle_blk_num=1, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1), **kw)


def test_layernorm2d_normalises_each_pixel_over_channels():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7) * 3 + 2
    y = LayerNorm2d(6)(x)  # weight 1, bias 0 at init
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 5, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 5, 7), atol=1e-4, rtol=0)


def test_layernorm2d_equals_torch_layernorm_on_channels_last():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7)
    ln2d = LayerNorm2d(6)
    ref = torch.nn.LayerNorm(6, eps=ln2d.eps)
    with torch.no_grad():
        for p in (ln2d.weight, ln2d.bias):
            p.copy_(torch.randn(6))
        ref.weight.copy_(ln2d.weight)
        ref.bias.copy_(ln2d.bias)
    expected = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln2d(x), expected, atol=1e-5, rtol=1e-5)


def test_resampling_blocks_change_size_and_channels_as_nafnet():
    x = torch.randn(1, 8, 6, 10)
    assert Downsample(8)(x).shape == (1, 16, 3, 5)
    assert Upsample(8)(x).shape == (1, 4, 12, 20)
    assert PixelShuffleDown(8)(x).shape == (1, 16, 3, 5)


def test_new_nafblock_is_the_identity():
    """beta and gamma start at 0, so both residual branches add nothing."""
    x = torch.randn(2, 8, 9, 11)
    assert torch.equal(NAFBlock(8)(x), x)


def test_zero_init_nafnet_is_exactly_the_identity_on_odd_sizes():
    torch.manual_seed(0)
    net = tiny_nafnet()
    assert net.padder_size == 4
    x = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)


def test_inputs_smaller_than_the_padding_still_work():
    net = tiny_nafnet(zero_init_out=False)  # 3 x 2 needs a pad of 1 and 2: reflect cannot
    assert net(torch.rand(1, 3, 3, 2)).shape == (1, 3, 3, 2)


def test_zero_mean_residual_removes_each_channels_mean():
    torch.manual_seed(0)
    net = tiny_nafnet(zero_init_out=False, zero_mean_residual=True)
    for block in net.modules():  # open the NAFBlock branches too
        if isinstance(block, NAFBlock):
            torch.nn.init.normal_(block.beta, std=0.5)
            torch.nn.init.normal_(block.gamma, std=0.5)
    x = torch.rand(2, 3, 37, 53)
    with torch.no_grad():
        r = net(x) - x
    assert r.abs().mean() > 1e-3  # the residual is not trivially zero
    torch.testing.assert_close(r.mean(dim=(2, 3)), torch.zeros(2, 3), atol=1e-6, rtol=0)
    plain = tiny_nafnet(zero_init_out=False)
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert (plain(x) - x).mean(dim=(2, 3)).abs().max() > 1e-4  # the option did it


def test_paper_configuration_has_the_published_parameter_count():
    """NAFNet-GoPro-width32: 17.11 M parameters in the paper (measured: 17,111,907)."""
    n = count_parameters(NAFNet())
    assert n == pytest.approx(17.11e6, rel=0.01)


def test_tiny_nafnet_learns_to_deblur_a_toy_set():
    torch.manual_seed(0)
    sharp = F.interpolate(torch.rand(4, 3, 8, 8), size=(32, 32), mode="bilinear",
                          align_corners=False)
    box = torch.full((3, 1, 5, 5), 1 / 25)
    blurry = F.conv2d(F.pad(sharp, (2, 2, 2, 2), mode="reflect"), box, groups=3)
    net = tiny_nafnet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    first = None
    for _ in range(30):
        loss = F.l1_loss(net(blurry), sharp)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = F.l1_loss(net(blurry), sharp).item()
    assert first == pytest.approx(F.l1_loss(blurry, sharp).item())  # starts as the identity
    assert final < 0.88 * first  # measured: 0.78 x


def test_charbonnier_is_the_mean_of_sqrt_of_squared_error_plus_eps_squared():
    pred = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    target = torch.zeros(2, 2)
    # one error of 3 with eps 4 gives 5, three errors of 0 give eps = 4: mean 4.25
    assert charbonnier(pred, target, eps=4.0).item() == pytest.approx(4.25)
    assert CharbonnierLoss()(target, target).item() == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="differ in shape"):
        charbonnier(pred, target[0])


def test_a_trainable_state_keeps_only_what_training_changes():
    from deblurbench.nn import load_trainable_state_dict, trainable_state_dict

    frozen = torch.nn.Conv2d(3, 3, 1)
    frozen.requires_grad_(False)
    model = torch.nn.Sequential(frozen, torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 3, 1))
    state = trainable_state_dict(model)
    assert not any(k.startswith("0.") for k in state)
    assert {"1.weight", "1.running_mean", "2.weight", "2.bias"} <= set(state)
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3),
                                torch.nn.Conv2d(3, 3, 1))
    other[0].requires_grad_(False)
    load_trainable_state_dict(other, state)
    assert torch.equal(other[2].weight, model[2].weight)
    with pytest.raises(ValueError, match="missing"):
        load_trainable_state_dict(other, {})
