"""Metrics pyiqa defines: MS-SSIM (computed fast, to pyiqa's numbers), and the model-based
no-reference and perceptual metrics (loaded through pyiqa, with tensors from our own 16-bit-safe
I/O, never pyiqa's file-path input which decodes through 8-bit Pillow).

pyiqa is licensed for non-commercial use only (see README).
"""

from __future__ import annotations

import importlib.util
import itertools

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deblurbench.metrics.classical_models import PACKAGED, PackagedModel, pyiqa_opts
from deblurbench.metrics.spec import (
    Computer,
    Metric,
    MetricFailure,
    MetricSpec,
    MetricUnavailable,
    register,
)
from deblurbench.metrics.weights import files_reason, unavailable_reason

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
TILE = 1024
TILE_ABOVE_PIXELS = 4_000_000  # SDD's 4096x2160 (8.8 MP) is tiled; DPDD's 1.9 MP is not
TILE_BATCH = 4  # same-shape tiles scored in one forward pass
TILING = (f"images above {TILE_ABOVE_PIXELS / 1e6:g} MP are cut into {TILE}x{TILE} tiles (edge "
          f"tiles smaller, none under 64 px); the value is the area-weighted mean of tile values")
#: The tiling in a metric's version (the issue's rule: a tiled definition is another version),
#: so that a change of TILE or TILE_ABOVE_PIXELS can never hide behind the same version.
TILING_TAG = f"tiles{TILE}-above{TILE_ABOVE_PIXELS / 1e6:g}MP"


def tiled_version(version: str, tiling: str = TILING) -> str:
    """``version`` with the tiling tag when the metric tiles large images."""
    return version if tiling == "none" else f"{version}+{TILING_TAG}"


def to_tensor(img: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """float32 HxWx3 [0, 1] -> 1x3xHxW tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(device)


def to_batch(imgs: list[np.ndarray], device: str = "cpu") -> torch.Tensor:
    """Same-size float32 HxWx3 images -> Nx3xHxW tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).permute(0, 3, 1, 2).to(device)


# ---------------------------------------------------------------------------------------------
# MS-SSIM: pyiqa's definition (YIQ luma rounded to 0..255 levels, Gaussian 11x11 sigma 1.5
# 'valid' filtering in float64, 5 scales, zero-padded 2x2 average pooling, product form), with
# the 11x11 filtering done by OpenCV's float64 filter2D instead of torch's float64 conv2d:
# about 25x faster, equal to pyiqa to 1e-12 (tests/test_metrics_calibration.py).


def _window() -> np.ndarray:
    from pyiqa.matlab_utils import fspecial

    return fspecial(11, 1.5, 1)[0, 0].double().numpy()  # pyiqa's own window, as it uses it


_W = None


def _valid(x: np.ndarray) -> np.ndarray:
    global _W
    if _W is None:
        _W = _window()
    return cv2.filter2D(x, cv2.CV_64F, _W, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]


