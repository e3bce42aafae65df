"""The shared Stable-Diffusion stack (:mod:`deblurbench.sd`): the offline tokenizer, the tiny
base and its round trip through the same ``from_pretrained`` path an imported snapshot takes,
the sampler's guidance and latent tiling, and the tiny base's own training stage."""

from __future__ import annotations

import hashlib

import pytest
import torch

from deblurbench import weights
from deblurbench.methods.card import resolve_params
from deblurbench.methods.registry import discover, load_class
from deblurbench.sd import base as sd_base
from deblurbench.sd import latents, sampler, tokenizer, training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- tokenizer -------------------------------------------------------------------------------

def test_tokenizer_reads_the_clip_vocabulary_that_ships_with_openai_clip_and_checks_it():
    path = tokenizer.vocab_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == tokenizer.VOCAB_SHA256
    ids = tokenizer.tokenize(["a photo", ""], pad_id=0)
    assert ids.shape == (2, 77)
    start, end = tokenizer.VOCAB_SIZE - 2, tokenizer.VOCAB_SIZE - 1
    assert ids[0, 0] == start and ids[0, 3] == end and torch.all(ids[0, 4:] == 0)
    assert ids[1, :2].tolist() == [start, end]
    # SD 1.5's tokenizer pads with the end token instead
    assert torch.all(tokenizer.tokenize([""], pad_id=end)[0, 1:] == end)


# --- the tiny base and the pretrained path ---------------------------------------------------

def test_tiny_base_has_the_sizes_the_issue_measured_and_is_seeded():
    a = sd_base.build_tiny(sd_base.FAMILIES["sd21-base"], seed=3)
    b = sd_base.build_tiny(sd_base.FAMILIES["sd21-base"], seed=3)
    sizes = {n: sum(p.numel() for p in m.parameters()) for n, m in a.modules().items()}
    assert 1.0e6 < sizes["unet"] < 2.5e6
    assert 0.15e6 < sizes["vae"] < 0.4e6
    assert 1.2e6 < sizes["text_encoder"] < 2.0e6
    assert a.source == "tiny, random init"
    for m, n in zip(a.modules().values(), b.modules().values(), strict=True):
        assert all(torch.equal(p, q) for p, q in zip(m.parameters(), n.parameters(),
                                                     strict=True))


def test_a_saved_tiny_pipeline_loads_back_through_the_imported_snapshot_path(hf_cache, tmp_path):
    """save_pretrained -> ``weights import`` into the HF cache -> the method loads it with the
    same from_pretrained calls a real SD 2.1 snapshot takes, and records its digests."""
    fam = sd_base.FAMILIES["sd21-base"]
    saved = sd_base.build_tiny(fam, seed=7)
    saved.save_pretrained(tmp_path / "provided" / fam.repo)
    card = discover()["deblurdiff"]
    part = next(p for p in card.pretrained if p.id == "sd21-base")
    assert part.digests == "recorded"
    placed = weights.import_dir(tmp_path / "provided", {"method:deblurdiff/sd21-base":
                                                        tuple(part.files)})
    assert len(placed) == len(part.files) == 7
    assert all(str(p).startswith(str(hf_cache)) for _, p in placed)

    method = load_class(card)(resolve_params(card, True), "cpu")
    used = {w["id"]: w for w in method.weights_used()}["sd21-base"]
    assert used["status"] == "loaded", used.get("reason")
    assert len(used["sha256"]) == 7
    assert method.base.source == "pretrained sd21-base" and not method.base.is_tiny
    for name, m in saved.modules().items():
        got = method.base.modules()[name].state_dict()
        assert all(torch.equal(v, got[k]) for k, v in m.state_dict().items()), name
    assert method.base.ddim().config.beta_schedule == "scaled_linear"
    # an imported base is frozen and kept out of the checkpoint
    assert not any(p.requires_grad for p in method.base.unet.parameters())
    assert method.state_dict()["base"] == {}


def test_without_imported_files_the_base_is_tiny_and_says_which_files_are_missing(hf_cache):
    card = discover()["mbsd"]
    method = load_class(card)(resolve_params(card, True), "cpu")
    used = {w["id"]: w for w in method.weights_used()}["sd2-base"]
    assert used["status"] == "random init"
    assert "stabilityai/stable-diffusion-2-base/unet/diffusion_pytorch_model.safetensors" in \
        used["reason"]
    assert method.base.is_tiny
    # the tiny base is trained here, so its weights go into the checkpoint
    assert set(method.state_dict()["base"]) >= {"vae", "unet", "text_encoder", "latent_scale"}


@pytest.mark.parametrize(("method", "family"), [("mbsd", "sd2-base"),
                                                 ("deblurdiff", "sd21-base")])
