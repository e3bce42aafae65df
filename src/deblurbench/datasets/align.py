"""`deblurbench datasets align NAME`: warp each sharp image onto its blurry image.

Real pairs are not pixel-aligned (SDD on purpose: zoom and shift between captures; RealDOF:
two cameras), so full-reference scores need ground truth in the blurry image's geometry.

Per pair, on blur-robust inputs (luma, each image normalised to zero mean and unit variance
against exposure differences, downscaled to ``work_side`` and Gaussian-smoothed alike so the
sharp image's detail does not dominate the match):

1. global transform, blurry -> sharp coordinates: phase correlation for the shift, then ECC
   (``cv2.findTransformECC``) coarse to fine with the card's motion model; SIFT + RANSAC as a
   fallback when ECC does not converge;
2. dense residual flow between the blurry image and the globally warped sharp image (OpenCV
   DIS, or Farneback);
3. one remap of the original sharp image through the composed map (no double interpolation);
4. the JDRL calibration mask (Ren et al., Eq. 13): with Phi the flow magnitude and Phi-bar its
   mean, keep pixels where (1 - lambda) Phi-bar < Phi < (1 + lambda) Phi-bar, lambda = 0.35.
   Phi is the *total* flow (global + residual), as JDRL's flow network sees it; the mean is
   taken per ``mask_tile`` x ``mask_tile`` tile (JDRL computes it on 512 x 512 training crops,
   and a zoom makes the flow magnitude grow with distance from the centre), and where a tile's
   mean is below ``min_flow`` px the lower bound is dropped (a nearly aligned tile has no
   meaningful ratio). Pixels mapped from outside the sharp image are masked too.

Outputs go to ``datasets/<name>/variants/<variant>/`` (never over the originals): aligned
sharp images at native bit depth, 8-bit masks (255 = valid), ``stats.parquet`` (global
transform, mean and 95th-percentile residual flow in native pixels, masked fraction) and a
variant manifest readable with ``load_manifest(name, variant=...)``.

A synthetic misaligned set (``deblurbench synth misalign``) stores its true alignment: there the
variant holds the exact aligned sharp image, every pixel valid, and the estimate above is kept
only as statistics (``estimate_psnr_vs_truth``), which measures this module on known motion.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from deblurbench.io import read_image_with_info, write_png

Model = Literal["translation", "euclidean", "affine", "homography"]
_ECC = {"translation": cv2.MOTION_TRANSLATION, "euclidean": cv2.MOTION_EUCLIDEAN,
        "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


@dataclass(frozen=True)
class AlignParams:
    """Every knob of the alignment (``params.yaml`` ``real`` section sets the main ones)."""

    model: Model = "affine"
    flow: Literal["dis", "farneback", "none"] = "dis"
    lam: float = 0.35  # JDRL Eq. 13 (their implementation details: lambda = 0.35)
    work_side: int = 1024  # long side of the matching images, pixels
    smooth_sigma: float = 1.5  # Gaussian on both matching images, work pixels
    mask_tile: int = 512  # native pixels; 0 = one mean over the whole image
    min_flow: float = 1.0  # native pixels
    pyramid_levels: int = 3
    ecc_iterations: int = 100
    ecc_eps: float = 1e-5


@dataclass
class AlignResult:
    aligned: np.ndarray  # float32 HxWx3 RGB [0, 1], sharp in the blurry image's geometry
    mask: np.ndarray  # bool HxW, True = valid for scoring
    matrix: np.ndarray  # 3x3, blurry pixel -> sharp pixel (native, x right, y down)
    residual: np.ndarray  # float32 HxWx2 residual flow, native pixels
    stats: dict


# ---------------------------------------------------------------------------- primitives


def _luma(img: np.ndarray) -> np.ndarray:
    y = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (y - y.mean()) / max(float(y.std()), 1e-6)


def _work(img: np.ndarray, scale: float, sigma: float) -> np.ndarray:
    y = _luma(img)
    if scale < 1:
        y = cv2.resize(y, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(y, (0, 0), sigma) if sigma > 0 else y


def _to_u8(z: np.ndarray) -> np.ndarray:
    return np.clip(128 + 40 * z, 0, 255).astype(np.uint8)


def _rescale(m: np.ndarray, f: float) -> np.ndarray:
    """The same transform in coordinates scaled by ``f`` (S M S^-1)."""
    s = np.diag([f, f, 1.0])
    return s @ m @ np.linalg.inv(s)


def _apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = m[2, 0] * x + m[2, 1] * y + m[2, 2]
    return ((m[0, 0] * x + m[0, 1] * y + m[0, 2]) / w,
            (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / w)


def _warp(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.warpPerspective(img, m.astype(np.float32), (w, h),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def _phase_shift(blurry: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    win = cv2.createHanningWindow(blurry.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(blurry.astype(np.float32), sharp.astype(np.float32), win)
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=np.float64)


def _ecc(blurry: np.ndarray, sharp: np.ndarray, init: np.ndarray, p: AlignParams
         ) -> tuple[np.ndarray, float]:
    """Coarse-to-fine ECC; returns the 3x3 transform (work pixels) and the final correlation."""
    m = init.copy()
    cc = float("nan")
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, p.ecc_iterations, p.ecc_eps)
    for level in range(p.pyramid_levels - 1, -1, -1):
        f = 0.5**level
        if min(blurry.shape) * f < 32:
            continue
        b = cv2.resize(blurry, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else blurry
        s = cv2.resize(sharp, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else sharp
        mf = _rescale(m, f)
        warp = mf.astype(np.float32) if p.model == "homography" else mf[:2].astype(np.float32)
        cc, warp = cv2.findTransformECC(b, s, warp, _ECC[p.model], crit, None, 1)
        full = np.eye(3)
        full[: warp.shape[0]] = warp
        m = _rescale(full, 1 / f)
    return m, cc


def _features(blurry: np.ndarray, sharp: np.ndarray, p: AlignParams) -> np.ndarray | None:
    sift = cv2.SIFT_create(nfeatures=4000)
    kb, db = sift.detectAndCompute(_to_u8(blurry), None)
    ks, ds = sift.detectAndCompute(_to_u8(sharp), None)
    if db is None or ds is None or len(kb) < 8 or len(ks) < 8:
        return None
    matches = cv2.BFMatcher().knnMatch(db, ds, k=2)
    good = [a for a, *rest in matches if rest and a.distance < 0.75 * rest[0].distance]
    if len(good) < 8:
        return None
    src = np.float32([kb[g.queryIdx].pt for g in good])
    dst = np.float32([ks[g.trainIdx].pt for g in good])
    if p.model == "homography":
        m, _ = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
        return m
    m, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0)
    return None if m is None else np.vstack([m, [0, 0, 1]])


def global_transform(blurry: np.ndarray, sharp: np.ndarray, p: AlignParams
                     ) -> tuple[np.ndarray, str, float]:
    """3x3 blurry -> sharp transform on work images; (matrix, method, ECC correlation)."""
    init = _phase_shift(blurry, sharp)
    try:
        m, cc = _ecc(blurry, sharp, init, p)
        return m, "ecc", cc
    except cv2.error:
        pass
    m = _features(blurry, sharp, p)
    if m is not None:
        return m, "sift-ransac", float("nan")
    return init, "phase-correlation", float("nan")


def residual_flow(blurry: np.ndarray, warped: np.ndarray, method: str) -> np.ndarray:
    """Flow f with warped(x + f(x)) ~ blurry(x), on work images; HxWx2 float32."""
    if method == "none":
        return np.zeros((*blurry.shape, 2), np.float32)
    a, b = _to_u8(blurry), _to_u8(warped)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(a, b, None)
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 5, 7, 1.5, 0)


def calibration_mask(magnitude: np.ndarray, lam: float = 0.35, tile: int = 0,
                     min_flow: float = 0.0, valid: np.ndarray | None = None) -> np.ndarray:
    """JDRL Eq. 13: ``(1 - lam) * mean < magnitude < (1 + lam) * mean``, per tile.

    ``tile`` 0 takes one mean over the image (the equation as printed); the mean is over
    ``valid`` pixels only; a tile whose mean is below ``min_flow`` keeps only the upper bound
    (with ``(1 + lam) * min_flow``).
    """
    h, w = magnitude.shape
    valid = np.ones((h, w), bool) if valid is None else valid
    out = np.zeros((h, w), bool)
    step_y, step_x = (tile, tile) if tile > 0 else (h, w)
    for y0 in range(0, h, step_y):
        for x0 in range(0, w, step_x):
            mag = magnitude[y0:y0 + step_y, x0:x0 + step_x]
            ok = valid[y0:y0 + step_y, x0:x0 + step_x]
            if not ok.any():
                continue
            mean = float(mag[ok].mean())
            if mean < min_flow:
                keep = mag < (1 + lam) * min_flow
            else:
                keep = ((1 - lam) * mean < mag) & (mag < (1 + lam) * mean)
            out[y0:y0 + step_y, x0:x0 + step_x] = keep & ok
    return out


def describe(m: np.ndarray, height: int, width: int) -> dict:
    """Scale, rotation and the shift at the image centre of a blurry -> sharp transform."""
    a = m[:2, :2] / m[2, 2]
    cx, cy = (width - 1) / 2, (height - 1) / 2
    sx, sy = _apply(m, np.array(cx), np.array(cy))
    return {"scale": float(math.sqrt(abs(np.linalg.det(a)))),
            "rotation_deg": float(math.degrees(math.atan2(a[1, 0], a[0, 0]))),
            "shift_x": float(sx - cx), "shift_y": float(sy - cy)}


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def align_pair(blurry: np.ndarray, sharp: np.ndarray, p: AlignParams = AlignParams()
               ) -> AlignResult:
    """Align float RGB ``sharp`` onto ``blurry`` (same size, HxWx3 in [0, 1])."""
    if blurry.shape != sharp.shape:
        raise ValueError(f"sizes differ: blurry {blurry.shape}, sharp {sharp.shape}")
    h, w = blurry.shape[:2]
    scale = min(1.0, p.work_side / max(h, w))
    bw, sw = _work(blurry, scale, p.smooth_sigma), _work(sharp, scale, p.smooth_sigma)
    m_work, method, cc = global_transform(bw, sw, p)
    flow_w = residual_flow(bw, _warp(sw, m_work), p.flow)
    m = _rescale(m_work, 1 / scale)
    flow = cv2.resize(flow_w, (w, h), interpolation=cv2.INTER_LINEAR) / scale if scale < 1 \
        else flow_w
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    mx, my = _apply(m, xs + flow[..., 0], ys + flow[..., 1])
    aligned = cv2.remap(sharp.astype(np.float32), mx.astype(np.float32), my.astype(np.float32),
                        cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    aligned = np.clip(aligned, 0, 1)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    total = np.hypot(mx - xs, my - ys)
    mask = calibration_mask(total, p.lam, p.mask_tile, p.min_flow, inside)
    res_mag = np.hypot(flow[..., 0], flow[..., 1])[inside]
    stats = {"global_method": method, "ecc_cc": cc, **describe(m, h, w),
             "matrix": json.dumps(np.round(m, 8).tolist()),
             "flow_mean": float(res_mag.mean()) if res_mag.size else float("nan"),
             "flow_p95": float(np.percentile(res_mag, 95)) if res_mag.size else float("nan"),
             "total_flow_mean": float(total[inside].mean()) if inside.any() else float("nan"),
             "outside_fraction": float(1 - inside.mean()),
             "masked_fraction": float(1 - mask.mean()),
             "psnr_before": _psnr(blurry, sharp, np.ones((h, w), bool)),
             "psnr_after": _psnr(blurry, aligned, inside)}
    return AlignResult(aligned.astype(np.float32), mask, m, flow.astype(np.float32), stats)


# ------------------------------------------------------------------------------ data set


def variant_name(name: str) -> str:
    """The card's aligned variant (``aligned: true``), else ``aligned``."""
    from deblurbench.datasets.manifest import get_card

    card = get_card(name)
    return next((v.name for v in card.variants if v.aligned), "aligned")


