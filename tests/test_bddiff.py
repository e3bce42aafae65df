"""BD-Diff on the shared SD stack: the Q-Formers' outputs, the decoupled cross-attention of Eq.
5, which parameters each task trains, the 1:1:1 task sampling, a short run lowering each task's
loss, guidance at scale 1, and the held-out target domain."""

from __future__ import annotations

import pytest
import torch
from methods_kit import train_briefly

from deblurbench.methods.card import resolve_params
from deblurbench.methods.registry import discover, load_class
from deblurbench.methods.train_data import held_out

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _method(variant: str | None = None):
    card = discover()["bd-diff"]
    cls = load_class(card)
    m = cls(resolve_params(card, True, variant), "cpu")
    m.card = card
    return m


def _module(name: str):
    import sys

    _method()  # imports the plugin package
    return next(v for k, v in sys.modules.items()
                if k.startswith("deblurbench_plugins.bd_diff") and k.endswith(name))


def _batch(seed: int = 0, size: int = 48) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sharp = torch.nn.functional.avg_pool2d(torch.rand(4, 3, size, size, generator=g), 3, 1, 1)
    blurry = torch.nn.functional.avg_pool2d(sharp, 7, 1, 3, count_include_pad=False)
    return {"sharp": sharp, "blurry": blurry, "unpaired_blurry": blurry.flip(-1)}


@pytest.fixture(scope="module")
def method():
    m = _method()
    m._finish_base(_batch())  # as after stage base: the tiny base frozen, scale fitted
    return m


def test_a_qformer_gives_16_query_features_of_the_unet_width_and_reads_its_word():
    qf = _module(".qformer")
    torch.manual_seed(0)
    ext = qf.QFormerExtractor(vision_dim=48, out_dim=32, word_ids=[1125, 7], hidden=32,
                              layers=2, heads=4, intermediate=64, n_queries=16)
    image = torch.randn(2, 37, 48)
    out = ext(image)
    assert out.shape == (2, 16, 32)
    with torch.no_grad():
        ext.word.add_(1.0)  # another word, same image: other features
    assert not torch.allclose(ext(image), out)
    assert ext(image[:1]).shape == (1, 16, 32)


def test_the_method_builds_both_extractors_on_clip_features(method):
    x = _batch()["blurry"][:2]
    f_s, f_b = method.features(x, method.q_s), method.features(x, method.q_b)
    width = method.base.cross_attention_dim
    assert f_s.shape == f_b.shape == (2, 16, width)
    assert not torch.allclose(f_s, f_b)  # two Q-Formers, two words
    assert method.q_s.word_ids.tolist() != method.q_b.word_ids.tolist()


def test_decoupled_attention_without_blur_features_is_sds_own_and_adds_a_branch_with_them():
    from diffusers.models.attention_processor import AttnProcessor2_0

    dec = _module(".decoupled")
    m = _method()
    unet = m.base.unet
    torch.manual_seed(1)
    z, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    text = m.base.text_embeddings([""])
    with torch.no_grad():
        ours = unet(z, t, encoder_hidden_states=text).sample
        store: dict = {}
        saved = dict(unet.attn_processors)
        unet.set_attn_processor({k: AttnProcessor2_0() for k in saved})
        plain = unet(z, t, encoder_hidden_states=text).sample
        unet.set_attn_processor(saved)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-6)
    # with f_b in the store every attn2 adds Attention(Q, K', V')
    attn = dict(unet.named_modules())[next(iter(m.blur_kv.values())).source]
    kv = dec.BlurKV(attn)
    proc = dec.DecoupledProcessor(kv, store)
    h = torch.randn(1, 16, attn.to_q.in_features)
    f_b = torch.randn(1, 16, attn.to_k.in_features)
    with torch.no_grad():
        base = proc(attn, h, text)
        store["f_b"] = f_b
        both = proc(attn, h, text)
        q = attn.to_q(h)
        extra = torch.nn.functional.scaled_dot_product_attention(
            q.view(1, 16, attn.heads, -1).transpose(1, 2),
            kv.to_k(f_b).view(1, 16, attn.heads, -1).transpose(1, 2),
            kv.to_v(f_b).view(1, 16, attn.heads, -1).transpose(1, 2))
        want = attn.to_out[0](extra.transpose(1, 2).reshape(1, 16, -1)) - attn.to_out[0].bias
    torch.testing.assert_close(both - base, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("task", "trained"), [("t1", {"q_s", "adapter"}),
                                               ("t2", {"q_b", "blur_kv"}),
                                               ("t3", {"q_s", "q_b", "adapter", "blur_kv"})])
def test_each_task_sends_gradient_only_to_its_own_trained_parts(method, task, trained):
    with torch.no_grad():  # as after the first steps: the adapter's zero convs have moved
        g = torch.Generator().manual_seed(3)
        for conv in (*method.adapter.controlnet_down_blocks, method.adapter.controlnet_mid_block):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.01)
    for mod in (*method.trainable().values(), method.base.unet, method.vision):
        mod.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    method.task_loss(task, _batch(), (0, 1)).backward()
    got = {n for n, mod in method.trainable().items()
           if any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())}
    assert got == trained
    frozen = [*method.base.unet.parameters(), *method.base.vae.parameters(),
              *method.base.text_encoder.parameters(), *method.vision.parameters()]
    assert all(p.grad is None for p in frozen)
    assert not any(p.requires_grad for p in frozen)