def _ssim_cs(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> tuple[float, float]:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = _valid(x), _valid(y)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11 = _valid(x * x) - mu1_sq
    s22 = _valid(y * y) - mu2_sq
    s12 = _valid(x * y) - mu12
    cs = np.maximum((2 * s12 + c2) / (s11 + s22 + c2), 0)
    ssim_map = ((2 * mu12 + c1) / (mu1_sq + mu2_sq + c1)) * cs
    return float(ssim_map.mean()), float(cs.mean())


def pyiqa_luma255(img: np.ndarray) -> np.ndarray:
    """pyiqa's ``preprocess_rgb(x, test_y_channel=True, 255, 'yiq')`` as float64 HxW."""
    from pyiqa.archs.func_util import preprocess_rgb

    with torch.no_grad():
        y = preprocess_rgb(to_tensor(img), True, 255, "yiq")
    return y[0, 0].double().numpy()


def ms_ssim(restored: np.ndarray, reference: np.ndarray | None) -> float:
    assert reference is not None
    x, y = pyiqa_luma255(restored), pyiqa_luma255(reference)
    weights = torch.tensor(MS_WEIGHTS, dtype=torch.float32).double().numpy()
    mcs = []
    for level in range(len(weights)):
        if min(x.shape) < 11:
            raise MetricFailure(f"ms_ssim: image {restored.shape[1]}x{restored.shape[0]} is too "
                                f"small for 5 scales (short side must be at least 161 px)")
        ssim_val, cs = _ssim_cs(x, y)
        mcs.append(cs)
        if level < len(weights) - 1:
            pad = (x.shape[0] % 2, x.shape[1] % 2)
            x, y = (F.avg_pool2d(torch.from_numpy(a)[None, None], 2, padding=pad)[0, 0].numpy()
                    for a in (x, y))
    mcs_a = np.array(mcs[:-1])
    return float(np.prod(mcs_a ** weights[:-1]) * ssim_val ** weights[-1])


register(Metric(MetricSpec(
    name="ms_ssim", version="pyiqa-yiq8-1", kind="FR", direction="higher", library="pyiqa",
    colour_space="YIQ luma, rounded to 0..255 levels (pyiqa)", window="11x11 Gaussian sigma 1.5",
    data_range=255.0, crop=0,
    definition="pyiqa ms_ssim (Wang et al. 2003): 5 scales, weights (0.0448, 0.2856, 0.3001, "
               "0.2363, 0.1333), product form, 'valid' filtering, cs clipped at 0, 2x2 average "
               "pooling with zero padding of odd sizes; luma of pyiqa's YIQ rounded to integers",
    identical_value=1.0, value_range=(0.0, 1.0), family="fidelity",
    implementation="float64 OpenCV filter2D with pyiqa's own window; checked equal to "
                   "pyiqa.create_metric('ms_ssim') to 1e-12"), ms_ssim, "pyiqa"))


# ---------------------------------------------------------------------------------------------
# Model-based metrics through pyiqa.


def tiles(h: int, w: int, tile: int = TILE) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) covering the image; a sliver under 64 px joins its neighbour."""
    def cuts(n):
        edges = list(range(0, n, tile)) + [n]
        if len(edges) > 2 and edges[-1] - edges[-2] < 64:
            edges.pop(-2)
        return list(itertools.pairwise(edges))
    return [(a, b, c, d) for a, b in cuts(h) for c, d in cuts(w)]


def tiled(fn, restored, reference, many=None):
    """``fn`` on the image, or on its tiles (area-weighted mean) above ``TILE_ABOVE_PIXELS``.

    ``many(restored_tiles, reference_tiles) -> values`` scores same-shape tiles in one forward
    pass (at most ``TILE_BATCH`` at a time); the value is the same, the model runs fewer times.
    """
    h, w = restored.shape[:2]
    if h * w <= TILE_ABOVE_PIXELS:
        return fn(restored, reference)
    boxes = tiles(h, w)
    values = [0.0] * len(boxes)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        by_shape.setdefault((y1 - y0, x1 - x0), []).append(i)
    step = TILE_BATCH if many is not None else 1
    for idx in by_shape.values():
        for k in range(0, len(idx), step):
            part = idx[k:k + step]
            crops = [(slice(boxes[i][0], boxes[i][1]), slice(boxes[i][2], boxes[i][3]))
                     for i in part]
            rs = [restored[c] for c in crops]
            ss = [None if reference is None else reference[c] for c in crops]
            got = many(rs, ss) if many is not None and len(part) > 1 else [fn(rs[0], ss[0])]
            for i, v in zip(part, got, strict=True):
                values[i] = v
    areas = [(y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes]
    return float(sum(v * a for v, a in zip(values, areas, strict=True)) / sum(areas))


def batched(fn, many):
    """A metric's ``batch_fn``: one forward pass over same-size images, each image scored as
    ``fn`` would (tiled images go one at a time, their tiles batched by ``tiled``)."""
    def batch_fn(restored: list, references: list) -> list[float]:
        h, w = restored[0].shape[:2]
        if h * w > TILE_ABOVE_PIXELS:
            return [fn(r, s) for r, s in zip(restored, references, strict=True)]
        return many(restored, references)
    return batch_fn


def _finite(name: str, value: float) -> float:
    if not np.isfinite(value):
        raise MetricFailure(f"{name} gave {value} on this image (flat or degenerate image?)")
    return float(value)


def pyiqa_build(name: str, pyiqa_name: str, fr: bool, packaged: PackagedModel | None = None,
                batch: bool = True, **opts):
    """``packaged``: parameters from an installed package, chosen when the spec was registered
    (its version names them); else pyiqa's own weight files. ``batch``: the model gives each
    image of a batch the value it gives it alone (tests/test_scoring_batch.py), so the engine
    may batch it, images and the tiles of a large one; BRISQUE does not (its float32 batch
    statistics move values by ~1e-4), so it scores both one at a time."""
    def build(device: str) -> Computer:
        expected: dict[str, float] = {}
        if packaged is not None:
            if packaged.path() is None:
                raise MetricUnavailable(f"{name}: {packaged.problem()}")
            extra, expected = pyiqa_opts(packaged)
        elif files_reason(name):
            raise MetricUnavailable(files_reason(name))
        else:
            extra = {}
        import pyiqa

        model = pyiqa.create_metric(pyiqa_name, device=device, as_loss=False, **opts, **extra)
        for attr, want in expected.items():
            if getattr(model.net, attr) != want:
                raise MetricUnavailable(f"{name}: {packaged.label} has {attr}={want}, pyiqa's "
                                        f"{pyiqa_name} uses {getattr(model.net, attr)}")

        def many(restored: list, references: list) -> list[float]:
            with torch.no_grad():
                args = [to_batch(restored, device)]
                if fr:
                    args.append(to_batch(references, device))
                try:
                    out = model(*args).reshape(-1)
                # pyiqa refuses some inputs with a bare assert (LIQE: a side under 224 px)
                except (AssertionError, RuntimeError, ValueError, ZeroDivisionError) as exc:
                    raise MetricFailure(f"{name}: {type(exc).__name__}: {exc}") from None
            if out.numel() != len(restored):
                raise MetricFailure(f"{name}: {out.numel()} values for {len(restored)} images")
            return [_finite(name, float(v)) for v in out]

        def one(restored, reference):
            return many([restored], [reference])[0]

        def fn(r, s=None):  # tiles batched only where images may be
            return tiled(one, r, s if fr else None, many if batch else None)

        return Computer(fn, batch_fn=batched(fn, many) if batch else None)
    return build


def _nr(name, version, pyiqa_name, direction, rng, definition, family="no-reference",
        fr=False, tiling=TILING, batch=True, **opts):
    from deblurbench.metrics.weights import REQUIRED

    # Packaged parameters, when installed, win over pyiqa's download: the choice is made here,
    # once, so that the version (and with it the spec id) names the parameters actually used.
    packaged = PACKAGED.get(name)
    if packaged is not None and packaged.path() is None:
        packaged = None
    version = tiled_version(version, tiling)
    if packaged is not None:
        version += packaged.version_suffix
        weights = (f"{packaged.label} sha256:{packaged.sha256[:16]}",)
        definition += f"; the same release model read from {packaged.label}, converted for pyiqa"
        available = packaged.problem
    else:
        weights = tuple(w.name for w in REQUIRED.get(name, ()))
        available = lambda: unavailable_reason(name)
    register(Metric(MetricSpec(
        name=name, version=version, kind="FR" if fr else "NR", direction=direction,
        library="pyiqa", colour_space="RGB", window="model", data_range=1.0, crop=0,
        definition=definition, identical_value=0.0 if fr else None, value_range=rng,
        weights=weights, family=family, tiling=tiling),
        None, "pyiqa", build=pyiqa_build(name, pyiqa_name, fr, packaged, batch, **opts),
        available=available))


_nr("dists", "pyiqa-1", "dists", "lower", (0.0, 1.0),
    "pyiqa DISTS (Ding et al. 2020), VGG16 backbone + released alpha/beta; restored first",
    family="perceptual", fr=True)
_nr("niqe", "pyiqa-1", "niqe", "lower", (0.0, float("inf")),
    "pyiqa NIQE (Mittal et al. 2013) on YIQ luma, MATLAB pristine model parameters")
_nr("brisque", "pyiqa-1", "brisque", "lower", (0.0, 150.0),
    "pyiqa BRISQUE (Mittal et al. 2012) on luma, piq's SVR weights", batch=False)
_nr("musiq", "pyiqa-koniq-1", "musiq", "higher", (0.0, 100.0),
    "pyiqa MUSIQ (Ke et al. 2021), KonIQ-10k checkpoint")
_nr("maniqa", "pyiqa-koniq-1", "maniqa", "higher", (0.0, 1.0),
    "pyiqa MANIQA (Yang et al. 2022), KonIQ-10k checkpoint, 224 px uniform crops")
_nr("clipiqa", "pyiqa-rn50-1", "clipiqa", "higher", (0.0, 1.0),
    "pyiqa CLIP-IQA (Wang et al. 2023), CLIP RN50, antonym prompt pair 'Good/Bad photo.'")
_nr("liqe", "pyiqa-koniq-1", "liqe", "higher", (1.0, 5.0),
    "pyiqa LIQE (Zhang et al. 2023), CLIP ViT-B/32, KonIQ-10k checkpoint")
_nr("piqe", "pyiqa-1", "piqe", "lower", (0.0, 100.0),
    "pyiqa PIQE (Venkatanarayanan et al. 2015), MATLAB-compatible, no weights needed",
    tiling="none")


# ---------------------------------------------------------------------------------------------
# FID: data-set level, restored outputs of a split vs their ground truth.


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
    return _finite("fid", float(frechet_distance(a.mean(0), np.cov(a, rowvar=False),
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


# ---------------------------------------------------------------------------------------------
# PBA blur score: MBSD's patch blur annotator score, averaged over the image.

PBA_PATCH = 64


def _pba_reason() -> str | None:
    if importlib.util.find_spec("deblurbench.annotate.pba") is None:
        return "deblurbench.annotate.pba is not installed in this tree (annotate issue)"
    return None


def pba_blur_score(restored: np.ndarray, reference: np.ndarray | None = None) -> float:
    from deblurbench.annotate import pba

    if min(restored.shape[:2]) < PBA_PATCH:
        raise MetricFailure(f"pba_blur_score needs at least {PBA_PATCH} px per side")
    return _finite("pba_blur_score", float(np.mean(pba.blur_scores(restored, PBA_PATCH))))


register(Metric(MetricSpec(
    name="pba_blur_score", version=f"mbsd-p{PBA_PATCH}-1", kind="NR", direction="lower",
    library="deblurbench", colour_space="RGB (as deblurbench.annotate.pba)",
    window=f"{PBA_PATCH}x{PBA_PATCH} patches", data_range=1.0, crop=0,
    definition="mean over the image's patches of MBSD's PBA blur score (Eq. 1-2: SSIM between "
               "a patch and its Gaussian re-blur, r=11 sigma=3.6), from "
               "deblurbench.annotate.pba.blur_scores", value_range=(0.0, 1.0), family="blur"),
    pba_blur_score, "deblurbench", available=_pba_reason))
