"""EMA of weights: the closed form, exact resume from its state, and a swap that restores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deblurbench.nn import EMA

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def set_weights(net: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)


def test_shadow_covers_float_parameters_and_buffers_only():
    ema = EMA(model())
    assert set(ema.shadow) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                               "1.running_var"}  # not the integer num_batches_tracked


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_towards_constant_weights_follows_the_closed_form(warmup):
    """Weights held at c from a shadow at w0: s_n = c + (w0 - c) * prod of the n decays."""
    net = model()
    set_weights(net, 2.0)
    ema = EMA(net, decay=0.9, warmup=warmup)
    set_weights(net, 5.0)
    for _ in range(20):
        ema.update(net)
    decays = [min(0.9, (1 + n) / (10 + n)) if warmup else 0.9 for n in range(20)]
    expected = 5.0 + (2.0 - 5.0) * torch.tensor(decays, dtype=torch.float64).prod().item()
    assert ema.num_updates == 20
    torch.testing.assert_close(ema.shadow["0.weight"], torch.full((4, 3), expected))
    torch.testing.assert_close(ema.shadow["1.bias"], torch.full((4,), expected))
    if warmup:  # the first update keeps only 10% of the initial weights
        assert decays[0] == pytest.approx(0.1)


def train_steps(net: nn.Module, ema: EMA, steps: int, seed: int) -> None:
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = net(torch.randn(8, 3, generator=gen)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(net)


def test_state_dict_round_trip_resumes_identically():
    net_a = model()
    ema_a = EMA(net_a, decay=0.99)
    train_steps(net_a, ema_a, 5, seed=1)
    saved_net = {k: v.clone() for k, v in net_a.state_dict().items()}
    saved_ema = ema_a.state_dict()
    assert saved_ema["num_updates"] == 5
    train_steps(net_a, ema_a, 5, seed=2)

    net_b = model(seed=123)  # a fresh process: other weights, fresh EMA
    ema_b = EMA(net_b)
    net_b.load_state_dict(saved_net)
    ema_b.load_state_dict(saved_ema)
    train_steps(net_b, ema_b, 5, seed=2)

    assert ema_b.num_updates == ema_a.num_updates == 10
    for k in ema_a.shadow:
        assert torch.equal(ema_a.shadow[k], ema_b.shadow[k]), k


def test_state_dict_is_a_copy_and_mismatches_are_refused():
    ema = EMA(model())
    state = ema.state_dict()
    state["shadow"]["0.weight"].add_(1.0)
    assert not torch.equal(state["shadow"]["0.weight"], ema.shadow["0.weight"])
    state["shadow"].pop("0.bias")
    with pytest.raises(ValueError, match=r"missing \['0.bias'\]"):
        ema.load_state_dict(state)


def test_swapped_puts_ema_weights_in_and_restores_the_live_ones():
    net = model()
    ema = EMA(net, decay=0.5, warmup=False)
    set_weights(net, 1.0)
    ema.update(net)
    live = {k: v.clone() for k, v in net.state_dict().items()}
    with ema.swapped(net) as swapped:
        assert swapped is net
        assert torch.equal(net[0].weight, ema.shadow["0.weight"])
        assert not torch.equal(net[0].weight, live["0.weight"])
    for k, v in net.state_dict().items():
        assert torch.equal(v, live[k]), k
    with pytest.raises(RuntimeError, match="boom"), ema.swapped(net):
        raise RuntimeError("boom")
    assert torch.equal(net[0].weight, live["0.weight"])


def test_copy_to_writes_the_shadow_into_the_model():
    net = model()
    ema = EMA(net, decay=0.5, warmup=False)
    set_weights(net, 3.0)
    ema.update(net)
    ema.copy_to(net)
    assert torch.equal(net[0].weight, ema.shadow["0.weight"])
