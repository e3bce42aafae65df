"""FID reads images through the project's 16-bit-safe I/O and otherwise computes exactly what
pyiqa's clean-fid mode computes: same preprocessing, same Frechet distance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from pyiqa.archs.fid_arch import ResizeDataset

from deblurbench.io import read_image, write_png
from deblurbench.metrics.fid import clean_fid_input, fid_between
from deblurbench.metrics.spec import MetricFailure, get_metric


def _photo(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.5)


def test_8_bit_inputs_are_preprocessed_exactly_as_pyiqa_clean_fid(tmp_path):
    path = write_png(tmp_path / "a.png", _photo(0), bits=8)
    ours = clean_fid_input(read_image(path))
    theirs = ResizeDataset([str(path)], mode="clean", size=(299, 299))[0]
    assert ours.shape == theirs.shape == (3, 299, 299)
    assert torch.allclose(ours, theirs, atol=2e-3)


def test_16_bit_inputs_keep_their_precision(tmp_path):
    img = _photo(1) * (10 / 255)  # a dark image: 8 bits leave ~10 levels
    path = write_png(tmp_path / "a16.png", img, bits=16)
    ours = clean_fid_input(read_image(path))
    exact = clean_fid_input(img)
    eight_bit = ResizeDataset([str(path)], mode="clean", size=(299, 299))[0]  # via Pillow
    assert torch.allclose(ours, exact, atol=0.01)  # 16-bit quantisation only
    assert (eight_bit - exact).abs().mean() > 10 * (ours - exact).abs().mean()


class PoolNet(torch.nn.Module):
    """A seeded stand-in for InceptionV3 with its call signature (the real one needs weights):
    a fixed random conv and global pooling."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 9, stride=4)

    def forward(self, x, resize_input=False, normalize_input=False):
        return [torch.relu(self.conv(x)).mean((2, 3), keepdim=True)]


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_blur(tmp_path):
    sharp = [write_png(tmp_path / f"s{i}.png", _photo(10 + i), bits=16) for i in range(6)]
    blurred = {s: [write_png(tmp_path / f"b{s}-{i}.png",
                             cv2.GaussianBlur(read_image(p), (0, 0), s), bits=16)
                   for i, p in enumerate(sharp)] for s in (1.0, 3.0)}
    net = PoolNet().eval()
    same = fid_between([str(p) for p in sharp], [str(p) for p in sharp], net)
    mild = fid_between([str(p) for p in blurred[1.0]], [str(p) for p in sharp], net)
    strong = fid_between([str(p) for p in blurred[3.0]], [str(p) for p in sharp], net)
    assert same == pytest.approx(0.0, abs=1e-6)
    assert 0 < mild < strong
    with pytest.raises(MetricFailure, match="at least 2 images"):
        fid_between([str(sharp[0])], [str(sharp[0])], net)


def test_fid_spec_names_the_reader_and_its_version():
    spec = get_metric("fid").spec
    assert spec.version == "pyiqa-clean-2" and spec.kind == "dataset"
    assert "deblurbench.io" in spec.colour_space and "unrounded" in spec.colour_space
