"""Calibration: closed-form values and agreement with scikit-image and pyiqa (stated tolerances)."""

from __future__ import annotations

import cv2
import numpy as np
import pyiqa
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblurbench.metrics import fidelity
from deblurbench.metrics.ms_ssim import ms_ssim
from deblurbench.metrics.pyiqa_models import to_tensor
from deblurbench.metrics.spec import MetricFailure, get_metric, metric_names, spec_id


def pair(seed=0, h=203, w=261, noise=0.03):
    rng = np.random.default_rng(seed)
    a = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2)
    b = np.clip(a + rng.normal(0, noise, a.shape).astype(np.float32), 0, 1)
    return b, a


def test_identical_images_give_each_metrics_documented_value():
    _, a = pair()
    for protocol in ("defocus", "matlab"):
        for name in ("psnr", "psnr_y", "ssim", "mae", "ms_ssim"):
            m = get_metric(name, protocol)
            assert m.fn(a, a) == m.spec.identical_value, (protocol, name)
    assert fidelity.psnr(a, a) == float("inf") and fidelity.mae(a, a) == 0.0


def test_constant_offset_gives_the_closed_form_psnr_and_mae():
    rng = np.random.default_rng(1)
    a = (0.1 + 0.7 * rng.random((40, 50, 3))).astype(np.float32)
    c = np.float32(0.05)
    b = a + c
    exact = float(np.mean((b.astype(np.float64) - a) ** 2))  # c after float32 rounding
    assert exact == pytest.approx(0.0025, rel=1e-5)
    assert fidelity.psnr(b, a) == pytest.approx(10 * np.log10(1 / exact), abs=1e-12)
    assert fidelity.psnr(b, a) == pytest.approx(20 * np.log10(1 / 0.05), abs=1e-4)  # 26.0206
    assert fidelity.mae(b, a) == pytest.approx(0.05, abs=1e-6)
    # Luma offset: Y shifts by 0.05 * (65.481 + 128.553 + 24.966) / 255 = 0.05 * 219/255.
    assert fidelity.psnr_y(b, a) == pytest.approx(20 * np.log10(255 / (0.05 * 219)), abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_and_ssim_agree_with_scikit_image_and_pyiqa(seed):
    b, a = pair(seed)
    assert fidelity.psnr(b, a) == pytest.approx(
        peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=1),
        abs=1e-9)
    py_psnr = pyiqa.create_metric("psnr", device="cpu", eps=0.0)
    assert fidelity.psnr(b, a) == pytest.approx(float(py_psnr(to_tensor(b), to_tensor(a))),
                                                abs=1e-5)
    assert fidelity.ssim(b, a) == structural_similarity(b, a, channel_axis=-1, data_range=1.0)
    # matlab protocol: Gaussian 11x11 sigma 1.5 over the valid region, channel mean, against
    # pyiqa's own (dense torch convolution) ssim function on each RGB channel.
    from pyiqa.archs.ssim_arch import ssim as pyiqa_ssim

    ref = float(pyiqa_ssim(to_tensor(b).double(), to_tensor(a).double(), data_range=1.0))
    assert get_metric("ssim", "matlab").fn(b, a) == pytest.approx(ref, abs=1e-6)
    assert get_metric("ssim", "matlab").fn(b, a) != pytest.approx(fidelity.ssim(b, a), abs=1e-4)


@pytest.mark.parametrize("seed", [0, 3])
def test_ms_ssim_equals_pyiqa_and_psnr_y_reads_1_32_db_above_pyiqa_psnry(seed):
    b, a = pair(seed)
    ref = float(pyiqa.create_metric("ms_ssim", device="cpu")(to_tensor(b), to_tensor(a)))
    assert ms_ssim(b, a) == pytest.approx(ref, abs=1e-12)
    psnry = float(pyiqa.create_metric("psnry", device="cpu")(to_tensor(b), to_tensor(a)))
    assert fidelity.psnr_y(b, a) - psnry == pytest.approx(20 * np.log10(255 / 219), abs=2e-3)
    assert 20 * np.log10(255 / 219) == pytest.approx(1.3219, abs=1e-4)


def test_ms_ssim_refuses_images_too_small_for_five_scales():
    b, a = pair(h=100, w=120)
    with pytest.raises(MetricFailure, match="too small"):
        ms_ssim(b, a)


def test_blur_effect_is_larger_for_a_blurrier_image():
    _, a = pair(noise=0)
    sharp = np.clip(a + np.random.default_rng(0).normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert fidelity.blur_effect(blurred) > fidelity.blur_effect(sharp) + 0.1


def test_registry_has_the_full_set_each_with_a_distinct_versioned_spec():
    names = set(metric_names("defocus"))
    assert names >= {"psnr", "psnr_y", "ssim", "ms_ssim", "mae", "lpips_alex", "lpips_vgg",
                     "dists", "fid", "niqe", "musiq", "maniqa", "clipiqa", "liqe", "piqe",
                     "pba_blur_score", "blur_effect", "brisque"}
    assert "lpips" not in names
    d, m = get_metric("ssim", "defocus").spec, get_metric("ssim", "matlab").spec
    assert d.version != m.version
    assert spec_id(d.resolved(16, "x")) != spec_id(m.resolved(16, "x"))
    assert spec_id(d.resolved(16, "x")) != spec_id(d.resolved(8, "x"))  # bit depth is part
    for n in names:
        s = get_metric(n).spec
        assert s.direction in ("higher", "lower") and s.kind in ("FR", "NR", "dataset")
        assert s.definition and s.version
    assert get_metric("lpips_alex").spec.weights == ("alexnet-owt-7be5be79.pth",)
    with pytest.raises(KeyError, match="did you mean"):
        get_metric("lpip_alex")