def test_tasks_are_sampled_one_to_one_to_one_and_the_warm_up_has_no_reconstruction():
    task_for = _module(".bddiff_method").task_for
    joint = [task_for("joint", s) for s in range(1, 3001)]
    counts = {t: joint.count(t) for t in ("t1", "t2", "t3")}
    assert all(abs(c - 1000) < 110 for c in counts.values()), counts  # 4 sigma
    warm = [task_for("warmup", s) for s in range(1, 2001)]
    assert set(warm) == {"t1", "t2"} and abs(warm.count("t1") - 1000) < 90
    assert joint == [task_for("joint", s) for s in range(1, 3001)]  # a resumed run: the same
    with pytest.raises(ValueError, match="stage must be one of warmup, joint"):
        task_for("main", 1)


def test_losses_draw_the_task_of_the_current_stage_and_step(method):
    task_for = _module(".bddiff_method").task_for
    method.train_stage, method.train_step = "joint", 17
    torch.manual_seed(0)
    assert set(method.losses(_batch())) == {task_for("joint", 17)}
    del method.train_stage, method.train_step


@pytest.mark.parametrize("task", ["t1", "t2", "t3"])
def test_a_short_run_on_a_fixed_batch_lowers_each_tasks_loss(task):
    m = _method()
    m._finish_base(_batch())
    batch = _batch()

    def fixed() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return float(m.task_loss(task, batch, (0, 1)))

    before = fixed()
    train_briefly(m, lambda: m.task_loss(task, batch, (0, 1)), 20)
    after = fixed()
    assert after < 0.95 * before, (before, after)  # fixed noise: a real decrease


def test_guidance_at_scale_one_asks_only_for_the_conditional_prediction():
    m = _method("cfg1")
    m._finish_base(_batch())
    calls: list[bool] = []
    real = m.eps

    def spy(zt, t, window, conditional, ctx):
        calls.append(conditional)
        return real(zt, t, window, conditional, ctx)

    m.eps = spy
    x = _batch()["blurry"][:1, :, :32, :32]
    out1 = m.restore(x)
    assert calls and all(calls) and len(calls) == m.sampler.steps
    calls.clear()
    m7 = _method()
    m7.load_state_dict(m.state_dict())
    m7.eps = lambda zt, t, window, conditional, ctx: (calls.append(conditional), real(
        zt, t, window, True, ctx))[1]  # the unconditional branch answered with the conditional
    out7 = m7.restore(x)
    assert calls.count(False) == m7.sampler.steps
    torch.testing.assert_close(out7, out1)  # eps_u + s (eps_c - eps_u) = eps_c when they agree
    assert out1.shape == x.shape and 0 <= float(out1.min()) and float(out1.max()) <= 1


def test_the_target_domain_is_a_stable_held_out_share_disjoint_from_the_pairs():
    ids = [f"scene-{i:04d}" for i in range(2000)]
    held = [i for i in ids if held_out(i, 0.5)]
    assert abs(len(held) - 1000) < 90
    assert held == [i for i in ids if held_out(i, 0.5)]  # the same on every call and machine
    assert held_out("astronaut-01", 0.5) == held_out("astronaut-01", 0.5)
    assert not any(held_out(i, 0.0) for i in ids) and all(held_out(i, 1.0) for i in ids)


def test_t1_blurs_each_sharp_crop_with_a_corruption_drawn_from_its_seed():
    synthetic_blur = _module(".bddiff_method").synthetic_blur
    sharp = _batch()["sharp"]
    a, b = synthetic_blur(sharp, (0, 5)), synthetic_blur(sharp, (0, 5))
    torch.testing.assert_close(a, b)
    assert a.shape == sharp.shape and not torch.allclose(a, sharp, atol=1e-3)
    assert not torch.allclose(synthetic_blur(sharp, (0, 6)), a)


@pytest.fixture(scope="module")
def refined():
    m = _method("refined-vae")
    m._finish_base(_batch())
    return m


def test_an_untrained_refined_vae_is_the_vae_itself(refined):
    x = _batch()["blurry"][:2]
    vae = refined.base.vae
    with torch.no_grad():
        plain = vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample
        refined.refined.enabled = True
        try:
            ref = vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample
        finally:
            refined.refined.enabled = False
    torch.testing.assert_close(ref, plain, rtol=0, atol=0)  # zero-initialised refiners


@pytest.mark.parametrize(("stage", "part"), [("vae-encoder", "enc"), ("vae-decoder", "dec")])
def test_each_refined_vae_phase_trains_its_refiner_alone_and_lowers_its_loss(refined, stage,
                                                                            part):
    m = refined
    other = "dec" if part == "enc" else "enc"
    with torch.no_grad():  # as after phase 1: the encoder refiner has moved off zero
        for r in m.refined.enc:
            r.body[-1].weight.normal_(0, 1e-3)
    m.train_stage, m.train_step = stage, 1
    batch = _batch()

    def fixed() -> float:
        torch.manual_seed(5)
        with torch.no_grad():
            return float(next(iter(m.losses(batch).values())))

    before = fixed()
    m.refined.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    next(iter(m.losses(batch).values())).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in getattr(m.refined, part).parameters())
    assert all(p.grad is None for p in getattr(m.refined, other).parameters())
    assert all(p.grad is None for p in (*m.q_s.parameters(), *m.adapter.parameters()))
    opt = torch.optim.Adam(getattr(m.refined, part).parameters(), lr=1e-3)
    for _ in range(15):
        opt.zero_grad()
        torch.manual_seed(5)
        next(iter(m.losses(batch).values())).backward()
        opt.step()
    assert fixed() < before
    del m.train_stage, m.train_step


def test_the_refined_vae_restores_whole_images_and_its_stages_need_it_on():
    m = _method("refined-vae")
    m._finish_base(_batch())
    x = _batch()["blurry"][:1, :, :32, :32]
    out = m.restore(x)
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    plain = _method()
    plain.train_stage, plain.train_step = "vae-encoder", 1
    with pytest.raises(ValueError, match="set refined_vae: true"):
        plain.losses(_batch())
