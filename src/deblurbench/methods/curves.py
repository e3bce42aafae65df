"""Learning curves of a training record: training loss and validation score against steps,
for a method card (``deblurbench methods curve NAME --dataset D --out F.png``)."""

from __future__ import annotations

import json
from pathlib import Path


def plot_curve(records: dict[str, Path], out: Path, identity_val: float | None = None,
               title: str = "") -> Path:
    """One PNG: the first loss term of each record (left) and its validation PSNR (right).

    ``records``: label -> training log (``checkpoints/<m>/<d>/<config>.json``). ``identity_val``:
    the validation PSNR of the blurry inputs themselves, drawn as the floor to beat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, path in records.items():
        rec = json.loads(Path(path).read_text())
        hist = rec.get("history") or []
        if hist:
            key = next(k for k in hist[0] if k != "step")
            ax_l.plot([h["step"] for h in hist], [h[key] for h in hist], lw=0.8,
                      label=f"{label} ({key})")
        val = rec.get("val_history") or []
        if val:
            metric = next(k for k in val[0] if k != "step")
            ax_v.plot([v["step"] for v in val], [v[metric] for v in val], marker="o", ms=3,
                      label=label)
            best = rec.get("best")
            if best:
                ax_v.plot([best["step"]], [best["value"]], "k*", ms=10)
    if identity_val is not None:
        ax_v.axhline(identity_val, color="grey", ls="--", lw=1, label="identity (blurry input)")
    ax_l.set(xlabel="step", ylabel="training loss", yscale="log")
    ax_v.set(xlabel="step", ylabel="validation PSNR (dB)")
    for ax in (ax_l, ax_v):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def identity_val_psnr(dataset: str, split: str = "val") -> float:
    """Mean PSNR of the blurry images against the sharp ones on a split (the floor)."""
    from deblurbench.datasets.manifest import load_manifest
    from deblurbench.io import read_image
    from deblurbench.methods.train_context import psnr

    import torch

    rows = load_manifest(dataset, split)
    vals = [psnr(torch.from_numpy(read_image(r.blurry)), torch.from_numpy(read_image(r.sharp)))
            for r in rows.itertuples()]
    return sum(vals) / len(vals)
