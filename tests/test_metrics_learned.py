"""Learned-metric plumbing with random weights built here; the unavailable-weights path."""

from __future__ import annotations

import itertools

import cv2
import huggingface_hub
import lpips
import numpy as np
import pytest
import torch

from deblurbench.metrics import weights
from deblurbench.metrics.learned import lpips_computer
from deblurbench.metrics.pyiqa_models import tiles
from deblurbench.metrics.spec import MetricUnavailable, get_metric


@pytest.fixture(scope="module")
def rand_lpips():
    torch.manual_seed(0)
    # Linear layers ship with the package; the AlexNet backbone is random (no download).
    return lpips_computer(lpips.LPIPS(net="alex", pnet_rand=True, verbose=False))


def image(seed=0, h=96, w=128):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.0)


def test_random_weight_lpips_is_zero_on_identical_symmetric_and_grows_with_blur(rand_lpips):
    a = image()
    assert rand_lpips.fn(a, a) == pytest.approx(0.0, abs=1e-7)
    b = cv2.GaussianBlur(a, (0, 0), 1.5)
    assert rand_lpips.fn(a, b) == pytest.approx(rand_lpips.fn(b, a), rel=1e-5)
    values = [rand_lpips.fn(cv2.GaussianBlur(a, (0, 0), s), a) for s in (0.7, 1.5, 3.0, 6.0)]
    assert all(x < y for x, y in itertools.pairwise(values)), values


def test_lpips_spatial_map_moves_only_the_corrupted_region(rand_lpips):
    a = image(1, 128, 128)
    b = a.copy()
    b[72:, 72:] = cv2.GaussianBlur(a, (0, 0), 4)[72:, 72:]
    masks = {"slight": np.zeros((128, 128), bool), "severe": np.zeros((128, 128), bool)}
    masks["slight"][:48, :48] = True
    masks["severe"][80:, 80:] = True
    clean = rand_lpips.region_fn(a, a, masks)
    hit = rand_lpips.region_fn(b, a, masks)
    assert hit["severe"] > clean["severe"] + 1e-3
    # Deep features have a wide receptive field: the far corner moves, but far less.
    assert hit["slight"] - clean["slight"] < 0.05 * (hit["severe"] - clean["severe"])


def test_tiles_cover_the_image_once_without_slivers():
    cover = np.zeros((2160, 4096), int)
    for y0, y1, x0, x1 in tiles(2160, 4096):
        cover[y0:y1, x0:x1] += 1
        assert y1 - y0 >= 64 and x1 - x0 >= 64
    assert (cover == 1).all()


def test_missing_weights_make_a_metric_unavailable_naming_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # (niqe and brisque are not here: their parameters come from installed packages,
    # tests/test_metrics_classical_nr.py)
    for name in ("lpips_alex", "lpips_vgg", "dists", "musiq", "maniqa", "fid"):
        m = get_metric(name)
        reason = m.unavailable_reason()
        need = weights.REQUIRED[name][0]
        assert reason and need.name in reason and "weights import" in reason
        if need.kind != "hf":
            assert str(tmp_path / "torch") in reason
        with pytest.raises(MetricUnavailable):
            m.computer("cpu")
    assert get_metric("piqe").unavailable_reason() is None
    assert get_metric("psnr").unavailable_reason() is None


def test_weights_import_checks_names_sizes_and_digests(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    src = tmp_path / "provided"
    src.mkdir()
    (src / "alexnet-owt-7be5be79.pth").write_bytes(b"x" * 5000)  # wrong digest
    with pytest.raises(weights.WeightImportError, match="sha256"):
        weights.import_dir(src)
    (src / "alexnet-owt-7be5be79.pth").unlink()
    (src / "niqe_modelparameters.mat").write_bytes(b"<!DOCTYPE html><html>login</html>" * 50)
    with pytest.raises(weights.WeightImportError, match="HTML"):
        weights.import_dir(src)
    (src / "niqe_modelparameters.mat").write_bytes(b"\0" * 10)
    with pytest.raises(weights.WeightImportError, match="too small"):
        weights.import_dir(src)
    assert not (tmp_path / "torch").exists()  # nothing copied while any file is refused
    (src / "niqe_modelparameters.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 5000)
    (src / "unrelated.txt").write_text("ignored")
    done = weights.import_dir(src)
    assert [n for n, _ in done] == ["niqe_modelparameters.mat"]
    dest = tmp_path / "torch" / "hub" / "pyiqa" / "niqe_modelparameters.mat"
    assert dest.read_bytes() == (src / "niqe_modelparameters.mat").read_bytes()
    assert weights.files_reason("niqe") is None  # pyiqa's own file, beside the packaged one
    rows = {(r["metric"], r["file"]): r["present"] for r in weights.status()}
    assert rows[("niqe", "niqe_modelparameters.mat")] is True
    assert rows[("lpips_alex", "alexnet-owt-7be5be79.pth")] is False


def test_weights_download_fetches_checks_and_places_files_from_a_mirror(tmp_path, monkeypatch):
    """`weights download --mirror`: a real HTTP server on 127.0.0.1 stands in for the hub."""
    from realdata_kit import Server

    from deblurbench.metrics import classical_models as cm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    www = tmp_path / "www"
    www.mkdir()
    mat = cm.pyiqa_opts(cm.NIQE_BASICSR)[0]["pretrained_model_path"].getvalue()
    (www / "niqe_modelparameters.mat").write_bytes(mat)
    (www / "alexnet-owt-7be5be79.pth").write_bytes(b"x" * 5000)  # digest does not match name
    assert weights.files_reason("niqe") and weights.files_reason("lpips_alex")
    with Server(www) as srv:
        srv.html.add("ckpt_koniq10k.pt")  # a login page instead of the file
        done = dict(weights.download_missing(["niqe", "lpips_alex", "maniqa"],
                                             mirror=srv.url("")))
    dest = tmp_path / "torch" / "hub" / "pyiqa" / "niqe_modelparameters.mat"
    assert done["niqe_modelparameters.mat"] == f"-> {dest}" and dest.read_bytes() == mat
    assert weights.files_reason("niqe") is None
    assert done["alexnet-owt-7be5be79.pth"].startswith("failed:") and \
        "sha256" in done["alexnet-owt-7be5be79.pth"]
    assert done["ckpt_koniq10k.pt"].startswith("failed:")
    assert done["timm/vit_base_patch8_224.augreg2_in21k_ft_in1k/model.safetensors"] == (
        f"failed: {srv.url('')}timm/vit_base_patch8_224.augreg2_in21k_ft_in1k/"
        f"model.safetensors: HTTP 404 Not Found")  # hub files: tests/test_weights_hf.py
    # nothing that failed a check is in place, and no staging folder is left behind
    assert weights.files_reason("lpips_alex") and weights.files_reason("maniqa")
    hub = tmp_path / "torch" / "hub"
    assert not (hub / "checkpoints" / "alexnet-owt-7be5be79.pth").exists()
    assert not any(p.name == ".download" for p in hub.rglob("*"))
    with pytest.raises(ValueError, match="no weight files are known for psnr"):
        weights.download_missing(["psnr"])
