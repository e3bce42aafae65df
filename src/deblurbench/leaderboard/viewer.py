"""Pictures for the image viewer: display tone-mapping, synced crops, A/B split, error maps.

All inputs are float32 HxWx3 RGB in [0, 1] as ``deblurbench.io.read_image`` returns them (16-bit
sources keep their precision until here); outputs are uint8 for display only, never scored.
"""

from __future__ import annotations

import numpy as np

from deblurbench.io import read_image, to_display_uint8


def load(path: str) -> np.ndarray:
    return read_image(path)


def display(image: np.ndarray) -> np.ndarray:
    """uint8 for the screen: 16-bit data is mapped linearly from [0, 1] (no gamma change)."""
    return to_display_uint8(image)


def crop_box(height: int, width: int, cx: float, cy: float, zoom: float) -> tuple[int, ...]:
    """(top, left, h, w) of a window 1/zoom of the image, centred at fractions (cx, cy)."""
    zoom = max(1.0, float(zoom))
    h, w = max(1, int(round(height / zoom))), max(1, int(round(width / zoom)))
    top = int(round(cy * height - h / 2))
    left = int(round(cx * width - w / 2))
    return (min(max(top, 0), height - h), min(max(left, 0), width - w), h, w)


def crop(image: np.ndarray, box: tuple[int, ...], upscale: int = 1) -> np.ndarray:
    """The same box from every image (synced zoom), enlarged by pixel repetition."""
    top, left, h, w = box
    out = image[top:top + h, left:left + w]
    if upscale > 1:
        out = np.repeat(np.repeat(out, upscale, axis=0), upscale, axis=1)
    return out


def ab_split(a: np.ndarray, b: np.ndarray, position: float) -> np.ndarray:
    """A left of ``position`` (fraction of the width), B right of it, a white line between."""
    if a.shape != b.shape:
        raise ValueError(f"A/B images differ in shape: {a.shape} vs {b.shape}")
    x = int(round(np.clip(position, 0, 1) * a.shape[1]))
    out = b.copy()
    out[:, :x] = a[:, :x]
    if 0 < x < a.shape[1]:
        out[:, max(x - 1, 0):x + 1] = 1.0 if out.dtype.kind == "f" else 255
    return out


def error_heatmap(restored: np.ndarray, sharp: np.ndarray, vmax: float) -> np.ndarray:
    """|restored - sharp| mean over RGB, coloured with inferno over [0, vmax]; uint8 RGB."""
    from matplotlib import colormaps

    err = np.abs(restored - sharp).mean(axis=2)
    rgb = colormaps["inferno"](np.clip(err / max(vmax, 1e-12), 0, 1))[..., :3]
    return to_display_uint8(rgb.astype(np.float32))


def pba_overlay(image: np.ndarray, levels: np.ndarray) -> np.ndarray:
    from deblurbench.annotate.pba_plot import overlay_png

    return to_display_uint8(overlay_png(image, levels))
