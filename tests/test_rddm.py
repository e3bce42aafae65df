"""RDDM (methods/rddm): module shapes and sizes, the DDIM step by hand, the noise schedule, the
blur map's training-only path, that each training stage lowers its loss, exact resume, seeded
sampling, and the random-init fallback of the pretrained parts."""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from conftest import REPO
from methods_kit import build_project

from deblurbench.methods.card import load_method_card, resolve_params
from deblurbench.methods.checkpoint import checkpoint_path, load_checkpoint
from deblurbench.methods.registry import load_class
from deblurbench.nn import count_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")
D = "synthetic-defocus"
CARD = load_method_card(REPO / "methods" / "rddm" / "method.yaml")
RDDM = load_class(CARD)
PKG = RDDM.__module__.rsplit(".", 1)[0]
schedule = importlib.import_module(f"{PKG}.schedule")
denoiser_mod = importlib.import_module(f"{PKG}.denoiser")

#: a tiny configuration for the training tests (64 px project images, seconds per run)
TINY = {"pre_width": 8, "width": 8, "enc_blks": [1, 1], "dec_blks": [1, 1],
        "guidance_ch": 8, "batch_size": 2, "crop_size": 32, "val_images": 1}


def params(small: bool = True, **over) -> dict:
    return resolve_params(CARD, small) | over


# -- modules ------------------------------------------------------------------------------------
def test_paper_config_modules_have_the_documented_shapes_and_sizes():
    """The paper reports no parameter count; these are the counts CARD.md gives. The paper's
    design choice holds: a light pre-deblur module beside a much larger denoiser."""
    torch.manual_seed(0)
    m = RDDM(params(small=False))
    sizes = {n: count_parameters(getattr(m, n))
             for n in ("estimator", "predeblur", "guidance", "denoiser")}
    assert sizes == {"estimator": 3_714_401, "predeblur": 595_480, "guidance": 8_662_208,
                     "denoiser": 31_520_659}
    # ResNet-50 without layer4 and fc: 25,557,032 - 14,964,736 - 2,049,000, all frozen
    assert count_parameters(m.guidance) - count_parameters(m.guidance, True) == 8_543_296
    assert sizes["predeblur"] * 10 < sizes["denoiser"]
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        bmap = m.estimator(x)
        assert bmap.shape == (1, 1, 64, 96) and 0 <= float(bmap.min()) <= float(bmap.max()) <= 1
        ip = m.predeblur(x, bmap)
        torch.testing.assert_close(ip, x)  # the correction conv starts at zero
        s = m.guidance(ip)
        assert s.shape == (1, 64, 16, 24)  # ResNet stage-1 grid, H_theta's 64 channels
        r = m.denoiser(torch.randn(1, 3, 64, 96), torch.tensor([650]), torch.cat([ip, bmap], 1),
                       s)
        assert r.shape == (1, 3, 64, 96) and float(r.abs().max()) == 0  # zero-init output


@pytest.mark.parametrize("variant", [None, "map-from-predeblur", "cosine", "steps4"])
def test_small_config_restores_any_size_and_untrained_returns_the_input(variant):
    m = RDDM(resolve_params(CARD, True, variant))
    assert m.predeblur.in_ch == (3 if variant == "map-from-predeblur" else 4)
    x = torch.rand(1, 3, 50, 70)  # not a multiple of the network's 32: padded and cropped back
    with torch.no_grad():
        y = m.restore(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)  # I_p = I_b and R = 0 before training


