"""The model-based metrics pyiqa defines (no-reference and perceptual), loaded through pyiqa
with tensors from our own 16-bit-safe I/O, never pyiqa's file-path input, which decodes
through 8-bit Pillow; and the rule by which they tile very large images.

pyiqa is licensed for non-commercial use only (see README).
"""

from __future__ import annotations

import numpy as np
import torch

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
from deblurbench.tiling import boxes, mean_over_tiles

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



def tiles(h: int, w: int, tile: int = TILE) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of the tiles a metric scores; a sliver under 64 px joins its neighbour."""
    return boxes(h, w, tile)


def tiled(fn, restored, reference, many=None):
    """``fn`` on the image, or on its tiles (area-weighted mean) above ``TILE_ABOVE_PIXELS``.

    ``many(restored_tiles, reference_tiles) -> values`` scores same-shape tiles in one forward
    pass (at most ``TILE_BATCH`` at a time); the value is the same, the model runs fewer times.
    """
    h, w = restored.shape[:2]
    if h * w <= TILE_ABOVE_PIXELS:
        return fn(restored, reference)
    return mean_over_tiles(fn, restored, reference, TILE, many, TILE_BATCH)
def batched(fn, many):
    """A metric's ``batch_fn``: one forward pass over same-size images, each image scored as
    ``fn`` would (tiled images go one at a time, their tiles batched by ``tiled``)."""
    def batch_fn(restored: list, references: list) -> list[float]:
        h, w = restored[0].shape[:2]
        if h * w > TILE_ABOVE_PIXELS:
            return [fn(r, s) for r, s in zip(restored, references, strict=True)]
        return many(restored, references)
    return batch_fn




def finite(name: str, value: float) -> float:
    """``value`` as a float; NaN or inf is a failure of this image, never a stored number."""
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
            return [finite(name, float(v)) for v in out]

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
