"""Synthetic blur generators: kernels, energy, determinism, severity; `synth KIND --from`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cli

from deblurbench.annotate import synth, synth_dataset
from deblurbench.datasets.manifest import load_manifest
from deblurbench.io import read_image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo (skimage astronaut) at 96x128, scaled into [0.1, 0.9] so no blur clips."""
    import cv2
    from skimage import data

    img = cv2.resize(data.astronaut(), (128, 96), interpolation=cv2.INTER_AREA)
    return (0.1 + 0.8 * img.astype(np.float32) / 255.0).astype(np.float32)


def all_generated(photo, seed=3):
    out = {k: synth_dataset.generate(k, photo, seed) for k in synth_dataset.KINDS}
    for c in synth.CORRUPTIONS:
        for s in range(1, 6):
            out[f"corrupt-{c}@{s}"] = synth.corrupt(photo, c, s, seed)
    return out


def test_every_kernel_sums_to_one_and_is_non_negative(photo):
    n = 0
    for name, res in all_generated(photo).items():
        for kname, k in res.kernels.items():
            assert k.dtype == np.float32 and (k >= 0).all(), (name, kname)
            assert float(k.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5), (name, kname)
            n += 1
    assert n >= 40
    assert synth.gaussian_kernel(2.0).shape == (13, 13)
    k = synth.cats_eye_kernel(5.0, 1.0, 0.0, 0.8)  # at the right border: clipped, narrower
    assert k.sum() == pytest.approx(1.0) and (k > 0).sum() < (synth.disk_kernel(5.0) > 0).sum()
    assert synth.trajectory_kernel(synth.trajectory(np.random.default_rng(1), 20), 31).shape == (31, 31)


def test_blur_keeps_the_mean_intensity(photo):
    mean = float(photo.mean())
    for name, res in all_generated(photo).items():
        if name.startswith("corrupt-zoom"):
            continue  # zooming crops the border: checked below on the centre only
        assert float(res.image.mean()) == pytest.approx(mean, abs=5e-3), name
    flat = np.full((64, 64, 3), 0.4, np.float32)
    for c in synth.CORRUPTIONS:
        assert np.allclose(synth.corrupt(flat, c, 5, 0).image, 0.4, atol=1e-5), c
    # non-uniform masks form a partition of unity
    masks = synth.motion_nonuniform(photo, 0).masks
    assert masks.shape[1:] == photo.shape[:2] and np.allclose(masks.sum(0), 1, atol=1e-5)


def test_same_seed_same_bytes_other_seed_other_bytes(photo):
    a, b = all_generated(photo, seed=5), all_generated(photo, seed=5)
    for name in a:
        assert a[name].image.tobytes() == b[name].image.tobytes(), name
        for k in a[name].kernels:
            assert a[name].kernels[k].tobytes() == b[name].kernels[k].tobytes(), (name, k)
    c = all_generated(photo, seed=6)
    for name in ("defocus", "motion", "motion-nonuniform", "corrupt-glass@3", "corrupt-motion@3"):
        assert a[name].image.tobytes() != c[name].image.tobytes(), name


def test_stronger_severity_gives_lower_psnr(photo):
    for c in synth.CORRUPTIONS:
        scores = [psnr(synth.corrupt(photo, c, s, 11).image, photo) for s in range(1, 6)]
        assert all(x > y for x, y in zip(scores, scores[1:])), (c, scores)
    radii = [psnr(synth.defocus(photo, 0, radius=r).image, photo) for r in (1, 2, 4, 8)]
    assert all(x > y for x, y in zip(radii, radii[1:])), radii
    sizes = [psnr(synth.motion(photo, 4, size=s).image, photo) for s in (7, 15, 31)]
    assert sizes[0] > sizes[-1], sizes


def strictly_falling(xs):
    return all(x > y for x, y in zip(xs, xs[1:]))


@pytest.mark.parametrize("lens", [{"model": "gaussian"}, {"model": "disk", "cats_eye": 0.8},
                                  {"model": "disk", "photons": 2000.0}])
def test_every_defocus_lens_model_loses_psnr_as_the_radius_grows(photo, lens):
    scores = [psnr(synth.defocus(photo, 0, radius=r, **lens).image, photo) for r in (1, 2, 4, 8)]
    assert strictly_falling(scores), (lens, scores)


def test_more_sensor_noise_and_longer_non_uniform_shake_lose_psnr(photo):
    noisy = [psnr(synth.defocus(photo, 0, radius=2, read_sigma=s).image, photo)
             for s in (0.0, 0.01, 0.03, 0.1)]
    assert strictly_falling(noisy), noisy
    shake = [psnr(synth.motion_nonuniform(photo, 4, size=s).image, photo) for s in (5, 15, 41)]
    assert shake[0] > shake[-1] and shake[0] > shake[1], shake


