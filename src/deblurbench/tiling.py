"""Tiling, one module for methods and metrics: how a large image is cut and put back together.

Two uses share the tile geometry here:

- *restoring* (methods): overlapping tiles of one size, restored in batches; each output pixel
  is the weighted mean of the tiles covering it, with weights rising linearly across the
  overlap, so seams fade out instead of showing. For a pointwise method the tiled output equals
  the untiled one (tested). Also padding to a size multiple, which many networks need.
- *scoring* (metrics): disjoint tiles, a sliver under ``min_edge`` pixels joined to its
  neighbour; a metric's value over the image is the area-weighted mean of its tile values, and
  same-shape tiles may be scored in one batch (same values, fewer model runs).

Which images a metric tiles, and at which size, is the metric's definition and stays in
:mod:`deblurbench.metrics.pyiqa_models`; this module only does the cutting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Restore = Callable[..., torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad Bx?xHxW at the bottom/right to multiples of ``multiple``; returns (x, H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, h, w
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), h, w


def padded(fn: Restore, multiple: int) -> Restore:
    """``fn`` wrapped so it only ever sees sizes that are multiples of ``multiple``."""
    if multiple <= 1:
        return fn

    def run(x: torch.Tensor, **extras: torch.Tensor) -> torch.Tensor:
        xp, h, w = pad_to_multiple(x, multiple)
        ep = {k: pad_to_multiple(v, multiple)[0] for k, v in extras.items()}
        y = fn(xp, **ep)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(xp.shape):
            return y  # the caller's check names the wrong shape
        return y[..., :h, :w]

    return run


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile``; the last tile ends at the edge."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(n: int, overlap: int, device, dtype) -> torch.Tensor:
    w = torch.ones(n, device=device, dtype=dtype)
    k = min(overlap, n // 2)
    if k > 0:
        r = (torch.arange(k, device=device, dtype=dtype) + 0.5) / k
        w[:k] = r
        w[n - k:] = r.flip(0)
    return w


def blend_weight(th: int, tw: int, overlap: int, device=None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A tile's ``th x tw`` weight: 1 inside, rising linearly across the overlap."""
    return _ramp(th, overlap, device, dtype)[:, None] * _ramp(tw, overlap, device, dtype)[None, :]


def restore_tiled(fn: Restore, x: torch.Tensor, extras: dict[str, torch.Tensor], tile: int,
                  overlap: int, batch_size: int = 4,
                  check: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  ) -> torch.Tensor:
    """Restore 1x3xHxW ``x`` tile by tile; ``check(out, like)`` validates each tile's output."""
    if x.shape[0] != 1:
        raise ValueError(f"tiled restore takes one image at a time, got a batch of {x.shape[0]}")
    h, w = x.shape[-2:]
    th, tw = min(tile, h), min(tile, w)
    boxes = [(y0, x0) for y0 in tile_starts(h, th, overlap) for x0 in tile_starts(w, tw, overlap)]
    out = torch.zeros(1, x.shape[1], h, w, device=x.device, dtype=torch.float32)
    norm = torch.zeros(1, 1, h, w, device=x.device, dtype=torch.float32)
    weight = blend_weight(th, tw, overlap, x.device)
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        xb = torch.cat([x[..., y0:y0 + th, x0:x0 + tw] for y0, x0 in chunk])
        eb = {k: torch.cat([v[..., y0:y0 + th, x0:x0 + tw] for y0, x0 in chunk])
              for k, v in extras.items()}
        yb = fn(xb, **eb)
        if check is not None:
            yb = check(yb, xb)
        for j, (y0, x0) in enumerate(chunk):
            out[..., y0:y0 + th, x0:x0 + tw] += yb[j:j + 1].float() * weight
            norm[..., y0:y0 + th, x0:x0 + tw] += weight
    return out / norm


def tile_count(h: int, w: int, tile: int, overlap: int) -> int:
    return len(tile_starts(h, min(tile, h), overlap)) * len(tile_starts(w, min(tile, w), overlap))


def cuts(length: int, tile: int, min_edge: int = 64) -> list[tuple[int, int]]:
    """Disjoint [start, end) spans of ``tile`` covering ``length``; a last span under
    ``min_edge`` joins the one before it."""
    edges = list(range(0, length, tile)) + [length]
    if len(edges) > 2 and edges[-1] - edges[-2] < min_edge:
        edges.pop(-2)
    return list(itertools.pairwise(edges))


def boxes(h: int, w: int, tile: int, min_edge: int = 64) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of disjoint tiles covering an HxW image, row by row."""
    return [(a, b, c, d) for a, b in cuts(h, tile, min_edge) for c, d in cuts(w, tile, min_edge)]


def mean_over_tiles(fn, image, reference, tile: int, many=None, batch: int = 4) -> float:
    """Area-weighted mean of ``fn(image_tile, reference_tile)`` over :func:`boxes` (HxWxC
    arrays; ``reference`` may be None). ``many(image_tiles, reference_tiles) -> values``
    scores up to ``batch`` same-shape tiles in one call, giving each the value ``fn`` would."""
    cut = boxes(image.shape[0], image.shape[1], tile)
    values = [0.0] * len(cut)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, (y0, y1, x0, x1) in enumerate(cut):
        by_shape.setdefault((y1 - y0, x1 - x0), []).append(i)
    step = batch if many is not None else 1
    for idx in by_shape.values():
        for k in range(0, len(idx), step):
            part = idx[k:k + step]
            crops = [(slice(cut[i][0], cut[i][1]), slice(cut[i][2], cut[i][3])) for i in part]
            rs = [image[c] for c in crops]
            ss: Sequence = [None if reference is None else reference[c] for c in crops]
            got = many(rs, ss) if many is not None and len(part) > 1 else [fn(rs[0], ss[0])]
            for i, v in zip(part, got, strict=True):
                values[i] = v
    areas = [(y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in cut]
    return float(sum(v * a for v, a in zip(values, areas, strict=True)) / sum(areas))
