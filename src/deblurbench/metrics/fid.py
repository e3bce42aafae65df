"""FID, a data-set-level metric: a split's restored outputs against its ground truth, with
clean-fid's preprocessing on images decoded by the project's 16-bit-safe reader."""

from __future__ import annotations

import numpy as np
import torch

from deblurbench.metrics.pyiqa_models import finite
from deblurbench.metrics.spec import (
    Computer,
    Metric,
    MetricFailure,
    MetricSpec,
    MetricUnavailable,
    register,
)
from deblurbench.metrics.weights import unavailable_reason

FID_SIZE = 299  # InceptionV3 input, as clean-fid


def clean_fid_input(image: np.ndarray, size: int = FID_SIZE) -> torch.Tensor:
    """clean-fid's preprocessing (pyiqa ``ResizeDataset`` mode ``clean``) on the project's
    float RGB image: values x255 *without* rounding to 8 bits, each channel resized bicubically
    by Pillow in float mode to ``size`` x ``size``, clipped to [0, 255]. 3 x size x size.

    pyiqa's own path opens files with Pillow, which reads a 16-bit PNG as 8 bits; for 8-bit
    files the two agree (tests/test_metrics_fid.py)."""
    from PIL import Image

    x = np.ascontiguousarray(image, dtype=np.float32) * 255.0
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(x[:, :, c]))
                        .resize((size, size), resample=Image.BICUBIC)).clip(0, 255)
             for c in range(3)]
    return torch.from_numpy(np.stack(chans).astype(np.float32))


def fid_features(paths: list[str], net: torch.nn.Module, device: str,
                 batch: int = 8) -> np.ndarray:
    """Pool features (N x D) of images read through ``deblurbench.io``, in batches."""
    from deblurbench.io import read_image

    out = []
    for i in range(0, len(paths), batch):
        x = torch.stack([clean_fid_input(read_image(p)) for p in paths[i:i + batch]])
        with torch.no_grad():  # clean-fid scaling: (x - 128) / 128, no further normalising
            f = net(((x - 128) / 128).to(device), False, False)[0]
        out.append(f.reshape(f.shape[0], -1).double().cpu().numpy())
    return np.concatenate(out)


def fid_between(restored_paths: list[str], sharp_paths: list[str], net: torch.nn.Module,
                device: str = "cpu") -> float:
    """Frechet distance (pyiqa's ``frechet_distance``) between the two sets' features."""
    from pyiqa.archs.fid_arch import frechet_distance

    if len(restored_paths) < 2 or len(sharp_paths) < 2:
        raise MetricFailure("fid needs at least 2 images")
    a, b = (fid_features(p, net, device) for p in (restored_paths, sharp_paths))
    return finite("fid", float(frechet_distance(a.mean(0), np.cov(a, rowvar=False),
                                                 b.mean(0), np.cov(b, rowvar=False))))


def fid_build(device: str) -> Computer:
    reason = unavailable_reason("fid")
    if reason:
        raise MetricUnavailable(reason)
    import pyiqa

    net = pyiqa.create_metric("fid", device=device).net.model  # pyiqa's FID InceptionV3

    def over(restored_paths: list[str], sharp_paths: list[str]) -> float:
        return fid_between(restored_paths, sharp_paths, net, device)

    return Computer(fn=lambda r, s=None: float("nan"), dataset_fn=over)


register(Metric(MetricSpec(
    name="fid", version="pyiqa-clean-2", kind="dataset", direction="lower", library="pyiqa",
    colour_space="RGB from deblurbench.io at native bit depth, x255 unrounded",
    window="InceptionV3 pool3, clean-fid bicubic resize to 299", data_range=1.0, crop=0,
    definition="pyiqa FID (clean-fid preprocessing, pyiqa's FID InceptionV3 and Frechet "
               "distance) between the split's restored outputs and its ground truth, images "
               "decoded by the project's 16-bit-safe reader; one value per run, stored with "
               "image_id '__split__'",
    identical_value=0.0, value_range=(0.0, float("inf")),
    weights=("pt_inception-2015-12-05-6726825d.pth",), family="distribution"),
    None, "pyiqa", build=fid_build, available=lambda: unavailable_reason("fid")))