def align_dataset(name: str, params: AlignParams = AlignParams(), splits: list[str] | None = None
                  ) -> pd.DataFrame:
    """Align every pair of the prepared data set; returns the per-pair statistics."""
    from deblurbench.datasets.manifest import COLUMNS, load_manifest, manifest_path
    from deblurbench.paths import dataset_dir

    df = load_manifest(name)
    if splits:
        df = df[df["split"].isin(splits)].reset_index(drop=True)
    df = df[df["sharp"].notna()].reset_index(drop=True)
    variant = variant_name(name)
    root = dataset_dir(name)
    truth = _truth_by_id(root / "raw")
    if df.empty:  # no ground truth (PixelDP, CUHK): say so, and leave the pipeline running
        (root / "variants").mkdir(parents=True, exist_ok=True)
        (root / "variants" / "NOTHING_TO_ALIGN.txt").write_text(
            f"{name} has no sharp images: nothing to align; only no-reference metrics apply.\n")
        return pd.DataFrame(columns=["split", "image_id", "flow_mean", "flow_p95",
                                     "masked_fraction"])
    final = root / "variants" / variant
    partial = root / "variants" / f".{variant}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    rows, stats = [], []
    try:
        for r in tqdm(df.itertuples(index=False), total=len(df), desc=f"align {name}",
                      unit="pair"):
            blurry, info = read_image_with_info(r.blurry)
            sharp, _ = read_image_with_info(r.sharp)
            res = align_pair(blurry, sharp, params)
            if truth is not None:  # a synthetic misaligned set: the answer is known
                res = _with_truth(res, truth, r, root / "raw")
            rel_sharp = Path(r.split) / "sharp" / f"{r.image_id}.png"
            rel_mask = Path(r.split) / "mask" / f"{r.image_id}.png"
            write_png(partial / rel_sharp, res.aligned, bits=int(r.bit_depth))
            write_png(partial / rel_mask, res.mask.astype(np.float32), bits=8)
            base = Path("variants") / variant
            row = {c: getattr(r, c) for c in COLUMNS}
            row |= {"sharp": (base / rel_sharp).as_posix(), "mask": (base / rel_mask).as_posix(),
                    "sharp_original": r.sharp}
            rows.append(row)
            stats.append({"split": r.split, "image_id": r.image_id,
                          "height": info.height, "width": info.width, **res.stats})
        out = pd.DataFrame(rows)
        for c in ("blurry", "left", "right", "blur_map", "sharp_original"):
            out[c] = [Path(p).resolve().relative_to(root.resolve()).as_posix()
                      if isinstance(p, str) else None for p in out[c]]
        out.to_parquet(partial / "manifest.parquet", index=False)
        st = pd.DataFrame(stats)
        st.to_parquet(partial / "stats.parquet", index=False)
        st.to_csv(partial / "stats.csv", index=False)
        (partial / "variant.json").write_text(json.dumps(
            {"dataset": name, "variant": variant, "params": asdict(params),
             "pairs": len(out)}, indent=2))
        old = root / "variants" / f".{variant}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    assert manifest_path(name, variant).exists()
    return st


