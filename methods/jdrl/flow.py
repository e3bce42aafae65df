"""The misalignment-tolerant loss's flow (Sec. 3.3.2, Eq. 11-13): OpenCV DIS optical flow on
detached 8-bit grey images (standing in for PWC-Net), a bilinear backward warp, and the
calibration mask of Eq. 13 (``deblurbench.datasets.align.calibration_mask``, one mean per
image as printed).

Convention: ``flow(ref, mov)`` is the flow ``f`` with ``ref(p) ~ mov(p + f(p))``, so
``warp(mov, flow(ref, mov))`` is ``mov`` in ``ref``'s geometry. The paper's
``Phi_{I_S -> I_hat}`` (which deforms ``I_S`` towards ``I_hat``) is ``flow(I_hat, I_S)``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deblurbench.datasets.align import calibration_mask

_DIS = None


def _dis() -> cv2.DISOpticalFlow:
    global _DIS
    if _DIS is None:
        _DIS = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _DIS


def _grey8(img: torch.Tensor) -> np.ndarray:
    y = img.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    g = y @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(np.round(g * 255).astype(np.uint8))


def flow(ref: torch.Tensor, mov: torch.Tensor) -> torch.Tensor:
    """N x 2 x H x W flow (x, y in pixels) from each ``ref`` to ``mov`` image."""
    out = [_dis().calc(_grey8(r), _grey8(m), None) for r, m in zip(ref, mov, strict=True)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(ref.device)


def warp(img: torch.Tensor, fl: torch.Tensor) -> torch.Tensor:
    """``out(p) = img(p + fl(p))``, bilinear, border replicated (the warping W of Eq. 12)."""
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=img.dtype, device=img.device),
                            torch.arange(w, dtype=img.dtype, device=img.device), indexing="ij")
    gx = (xs + fl[:, 0].to(img)) * (2 / max(w - 1, 1)) - 1
    gy = (ys + fl[:, 1].to(img)) * (2 / max(h - 1, 1)) - 1
    return F.grid_sample(img, torch.stack([gx, gy], -1), mode="bilinear",
                         padding_mode="border", align_corners=True)


def mask(fl: torch.Tensor, lam: float = 0.35, on: str = "magnitude", min_flow: float = 0.0
         ) -> torch.Tensor:
    """Eq. 13 per image: N x 1 x H x W, 1 where the flow magnitude is within ``1 +- lam`` of
    its mean. ``on="visualisation"`` applies the test to the brightness of the usual HSV flow
    picture (magnitude normalised to the image's maximum), as the released code does.
    ``min_flow`` > 0 (not in the paper): an image whose mean flow is below it keeps every pixel
    under ``(1 + lam) * min_flow`` (nearly aligned pairs have no meaningful ratio)."""
    f = fl.detach().cpu().numpy()
    out = []
    for one in f:
        mag = np.sqrt(one[0] ** 2 + one[1] ** 2)
        if on == "visualisation":
            mag = np.round(255 * mag / max(float(mag.max()), 1e-6))
        out.append(calibration_mask(mag, lam=lam, min_flow=min_flow))
    return torch.from_numpy(np.stack(out)[:, None].astype(np.float32)).to(fl.device)
