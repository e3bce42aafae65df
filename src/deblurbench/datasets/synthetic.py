"""The embedded `synthetic-defocus` data set: thin-lens defocus over skimage photos and dead leaves.

No download. The sharp content is the photos that ship inside scikit-image (grey ones tinted
into RGB with a random colour gradient) plus procedural dead-leaves pictures
(:mod:`deblurbench.datasets.dead_leaves`). Each scene gets a procedural depth map (a slanted
plane, depth steps and object-like blobs), a thin-lens circle of confusion from depth, focus
distance and aperture, and layered disk-kernel blur composited back to front so that near
objects occlude the blurred background (the "over" operator on premultiplied layers).

Splits are disjoint by photo (train, val for checkpoint selection, test). The blur is drawn
the same way in every split. Its scene-level parameter is the focus distance, and how much
blur a focus distance gives depends strongly on the random depth map (focusing on a near blob
blurs everything behind it by several pixels, focusing on the background hardly at all). So
the renderer stratifies the blur itself: each scene gets a target mean CoC radius, stratified
over the split's scenes between ``scene_mean_radius_px`` bounds, and the focus distance
(searched between two depth quantiles) that comes closest to it. Every split then covers the
same range of blur evenly, whatever its size. Everything follows from one seed and each scene's id, so the
same parameters give the same bytes and adding a scene leaves the other scenes' content alone.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from deblurbench.config import SynthParams
from deblurbench.datasets.dead_leaves import dead_leaves
from deblurbench.io import write_png

SPLITS = ("train", "val", "test")
DEAD_LEAVES = "dead-leaves"
# Names of one picture under two names, or two views of one scene: they count as one photo
# when splits are checked for overlap.
PHOTO_GROUPS = {"cat": "chelsea", "motorcycle_left": "motorcycle",
                "motorcycle_right": "motorcycle"}
STATS_BINS_PX = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)  # the last bin also holds radii >= 8


@dataclass(frozen=True)
class Scene:
    image_id: str
    source: str  # a skimage.data photo name, or "dead-leaves"
    split: str
    target_mean_radius_px: float  # the focus is set so that the mean CoC radius is about this
    seed: int


def _read_skimage(name: str) -> np.ndarray:
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise ValueError(f"skimage.data has no photo {name!r}")
    return loader()


@functools.lru_cache(maxsize=64)
def load_photo(name: str, max_side: int) -> np.ndarray:
    """A skimage sample photo, area-downsampled to ``max_side``: float32 [0, 1], HxWx3 RGB for
    colour photos (RGBA composited over white), HxW for grey ones. Read-only (cached)."""
    from skimage.util import img_as_float32

    raw = _read_skimage(name)
    img = img_as_float32(raw)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3] * img[:, :, 3:] + (1 - img[:, :, 3:])
    elif img.ndim == 3 and img.shape[2] >= 3:
        img = img[:, :, :3]
    elif img.ndim != 2:
        raise ValueError(f"skimage.data.{name} is not a 2-D grey or colour photo (shape "
                         f"{raw.shape})")
    h, w = img.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA)
    img = np.clip(img, 0, 1).astype(np.float32)
    img.flags.writeable = False
    return img


def tint(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey HxW image as float32 HxWx3 RGB: times a random two-colour linear gradient whose
    brightest channel is 1, mixed with neutral by a random strength (so highlights stay)."""
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * (xx / max(w - 1, 1) - 0.5) + np.sin(angle) * (yy / max(h - 1, 1) - 0.5))
    t = np.clip(t + 0.5, 0, 1)[:, :, None]
    ends = rng.uniform(0.3, 1.0, (2, 3))
    ends /= ends.max(axis=1, keepdims=True)
    strength = rng.uniform(0.3, 1.0)
    gain = 1 - strength * (1 - (ends[0] + (ends[1] - ends[0]) * t))
    return np.clip(grey[:, :, None] * gain, 0, 1).astype(np.float32)


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