def test_weights_status_lists_each_methods_snapshot_files(hf_cache, method, family):
    repo = sd_base.FAMILIES[family].repo
    rows = [r for r in weights.status() if r["metric"] == f"method:{method}/{family}"]
    want = {f"{repo}/{comp}/{n}" for comp, names in sd_base.COMPONENT_FILES.items()
            for n in names}
    assert {r["file"] for r in rows} == want
    assert not any(r["present"] for r in rows)
    assert all(r["url"].startswith(f"https://huggingface.co/{repo}/resolve/main/") for r in rows)


# --- sampler ---------------------------------------------------------------------------------

def test_guidance_scale_one_is_the_conditional_prediction_itself():
    c, u = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    assert sampler.cfg(u, c, 1.0) is c
    torch.testing.assert_close(sampler.cfg(u, c, 3.0), u + 3 * (c - u))


def _scheduler():
    return sd_base.build_tiny(sd_base.FAMILIES["sd2-base"]).ddim()


def test_sampler_calls_the_unconditional_branch_only_with_guidance():
    calls = []

    def eps(zt, t, window, conditional):
        calls.append(conditional)
        return torch.zeros_like(zt)

    z = torch.zeros(1, 4, 4, 4)
    sampler.ddim_sample(_scheduler(), eps, z, sampler.SamplerSettings(steps=3))
    assert calls == [True] * 3
    calls.clear()
    sampler.ddim_sample(_scheduler(), eps, z, sampler.SamplerSettings(steps=3, guidance=5.0))
    assert sorted(calls) == [False] * 3 + [True] * 3


def test_latent_tiling_is_exact_for_a_pointwise_step_and_blends_without_seams():
    z = torch.randn(1, 4, 40, 56)

    def pointwise(zt, window):
        return torch.tanh(zt) * 2

    torch.testing.assert_close(latents.tiled(pointwise, z, 16, 6), pointwise(z, None))

    def by_window(zt, window):  # each tile answers a constant: its own top-left corner
        return torch.full_like(zt, float(window[0] + window[2]))

    out = latents.tiled(by_window, z, 16, 6)
    hard = torch.zeros_like(z)
    for y0, y1, x0, x1 in latents.windows(40, 56, 16, 6):
        hard[..., y0:y1, x0:x1] = y0 + x0
    # independent tiles jump at each tile edge; blended tiles change gradually
    jump_hard = (hard[..., :, 1:] - hard[..., :, :-1]).abs().max()
    jump = (out[..., :, 1:] - out[..., :, :-1]).abs().max()
    assert jump < jump_hard / 3


def test_sampling_with_a_latent_tile_matches_a_pointwise_model_untiled():
    z = torch.randn(1, 4, 24, 40)

    def eps(zt, t, window, conditional):
        return 0.1 * zt

    whole = sampler.ddim_sample(_scheduler(), eps, z, sampler.SamplerSettings(steps=4))
    tiles = sampler.ddim_sample(_scheduler(), eps, z,
                                sampler.SamplerSettings(steps=4, tile=16, tile_overlap=6))
    torch.testing.assert_close(whole, tiles, atol=1e-5, rtol=0)


# --- the tiny base's own stage ---------------------------------------------------------------

def test_base_stage_lowers_the_vae_and_unet_losses_and_fits_the_latent_scale():
    torch.manual_seed(0)
    base = sd_base.build_tiny(sd_base.FAMILIES["sd2-base"], seed=0)
    x = torch.rand(2, 3, 32, 32)
    x = torch.nn.functional.avg_pool2d(x, 5, 1, 2)  # some structure to reconstruct
    opt = torch.optim.AdamW(training.base_parameters(base), lr=2e-3, weight_decay=0)
    ddpm = base.ddpm()

    torch.manual_seed(1)  # the same t, noise and posterior sample before and after
    first = training.base_step(base, x, ddpm, ["", ""], lambda loss: None)
    for _ in range(40):
        opt.zero_grad()
        training.base_step(base, x, ddpm, ["", ""], lambda loss: loss.backward())
        opt.step()
    torch.manual_seed(1)
    last = training.base_step(base, x, ddpm, ["", ""], lambda loss: None)
    assert last["vae_l1"] < 0.7 * first["vae_l1"]
    assert last["unet_noise"] < first["unet_noise"]
    with pytest.raises(ValueError, match="2 prompts for a batch of 1"):
        training.base_step(base, x[:1], ddpm, ["", ""], lambda loss: None)
    scale = training.end_base_stage(base, x)
    z = latents.encode(base.vae, x, scale)
    assert float(z.std()) == pytest.approx(1.0, rel=1e-3)
    assert not any(p.requires_grad for p in base.vae.parameters())