def _truth_by_id(raw: Path) -> dict[tuple[str, str], dict] | None:
    from deblurbench.datasets.misalign import known_alignment

    known = known_alignment(raw)
    return None if known is None else {(t["split"], t["image_id"]): t for t in known["pairs"]}


def _with_truth(estimate: AlignResult, truth: dict, r, raw: Path) -> AlignResult:
    """The true aligned sharp image (every pixel valid) in place of the estimate, with the
    estimate's error against it in the statistics: a check of this module on known motion."""
    from deblurbench.datasets.misalign import ALIGNED_DIR

    t = truth.get((r.split, r.image_id))
    if t is None:
        raise ValueError(f"{raw / 'alignment.json'}: no true alignment for {r.split}/{r.image_id}")
    exact, _ = read_image_with_info(raw / r.split / ALIGNED_DIR / f"{r.image_id}.png")
    if exact.shape != estimate.aligned.shape:
        raise ValueError(f"{raw / r.split / ALIGNED_DIR / (r.image_id + '.png')}: size "
                         f"{exact.shape} differs from the pair's {estimate.aligned.shape}")
    ok = estimate.mask
    stats = estimate.stats | {
        "truth": "known (synthetic misalignment)", "true_zoom": t["zoom"], "true_dx": t["dx"],
        "true_dy": t["dy"], "estimate_psnr_vs_truth": _psnr(exact, estimate.aligned, ok),
        "masked_fraction": 0.0}
    to_sharp = cv2.invertAffineTransform(np.asarray(t["matrix"], np.float64))  # blurry -> sharp
    return AlignResult(exact.astype(np.float32), np.ones(ok.shape, bool),
                       np.vstack([to_sharp, [0, 0, 1]]), estimate.residual, stats)


def params_from(real, flow: str | None = None) -> AlignParams:
    """:class:`AlignParams` from ``params.yaml``'s ``real`` section."""
    return AlignParams(model=real.align_model, flow=flow or real.align_flow,
                       lam=real.align_lambda, work_side=real.align_work_side,
                       mask_tile=real.align_mask_tile)