# -- diffusion ----------------------------------------------------------------------------------
def test_ddim_step_with_sigma_zero_matches_a_hand_computation():
    # alpha_bar_t = 0.5, alpha_bar_{t-1} = 0.9, x_t = 1.0, predicted residual 0.2:
    # m = sqrt(0.1) / sqrt(0.5) = 0.4472136, k = sqrt(0.9) - m sqrt(0.5) = 0.9486833 - 0.3162278
    # = 0.6324555, x_{t-1} = 0.4472136 * 1.0 + 0.6324555 * 0.2 = 0.5737047
    m, k = schedule.ddim_coefficients(0.5, 0.9)
    assert m == pytest.approx(0.4472136, abs=1e-7) and k == pytest.approx(0.6324555, abs=1e-7)
    out = schedule.ddim_step(torch.tensor([1.0]), torch.tensor([0.2]), 0.5, 0.9)
    assert float(out) == pytest.approx(0.5737047, abs=1e-6)
    # the last step (to alpha_bar_0 = 1) returns the predicted residual itself (Eq. 15)
    last = schedule.ddim_step(torch.tensor([0.7]), torch.tensor([0.2]), 0.3, 1.0)
    assert float(last) == pytest.approx(0.2, abs=1e-7)
    # with the exact x0 the step moves x_t to the same noise at the earlier time (sigma = 0)
    x0, eps = torch.randn(5), torch.randn(5)
    xt = math.sqrt(0.5) * x0 + math.sqrt(0.5) * eps
    prev = schedule.ddim_step(xt, x0, 0.5, 0.9)
    torch.testing.assert_close(prev, math.sqrt(0.9) * x0 + math.sqrt(0.1) * eps)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_noise_schedule_falls_from_one_to_zero_over_1300_steps(kind):
    ab = schedule.alpha_bars(1300, kind)
    assert ab.shape == (1301,) and float(ab[0]) == 1.0
    assert bool((ab[1:] < ab[:-1]).all())
    assert float(ab[1]) > 0.999 and float(ab[1300]) < 1e-4
    if kind == "linear":  # beta 1e-4 .. 0.02: alpha_bar_1 = 1 - 1e-4
        assert float(ab[1]) == pytest.approx(1 - 1e-4, abs=1e-12)
        assert float(ab[1300]) < 1e-5


def test_losses_are_eq_12_l1_and_the_psnr_variant():
    m = RDDM(params())
    r, r0 = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)
    assert float(m._loss(r, r0)) == pytest.approx(0.1)
    m.params["loss"] = "psnr"  # -PSNR of the residual, up to the constant: 10 log10(mse)
    assert float(m._loss(r, r0)) == pytest.approx(10 * math.log10(0.01), abs=1e-4)


def test_inference_timesteps_follow_algorithm_1():
    assert schedule.ddim_timesteps(1300, 2) == [1300, 650]
    assert schedule.ddim_timesteps(1300, 3) == [1300, 867, 433]
    assert schedule.ddim_timesteps(1300, 4) == [1300, 975, 650, 325]
    assert CARD.params["sample_steps"] == 2
    assert {v: CARD.variants[v]["sample_steps"] for v in ("steps2", "steps3", "steps4")} == {
        "steps2": 2, "steps3": 3, "steps4": 4}


def test_sampling_is_deterministic_given_the_seed_whatever_the_global_rng():
    torch.manual_seed(0)
    m = RDDM(params())
    with torch.no_grad():  # make R depend on x_T: both start at zero
        torch.nn.init.normal_(m.denoiser.ending.weight, std=0.05)
        torch.nn.init.normal_(m.denoiser.intro.weight[:, :3], std=0.1)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        a = m.restore(x)
        torch.manual_seed(2)
        b = m.restore(x)
        m.params["sample_seed"] = 1
        c = m.restore(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flops_probe_counts_the_whole_sampler_once():
    m = RDDM(params())
    fn, times, how = m.flops_probe(torch.rand(1, 3, 32, 32))
    assert times == 1 and "2 denoiser passes" in how
    assert fn().shape == (1, 3, 32, 32)


# -- training through the CLI's engine ----------------------------------------------------------
@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    return build_project(tmp_path_factory.mktemp("rddm") / "proj")


@pytest.fixture
def env(proj, monkeypatch):
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(proj))
    monkeypatch.chdir(proj)
    return proj


def _train(name_over: dict, **kw) -> dict:
    from deblurbench.methods.train import train_method

    return train_method("rddm", D, device="cpu", small=True, overrides=TINY | name_over, **kw)


def test_blur_map_reaches_training_but_never_restore(env, monkeypatch):
    assert CARD.inputs == ["blurry"] and CARD.train_inputs == ["blur_map"]
    from deblurbench.methods.registry import get_card

    cls = load_class(get_card("rddm"))
    seen_train, seen_restore = set(), []
    plain_est, plain_restore = cls._estimator_step, cls.restore

    def est_step(self, batch, *a):
        seen_train.update(batch)
        return plain_est(self, batch, *a)

    def restore(self, batch, **extras):
        seen_restore.append(sorted(extras))
        return plain_restore(self, batch, **extras)

    monkeypatch.setattr(cls, "_estimator_step", est_step)
    monkeypatch.setattr(cls, "restore", restore)
    rec = _train({"stages": [{"name": "estimator", "steps": 1, "lr": 1e-3},
                             {"name": "diffusion", "steps": 1}], "train_steps": 2,
                  "validate_every": 1}, force=True)
    assert rec["status"] == "finished", rec["error"]
    assert {"blurry", "sharp", "blur_map"} <= seen_train
    assert seen_restore and all(keys == [] for keys in seen_restore)  # validation restores
    with pytest.raises(ValueError, match="training-only"):
        RDDM(params()).restore(torch.rand(1, 3, 32, 32), blur_map=torch.rand(1, 1, 32, 32))