def coc_radius_px(depth_m: np.ndarray, focus_m: float, sensor_px: int, p: SynthParams) -> np.ndarray:
    """Thin-lens circle-of-confusion radius in pixels.

    Diameter on the sensor c = A f |d - S| / (d (S - f)) with aperture A = f / N; converted to
    pixels with the pitch ``sensor_width_mm / sensor_px``, halved, and capped at
    ``max_radius_px``. The renderer passes ``sensor_px = max_side`` for every image: the sensor
    width spans ``max_side`` pixels whatever the picture's own width, so narrow (portrait or
    small) pictures get the same blur per metre of defocus as wide ones.
    """
    f = p.focal_length_mm / 1000.0
    aperture = f / p.f_number
    d = np.maximum(depth_m.astype(np.float64), f * 1.01)
    c = aperture * f * np.abs(d - focus_m) / (d * (focus_m - f))
    pitch = (p.sensor_width_mm / 1000.0) / sensor_px
    return np.minimum(c / pitch / 2.0, p.max_radius_px).astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased disk PSF of the given radius (pixels), summing to 1; a delta below 0.5 px."""
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    n = int(np.ceil(radius))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float32)
    k = np.clip(radius + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1)
    return (k / k.sum()).astype(np.float32)


def layer_radii(depth: np.ndarray, radius: np.ndarray, n_layers: int
                ) -> tuple[np.ndarray, list[float]]:
    """Depth-quantile layers: (HxW layer index, median radius per layer; NaN for empty ones)."""
    edges = np.quantile(depth, np.linspace(0, 1, n_layers + 1))
    layer = np.clip(np.searchsorted(edges, depth, side="right") - 1, 0, n_layers - 1)
    radii = [float(np.median(radius[layer == i])) if (layer == i).any() else float("nan")
             for i in range(n_layers)]
    return layer, radii


def render_layers(
    sharp: np.ndarray, depth: np.ndarray, radius: np.ndarray, n_layers: int
) -> tuple[np.ndarray, np.ndarray]:
    """Composite disk-blurred depth layers far to near; returns (blurred, radius used per pixel)."""
    layer, radii = layer_radii(depth, radius, n_layers)
    used = np.zeros_like(radius)
    colour = np.zeros_like(sharp)
    alpha = np.zeros(sharp.shape[:2], np.float32)
    for i in range(n_layers - 1, -1, -1):  # far (large depth) first
        if np.isnan(radii[i]):
            continue
        sel = layer == i
        mask = sel.astype(np.float32)
        used[sel] = radii[i]
        k = disk_kernel(radii[i])
        a = cv2.filter2D(mask, -1, k, borderType=cv2.BORDER_REFLECT)
        c = cv2.filter2D(sharp * mask[:, :, None], -1, k, borderType=cv2.BORDER_REFLECT)
        colour = c + colour * (1 - a[:, :, None])
        alpha = a + alpha * (1 - a)
    blurred = colour / np.maximum(alpha, 1e-6)[:, :, None]
    return np.clip(blurred, 0, 1).astype(np.float32), used


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def stratified(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """``n`` values covering [lo, hi) evenly: one uniform draw in each of ``n`` equal strata, in
    random order (so which scene gets which stratum is random, the spread is not)."""
    return lo + (hi - lo) * (rng.permutation(n) + rng.random(n)) / max(n, 1)


def _split_sources(p: SynthParams) -> dict[str, list[tuple[str, str]]]:
    """(image id, source) per split, in a fixed order."""
    def photo_scenes(photos: list[str], k: int) -> list[tuple[str, str]]:
        return [(f"{photo}-{j:02d}", photo) for photo in photos for j in range(k)]

    def leaves(n: int, prefix: str) -> list[tuple[str, str]]:
        return [(f"deadleaves-{prefix}{j:04d}", DEAD_LEAVES) for j in range(n)]

    return {
        "train": photo_scenes([*p.photos, *p.extra_photos], p.scenes_per_photo)
        + leaves(p.dead_leaves, ""),
        "val": photo_scenes(p.val_photos, p.val_scenes_per_photo)
        + leaves(p.val_dead_leaves, "val-"),
        "test": photo_scenes(p.test_photos, p.test_scenes_per_photo),
    }


def _check_photos(p: SynthParams) -> None:
    """No photo (or view of one scene) in two splits, nor twice in one."""
    lists = {"train": [*p.photos, *p.extra_photos], "val": p.val_photos, "test": p.test_photos}
    owner: dict[str, str] = {}
    for split, photos in lists.items():
        for photo in photos:
            if photo == DEAD_LEAVES:
                raise ValueError(f"synth: {DEAD_LEAVES!r} is not a photo name (use dead_leaves)")
            group = PHOTO_GROUPS.get(photo, photo)
            if group in owner:
                where = owner[group]
                raise ValueError(f"synth: photo {photo!r} ({group}) is in both the {where} and "
                                 f"{split} splits" if where != split else
                                 f"synth: photo {photo!r} ({group}) is listed twice in {split}")
            owner[group] = split


def _check_ranges(p: SynthParams) -> None:
    q, m = p.focus_quantile, p.scene_mean_radius_px
    if len(q) != 2 or not 0 <= q[0] <= q[1] <= 1:
        raise ValueError(f"synth.focus_quantile must be [lo, hi] within [0, 1], got {q}")
    if len(m) != 2 or not 0 <= m[0] <= m[1]:
        raise ValueError(f"synth.scene_mean_radius_px must be [lo, hi] with 0 <= lo <= hi, "
                         f"got {m}")


def scenes(p: SynthParams) -> list[Scene]:
    """The scene list: splits disjoint by photo, target blur stratified per split, and a seed
    per scene derived from ``p.seed`` and its id."""
    _check_photos(p)
    _check_ranges(p)
    out = []
    for split, items in _split_sources(p).items():
        if not items:
            raise ValueError(f"synth: the {split} split has no scenes (every split of "
                             f"{', '.join(SPLITS)} needs at least one)")
        out += split_scenes(items, split, p)
    return out


def split_scenes(items: list[tuple[str, str]], split: str, p: SynthParams,
                 stream: str | None = None) -> list[Scene]:
    """Scenes for (image id, source) ``items``: target blur stratified over them (random
    stream ``stream``, default the split's name), a seed per scene from ``p.seed`` and its id."""
    rng = np.random.default_rng([p.seed, _crc(stream or split)])
    targets = stratified(rng, len(items), *p.scene_mean_radius_px)
    return [Scene(image_id, source, split, round(float(target), 6),
                  int(np.random.SeedSequence([p.seed, _crc(image_id)]).generate_state(1)[0]))
            for (image_id, source), target in zip(items, targets)]


def render_scene(sc: Scene, p: SynthParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(sharp, blurry, true radius map in pixels, focus distance in metres) of one scene."""
    sharp = scene_sharp(sc, p)
    h, w = sharp.shape[:2]
    depth, focus, radius = scene_blur(sc, h, w, p)
    blurred, used = render_layers(sharp, depth, radius, p.n_layers)
    return sharp, blurred, used, focus


def scene_sharp(sc: Scene, p: SynthParams) -> np.ndarray:
    """The scene's sharp picture, float32 HxWx3 RGB [0, 1] (grey photos tinted)."""
    rng = np.random.default_rng([sc.seed, 0])
    if sc.source == DEAD_LEAVES:
        return dead_leaves(p.max_side, p.max_side, rng, r_min=p.dead_leaves_r_min_px,
                           r_max=p.dead_leaves_r_max_px, textured=p.dead_leaves_textured)
    img = load_photo(sc.source, p.max_side)
    return tint(img, rng) if img.ndim == 2 else img.copy()


def focus_for(depth: np.ndarray, target_px: float, p: SynthParams, n: int = 64) -> float:
    """The focus distance (metres) whose mean CoC radius over ``depth`` is closest to
    ``target_px``, among ``n`` log-spaced distances between the ``focus_quantile`` depth
    quantiles (evaluated on a 4x subsampled depth map: a search, not the rendered blur)."""
    coarse = depth[::4, ::4]
    lo, hi = np.quantile(coarse, p.focus_quantile)
    candidates = np.geomspace(max(lo, 1e-3), max(hi, lo, 1e-3), n)
    means = [float(coc_radius_px(coarse, float(s), p.max_side, p).mean()) for s in candidates]
    return float(candidates[int(np.argmin(np.abs(np.asarray(means) - target_px)))])


def scene_size(sc: Scene, p: SynthParams) -> tuple[int, int]:
    """(height, width) of the scene's pictures, without rendering them."""
    if sc.source == DEAD_LEAVES:
        return p.max_side, p.max_side
    return load_photo(sc.source, p.max_side).shape[:2]


def scene_blur(sc: Scene, h: int, w: int, p: SynthParams) -> tuple[np.ndarray, float, np.ndarray]:
    """(depth map in metres, focus distance in metres, CoC radius in pixels) for an HxW scene."""
    rng = np.random.default_rng([sc.seed, 1])
    depth = depth_map(h, w, p, rng)
    focus = focus_for(depth, sc.target_mean_radius_px, p)
    return depth, focus, coc_radius_px(depth, focus, p.max_side, p)


def blur_stats(maps: Iterable[np.ndarray]) -> dict:
    """Pixel statistics of blur-radius maps (pixels) pooled over images: image count, mean
    radius, share of pixels under 1 px, and pixel shares in :data:`STATS_BINS_PX` bins."""
    counts = np.zeros(len(STATS_BINS_PX) - 1, np.int64)
    total, n_px, under, n = 0.0, 0, 0, 0
    for m in maps:
        r = np.asarray(m, np.float64).ravel()
        counts += np.histogram(np.minimum(r, STATS_BINS_PX[-1]), bins=STATS_BINS_PX)[0]
        total += float(r.sum())
        n_px += r.size
        under += int((r < 1.0).sum())
        n += 1
    px = max(n_px, 1)
    return {"images": n, "pixels": n_px, "mean_radius_px": round(total / px, 4),
            "share_under_1px": round(under / px, 4), "bins_px": list(STATS_BINS_PX),
            "histogram": [round(float(c) / px, 4) for c in counts]}


def make_synthetic_defocus(root: str | Path, p: SynthParams) -> list[dict]:
    """Render every scene into ``root/{split}/{sharp,blurry,blur_map}/``, with the scene list
    in ``root/scenes.json`` and per-split blur statistics in ``root/stats.json``."""
    root = Path(root)
    records = []
    maps: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for sc in tqdm(scenes(p), desc="synthetic-defocus", unit="scene"):
        sharp, blurred, used, focus = render_scene(sc, p)
        h, w = sharp.shape[:2]
        base = root / sc.split
        write_png(base / "sharp" / f"{sc.image_id}.png", sharp, bits=16)
        write_png(base / "blurry" / f"{sc.image_id}.png", blurred, bits=16)
        (base / "blur_map").mkdir(parents=True, exist_ok=True)
        np.save(base / "blur_map" / f"{sc.image_id}.npy", used.astype(np.float32))
        maps[sc.split].append(used)
        records.append(asdict(sc) | {"focus_m": round(focus, 6), "height": h, "width": w,
                                     "max_radius_px": float(used.max()),
                                     "mean_radius_px": round(float(used.mean()), 6)})
    stats = {split: blur_stats(maps[split]) for split in SPLITS}
    (root / "scenes.json").write_text(json.dumps({"params": asdict(p), "scenes": records}, indent=1))
    (root / "stats.json").write_text(json.dumps(stats, indent=1))
    return records