def test_recorded_truth_reproduces_the_blur(photo):
    import cv2

    res = synth.defocus(photo, 2, model="disk")
    again = synth.convolve(photo, res.kernels["psf"])
    assert np.abs(again - res.image).max() < 1e-6
    assert np.allclose(res.blur_map, res.meta["radius"])
    res = synth.motion(photo, 9, size=21)
    assert np.abs(synth.convolve(photo, res.kernels["psf"]) - res.image).max() < 1e-6
    noisy = synth.defocus(photo, 2, read_sigma=0.02)
    assert 0.01 < float(np.std(noisy.image - res_clean(photo))) < 0.03
    zoom = synth.corrupt(photo, "zoom", 5, 0)
    assert zoom.blur_map[48, 64] < 0.5 < zoom.blur_map[0, 0]
    del cv2


def res_clean(photo):
    return synth.defocus(photo, 2).image


def test_bad_arguments_are_refused(photo):
    with pytest.raises(ValueError, match="severity must be 1..5"):
        synth.corrupt(photo, "zoom", 6)
    with pytest.raises(ValueError, match="unknown corruption 'snow'"):
        synth.corrupt(photo, "snow", 1)
    with pytest.raises(ValueError, match="odd"):
        synth.trajectory_kernel(np.zeros(3, complex), 30)
    with pytest.raises(ValueError, match="expected float RGB"):
        synth.motion(photo[:, :, 0], 0)


def test_synth_from_dataset_makes_a_prepared_dataset(prepared):
    cli("synth", "corrupt-motion", "--from", "synthetic-defocus", "--out", "sd-motion",
        "--severity", "4", "--seed", "1", cwd=prepared)
    # the card and the manifest are written: no separate prepare step
    src, new = load_manifest("synthetic-defocus"), load_manifest("sd-motion")
    assert sorted(new["image_id"]) == sorted(src["image_id"])
    for row in new.itertuples():
        srow = src[src["image_id"] == row.image_id].iloc[0]
        assert row.split == srow.split
        sharp = read_image(row.sharp)
        np.testing.assert_allclose(sharp, read_image(srow.sharp), atol=1 / 65535)
        truth = np.load(prepared / "datasets/sd-motion/raw" / row.split / "truth"
                        / f"{row.image_id}.npz")
        meta = json.loads(str(truth["meta"]))
        assert meta["severity"] == 4 and truth["psf"].sum() == pytest.approx(1.0, abs=1e-5)
        assert psnr(read_image(row.blurry), sharp) < 40
    # same seed, same bytes
    first = (prepared / "datasets/sd-motion/raw/test/blurry").glob("*.png")
    first = {p.name: p.read_bytes() for p in first}
    cli("synth", "corrupt-motion", "--from", "synthetic-defocus", "--out", "sd-motion",
        "--severity", "4", "--seed", "1", cwd=prepared)
    again = {p.name: p.read_bytes()
             for p in (prepared / "datasets/sd-motion/raw/test/blurry").glob("*.png")}
    assert first == again and len(first) == 2
    proc = cli("synth", "wobble", "--from", "synthetic-defocus", "--out", "x", cwd=prepared,
               check=False)
    assert proc.returncode == 2 and "unknown synthetic kind 'wobble'" in proc.stderr
    proc = cli("synth", "motion", "--from", "nosuch", "--out", "x", cwd=prepared, check=False)
    assert proc.returncode == 2 and "nosuch" in proc.stderr


def test_synth_copy_makes_the_params_entry_named_by_out_and_the_same_bytes_as_spelled_out(
        prepared):
    """`synth copy --out NAME` (the dvc stage copy@<i>) reads kind, source and settings from
    params.yaml's copies entry NAME: the same images as the command written out."""
    import yaml

    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["copies"] = [{"name": "sd-copy", "kind": "corrupt-zoom", "source": "synthetic-defocus",
                         "severity": 2}]
    (prepared / "params.yaml").write_text(yaml.safe_dump(params))
    cli("synth", "copy", "--out", "sd-copy", cwd=prepared)
    cli("synth", "corrupt-zoom", "--from", "synthetic-defocus", "--out", "sd-spelled",
        "--severity", "2", cwd=prepared)

    def blurry(name):
        return {p.name: p.read_bytes()
                for p in (prepared / f"datasets/{name}/raw/test/blurry").glob("*.png")}

    assert blurry("sd-copy") == blurry("sd-spelled") and len(blurry("sd-copy")) == 2
    truth = np.load(next((prepared / "datasets/sd-copy/raw/test/truth").glob("*.npz")))
    assert json.loads(str(truth["meta"]))["severity"] == 2
    proc = cli("synth", "copy", "--out", "nope", cwd=prepared, check=False)
    assert proc.returncode == 2 and "params copies has no entry named 'nope'" in proc.stderr