def _mean(hist: list[dict], key: str, first: bool, n: int = 6) -> float:
    vals = [h[key] for h in hist if key in h]
    part = vals[:n] if first else vals[-n:]
    return sum(part) / len(part)


def test_short_training_lowers_the_loss_of_each_stage(env):
    rec = _train({"stages": [{"name": "estimator", "steps": 30, "lr": 3e-3},
                             {"name": "diffusion", "steps": 40}], "train_steps": 70,
                  "lr": 2e-3, "validate_every": 0, "checkpoint_every": 100}, force=True)
    assert rec["status"] == "finished", rec["error"]
    hist = rec["history"]
    assert len([h for h in hist if "bce" in h]) == 30 and len([h for h in hist if "l1" in h]) == 40
    for key in ("bce", "map_mae_px", "l1", "predeblur_l1"):
        assert _mean(hist, key, first=False) < _mean(hist, key, first=True), key


def test_interrupted_training_resumes_to_the_same_weights(env, monkeypatch):
    from deblurbench.methods.train_context import TrainContext

    over = {"stages": [{"name": "estimator", "steps": 2, "lr": 1e-3},
                       {"name": "diffusion", "steps": 4}], "train_steps": 6,
            "checkpoint_every": 2, "validate_every": 3}
    straight = _train(over, force=True)
    assert straight["status"] == "finished", straight["error"]
    want = load_checkpoint(checkpoint_path("rddm", D, "small"))["state"]
    plain = TrainContext.step

    def crash_at_5(self, loss=None):
        if self.global_step == 4:
            raise RuntimeError("crash requested")
        return plain(self, loss)

    monkeypatch.setattr(TrainContext, "step", crash_at_5)
    crashed = _train(over, force=True)
    assert crashed["status"] == "failed" and "crash requested" in crashed["error"]
    ckpt = load_checkpoint(checkpoint_path("rddm", D, "small"))
    assert ckpt["step"] == 4 and not ckpt["finished"]  # in the middle of the diffusion stage
    monkeypatch.setattr(TrainContext, "step", plain)
    resumed = _train(over)
    assert resumed["status"] == "finished" and resumed["resumed_from"] == 4
    got = load_checkpoint(checkpoint_path("rddm", D, "small"))["state"]
    for part in want:
        for k in want[part]:
            assert torch.equal(want[part][k], got[part][k]), (part, k)
    assert straight["val_history"] == resumed["val_history"]


# -- pretrained parts ---------------------------------------------------------------------------
def test_pretrained_parts_fall_back_to_random_init_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty weights cache
    m = RDDM(params(small=False))
    used = {w["id"]: w for w in m.weights_used()}
    assert used["resnet50"]["status"] == "random init"
    assert "resnet50-0676ba61.pth" in used["resnet50"]["reason"]
    assert used["segformer"]["status"] == "random init"
    assert "lists no pretrained part 'segformer'" in used["segformer"]["reason"]
    # a random-init backbone is saved with the checkpoint, so that restore sees the same one
    assert any(k.startswith("backbone.") for k in m.state_dict()["guidance"])
    small = {w["id"]: w["status"] for w in RDDM(params()).weights_used()}
    assert small == {"segformer": "random init", "resnet10": "random init"}


def test_imported_weights_load_into_the_guidance_backbone_and_the_estimator():
    import torchvision

    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None)
    guide = denoiser_mod.SemanticGuidance("resnet18", 8)
    guide.load_backbone(ref.state_dict())
    torch.testing.assert_close(guide.backbone["layer3"][1].conv2.weight, ref.layer3[1].conv2.weight)
    torch.testing.assert_close(guide.backbone["stem"][0].weight, ref.conv1.weight)
    with pytest.raises(ValueError, match="lack"):
        denoiser_mod.SemanticGuidance("resnet50", 8).load_backbone(ref.state_dict())


def test_estimator_loads_a_segformer_state_dict(tmp_path):
    est_mod = importlib.import_module(f"{PKG}.estimator")
    p = params()
    torch.manual_seed(4)
    a, b = est_mod.DefocusMapEstimator(p), est_mod.DefocusMapEstimator(p)
    torch.save(a.seg.state_dict(), tmp_path / "seg.pth")
    assert b.load_files({"seg.pth": tmp_path / "seg.pth"}) == []
    x = torch.rand(1, 3, 32, 32)
    a.eval()
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
