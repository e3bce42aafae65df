"""Reproduce MBSD's Fig. 9 on scikit-image photos: PBA blur score vs Gaussian radius and sigma.

    .venv/bin/python bench/pba_fig9.py fig9.png [--photos astronaut coffee chelsea rocket]

Prints the mean curves and writes a two-panel plot. PIQE and NIQE (the project's metric
registry: no weights needed for PIQE, NIQE from its packaged MATLAB parameters, reported
unavailable if those are missing) are min-max normalised over each curve, as the paper does for
NIQE, so they share the blur score's [0, 1] axis.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from skimage import data, img_as_float32

from deblurbench.annotate.pba_sweep import RADII, SIGMAS, gaussian_blur, image_blur_score

Scorer = Callable[[np.ndarray], float]


def iqa_scorer(name: str) -> tuple[Scorer | None, str]:
    """A no-reference metric of the project's registry (so NIQE uses the same packaged MATLAB
    parameters as the scorer) on float RGB arrays, or None and the reason it is missing."""
    from deblurbench.metrics.spec import MetricUnavailable, get_metric

    metric = get_metric(name)
    try:
        computer = metric.computer("cpu")
    except MetricUnavailable as exc:
        return None, f"unavailable ({exc})"
    return (lambda image: float(computer.fn(image, None))), f"ok ({metric.spec.version})"


def minmax(curve: np.ndarray) -> np.ndarray:
    span = curve.max() - curve.min()
    return np.zeros_like(curve) if span == 0 else (curve - curve.min()) / span


def sweep(photos: list[np.ndarray], kind: str, values: tuple[float, ...],
          scorers: dict[str, Scorer]) -> dict[str, np.ndarray]:
    """Per metric, a (photos x values) array; IQA curves min-max normalised per photo."""
    out: dict[str, list[list[float]]] = {"blur score": []} | {k: [] for k in scorers}
    for photo in photos:
        blurred = [gaussian_blur(photo, kind, v) for v in values]
        out["blur score"].append([image_blur_score(b) for b in blurred])
        for name, fn in scorers.items():
            out[name].append(list(minmax(np.array([fn(b) for b in blurred]))))
    return {k: np.array(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path, help="where to write the plot")
    parser.add_argument("--photos", nargs="+", default=["astronaut", "coffee", "chelsea",
                                                        "rocket"])
    args = parser.parse_args(argv)
    photos = [img_as_float32(getattr(data, name)()) for name in args.photos]

    scorers: dict[str, Scorer] = {}
    for name in ("piqe", "niqe"):
        fn, status = iqa_scorer(name)
        print(f"{name.upper()}: {status}")
        if fn is not None:
            scorers[name.upper()] = fn

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (kind, values, label) in zip(axes, [("radius", RADII, "(a) Gaussian kernel radius"),
                                                ("sigma", SIGMAS, "(b) Gaussian sigma")]):
        curves = sweep(photos, kind, values, scorers)
        print(f"\n{kind:>6}  " + "  ".join(f"{v:5g}" for v in values))
        for name, arr in curves.items():
            mean = arr.mean(axis=0)
            monotonic = bool(np.all(np.diff(mean) > 0))
            print(f"{name:>10}: " + " ".join(f"{m:5.3f}" for m in mean)
                  + f"   rises monotonically: {monotonic}")
            ax.plot(values, mean, marker="o", label=name if name == "blur score"
                    else f"{name} (min-max)")
        ax.set_xlabel(label)
        ax.set_ylabel("score")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"PBA blur score on {', '.join(args.photos)} (mean over photos)")
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=120)
    print(f"\nwrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
