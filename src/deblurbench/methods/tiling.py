"""Tiled restoration for images too large for one pass, and padding to a size multiple.

Tiles of ``tile`` pixels overlap by ``overlap`` pixels; each output pixel is the weighted mean
of the tiles covering it, with weights rising linearly across the overlap, so seams fade out
instead of showing. All tiles of an image have the same size, so they are restored in batches.
For a pointwise method the tiled output equals the untiled one (tested).
"""

from __future__ import annotations

from collections.abc import Callable

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
