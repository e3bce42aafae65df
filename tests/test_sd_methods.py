"""MBSD and DeblurDiff as methods on the shared SD stack: what each trains, that a short run on a
fixed batch lowers every loss term, the variants of their ablations, and sampling."""

from __future__ import annotations

import pytest
import torch
from methods_kit import train_briefly

from deblurbench.methods.card import resolve_params
from deblurbench.methods.registry import discover, load_class

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _method(name: str, variant: str | None = None):
    card = discover()[name]
    m = load_class(card)(resolve_params(card, True, variant), "cpu")
    m.card = card
    return m


def _batch(seed: int = 0, size: int = 48) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sharp = torch.nn.functional.avg_pool2d(torch.rand(2, 3, size, size, generator=g), 3, 1, 1)
    blurry = torch.nn.functional.avg_pool2d(sharp, 7, 1, 3, count_include_pad=False)
    return {"sharp": sharp, "blurry": blurry}


def _fixed_losses(m, batch) -> dict[str, float]:
    torch.manual_seed(123)  # the same timesteps and noise each time
    with torch.no_grad():
        return {k: float(v) for k, v in m.losses(batch).items()}


@pytest.mark.parametrize(("name", "terms"), [("mbsd", {"noise", "msbe", "restoration"}),
                                             ("deblurdiff", {"noise", "eac_latent"})])
def test_a_short_run_on_a_fixed_batch_lowers_every_loss_term(name, terms):
    m = _method(name)
    m._finish_base(_batch())  # as after stage base: the tiny base frozen, scale fitted
    batch = _batch()
    before = _fixed_losses(m, batch)
    assert set(before) == terms
    train_briefly(m, lambda: sum(m.loss_weights().get(k, 1.0) * v
                                 for k, v in m.losses(batch).items()), 25)
    after = _fixed_losses(m, batch)
    for k in terms:
        assert after[k] < before[k], (k, before[k], after[k])
    # only the paper's new parts learn: the base stays frozen
    assert not any(p.requires_grad for p in m.base.unet.parameters())


def test_mbsd_trains_its_new_parts_and_its_ablations_drop_them():
    full = _method("mbsd")
    assert set(full.trainable()) == {"controlnet", "baem", "heads", "pbca", "msbe"}
    assert len(full.pbca) > 0
    assert set(_method("mbsd", "pba-weights").trainable()) == {"controlnet", "baem", "heads",
                                                              "pbca"}
    brdm = _method("mbsd", "brdm-only")
    assert set(brdm.trainable()) == {"controlnet"}
    assert set(brdm.losses(_batch())) == {"noise"}
    assert set(_method("mbsd", "pba-weights").losses(_batch())) == {"noise", "restoration"}
    assert _method("mbsd", "msbe").loss_weights()["restoration"] == 0.0


def test_mbsd_pbca_blocks_read_controlnet_features_of_their_resolution():
    m = _method("mbsd")
    seen = []
    for name, blk in m.pbca.items():
        blk.register_forward_hook(lambda mod, i, o, n=name: seen.append((n, i[0].shape[-1],
                                                                         i[1].shape[-1])))
    m.losses(_batch(size=64))
    assert {n for n, _, _ in seen} == set(m.pbca)  # every block got a context
    assert all(q == c for _, q, c in seen)


@pytest.mark.parametrize("name", ["mbsd", "deblurdiff"])
def test_restore_keeps_the_shape_and_range(name):
    m = _method(name)
    x = torch.rand(1, 3, 64, 128)
    y = m.restore(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1 and torch.isfinite(y).all()


def test_deblurdiff_feeds_the_x0_estimate_back_only_when_refining():
    x = torch.rand(1, 3, 64, 64)
    seen = {}
    for variant in (None, "static-lkpn"):
        m = _method("deblurdiff", variant)
        inputs = []
        m.lkpn.register_forward_hook(lambda mod, i, o, acc=inputs: acc.append(i[0].clone()))
        ctx_steps = []
        orig = m.on_step

        def spy(ctx, i, t, x0, orig=orig, acc=ctx_steps):
            acc.append(x0.clone())
            orig(ctx, i, t, x0)

        m.on_step = spy
        m.restore(x)
        seen[variant] = (inputs, ctx_steps)
    inputs, x0s = seen[None]
    assert torch.equal(inputs[1], x0s[0])  # step 2 sees step 1's x0 estimate
    static_inputs, static_x0 = seen["static-lkpn"]
    assert not torch.equal(static_inputs[1], static_x0[0])
