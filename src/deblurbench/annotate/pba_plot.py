"""Pictures of PBA blur levels, coloured as in MBSD's Fig. 10, for review and reports."""

from __future__ import annotations

import numpy as np

#: RGB of slight, mild, moderate, severe: blue, green, yellow, red (MBSD Fig. 10).
LEVEL_COLOURS = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
                         dtype=np.float32)


def overlay_png(image: np.ndarray, pixel_levels: np.ndarray, *, dim: float = 0.5,
                alpha: float = 0.5) -> np.ndarray:
    """Level colours blended over a dimmed copy of ``image``; float32 RGB [0, 1], HxWx3.

    Each pixel is ``(1 - alpha) * dim * image + alpha * colour``: dimming keeps the colours
    readable on bright regions while the scene stays recognisable beneath them.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected float RGB HxWx3, got shape {image.shape}")
    if pixel_levels.shape != image.shape[:2]:
        raise ValueError(f"level map {pixel_levels.shape} does not match image "
                         f"{image.shape[:2]}")
    if pixel_levels.size and int(pixel_levels.max()) >= len(LEVEL_COLOURS):
        raise ValueError(f"levels must be 0..3, got {int(pixel_levels.max())}")
    base = (1.0 - alpha) * dim * np.asarray(image, dtype=np.float32)
    return np.clip(base + alpha * LEVEL_COLOURS[pixel_levels], 0.0, 1.0).astype(np.float32)
