"""The embedded `synthetic-defocus` data set: thin-lens defocus rendered over skimage photos.

No download: each colour photo of ``skimage.data`` gets procedural depth maps (a slanted plane,
depth steps and object-like blobs), a thin-lens circle of confusion from depth, focus distance
and aperture, and layered disk-kernel blur composited back to front so that near objects occlude
the blurred background (the "over" operator on premultiplied layers). Everything follows from
one seed, so the same parameters give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from deblurbench.config import SynthParams
from deblurbench.io import write_png


@dataclass(frozen=True)
class Scene:
    image_id: str
    photo: str
    split: str
    focus_m: float
    seed: int


def load_photo(name: str, max_side: int) -> np.ndarray:
    """A skimage sample photo as float32 RGB [0, 1], area-downsampled to ``max_side``."""
    import skimage.data

    try:
        raw = getattr(skimage.data, name)()
    except AttributeError:
        raise ValueError(f"skimage.data has no photo {name!r}") from None
    if raw.ndim != 3 or raw.shape[2] < 3:
        raise ValueError(f"skimage.data.{name} is not a colour photo (shape {raw.shape})")
    img = raw[:, :, :3].astype(np.float32) / 255.0
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.clip(img, 0, 1)


def depth_map(h: int, w: int, p: SynthParams, rng: np.random.Generator) -> np.ndarray:
    """Procedural metric depth (HxW float32, metres): slant + steps + nearer blobs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    # A slanted ground-like plane: nearer at the bottom, tilted sideways at random.
    t = 0.5 + 0.6 * (0.5 - yy) * rng.uniform(0.5, 1.0) + 0.3 * (xx - 0.5) * rng.uniform(-1, 1)
    # Depth steps: one or two random lines push one side further away.
    for _ in range(int(rng.integers(1, 3))):
        angle = rng.uniform(0, np.pi)
        off = rng.uniform(0.3, 0.7)
        side = (np.cos(angle) * xx + np.sin(angle) * yy) > off
        t = t + side * rng.uniform(0.1, 0.3)
    # Objects: ellipses standing nearer than what is behind them (hard occlusion edges).
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0.15, 0.85, size=2)
        ry, rx = rng.uniform(0.08, 0.25, size=2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        t = np.where(inside, np.minimum(t, rng.uniform(0.0, 0.35)), t)
    t = np.clip(t, 0, 1)
    return (p.depth_near_m + t * (p.depth_far_m - p.depth_near_m)).astype(np.float32)


def coc_radius_px(depth_m: np.ndarray, focus_m: float, width_px: int, p: SynthParams) -> np.ndarray:
    """Thin-lens circle-of-confusion radius in pixels.

    Diameter on the sensor c = A f |d - S| / (d (S - f)) with aperture A = f / N; converted to
    pixels through the sensor width, halved, and capped at ``max_radius_px``.
    """
    f = p.focal_length_mm / 1000.0
    aperture = f / p.f_number
    d = np.maximum(depth_m.astype(np.float64), f * 1.01)
    c = aperture * f * np.abs(d - focus_m) / (d * (focus_m - f))
    pitch = (p.sensor_width_mm / 1000.0) / width_px
    return np.minimum(c / pitch / 2.0, p.max_radius_px).astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased disk PSF of the given radius (pixels), summing to 1; a delta below 0.5 px."""
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    n = int(np.ceil(radius))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float32)
    k = np.clip(radius + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1)
    return (k / k.sum()).astype(np.float32)


def render_layers(
    sharp: np.ndarray, depth: np.ndarray, radius: np.ndarray, n_layers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Composite disk-blurred depth layers far to near; returns (blurred, radius used per pixel)."""
    edges = np.quantile(depth, np.linspace(0, 1, n_layers + 1))
    layer = np.clip(np.searchsorted(edges, depth, side="right") - 1, 0, n_layers - 1)
    used = np.zeros_like(radius)
    colour = np.zeros_like(sharp)
    alpha = np.zeros(sharp.shape[:2], np.float32)
    for i in range(n_layers - 1, -1, -1):  # far (large depth) first
        mask = (layer == i).astype(np.float32)
        if not mask.any():
            continue
        r = float(np.median(radius[layer == i]))
        used[layer == i] = r
        k = disk_kernel(r)
        a = cv2.filter2D(mask, -1, k, borderType=cv2.BORDER_REFLECT)
        c = cv2.filter2D(sharp * mask[:, :, None], -1, k, borderType=cv2.BORDER_REFLECT)
        colour = c + colour * (1 - a[:, :, None])
        alpha = a + alpha * (1 - a)
    blurred = colour / np.maximum(alpha, 1e-6)[:, :, None]
    return np.clip(blurred, 0, 1).astype(np.float32), used


def scenes(p: SynthParams) -> list[Scene]:
    """The scene list: photos split by photo (no photo in both splits), seeds derived in order."""
    overlap = set(p.photos) & set(p.test_photos)
    if overlap:
        raise ValueError(f"photos in both train and test splits: {sorted(overlap)}")
    seq = np.random.SeedSequence(p.seed)
    out = []
    for split, photos in (("train", p.photos), ("test", p.test_photos)):
        for photo in photos:
            for k in range(p.scenes_per_photo):
                child = int(seq.spawn(1)[0].generate_state(1)[0])
                out.append(Scene(f"{photo}-{k:02d}", photo, split, 0.0, child))
    return out


def make_synthetic_defocus(root: str | Path, p: SynthParams) -> list[dict]:
    """Render every scene into ``root/{split}/{sharp,blurry,blur_map}/`` and ``root/scenes.json``."""
    root = Path(root)
    records = []
    for sc in tqdm(scenes(p), desc="synthetic-defocus", unit="scene"):
        rng = np.random.default_rng(sc.seed)
        sharp = load_photo(sc.photo, p.max_side)
        h, w = sharp.shape[:2]
        depth = depth_map(h, w, p, rng)
        focus = float(np.quantile(depth, rng.uniform(0.05, 0.5)))
        radius = coc_radius_px(depth, focus, w, p)
        blurred, used = render_layers(sharp, depth, radius, p.n_layers)
        base = root / sc.split
        write_png(base / "sharp" / f"{sc.image_id}.png", sharp, bits=16)
        write_png(base / "blurry" / f"{sc.image_id}.png", blurred, bits=16)
        (base / "blur_map").mkdir(parents=True, exist_ok=True)
        np.save(base / "blur_map" / f"{sc.image_id}.npy", used.astype(np.float32))
        rec = asdict(sc) | {"focus_m": round(focus, 6), "height": h, "width": w,
                            "max_radius_px": float(used.max()), "mean_radius_px": float(used.mean())}
        records.append(rec)
    (root / "scenes.json").write_text(json.dumps({"params": asdict(p), "scenes": records}, indent=1))
    return records
