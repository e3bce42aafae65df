"""`deblurbench datasets report NAME`: a data-quality report (markdown + PNG figures).

Sections: resolution and bit-depth census; blur-level distribution from PBA (stored
annotations under ``annotate/pba/<name>/``, else computed when the PBA module is installed);
misalignment distribution (from ``datasets align``); exposure and colour shift between blurry
and sharp (per-channel mean ratio sharp / blurry, over the alignment mask when aligned);
dual-pixel view balance (left / right); near-duplicate images by a 64-bit perceptual hash (DCT
of a 32x32 luma thumbnail, Hamming distance); and the worst pairs by each measure, with
thumbnails. Written to ``datasets/<name>/report/`` (``report.md``, ``summary.json``,
``figures/*.png``).

It reads both data sets and blur annotations, so it sits above both packages: ``annotate``
imports ``datasets``, never the other way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from deblurbench.config import PBASection
from deblurbench.io import read_image, to_display_uint8
from deblurbench.paths import dataset_dir, pba_dir

CHANNELS = ("R", "G", "B")


def phash(img: np.ndarray) -> int:
    """64-bit perceptual hash: sign of the 8x8 lowest DCT terms of a 32x32 luma thumbnail
    against their median (DC excluded from the median)."""
    y = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    small = cv2.resize(y, (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def near_duplicates(hashes: dict[str, int], threshold: int = 6) -> list[tuple[str, str, int]]:
    keys = sorted(hashes)
    out = []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            d = hamming(hashes[a], hashes[b])
            if d <= threshold:
                out.append((a, b, d))
    return sorted(out, key=lambda t: t[2])


def channel_ratio(sharp: np.ndarray, blurry: np.ndarray, mask: np.ndarray | None) -> list[float]:
    """Per-channel mean(sharp) / mean(blurry) over ``mask`` (all pixels when None)."""
    m = np.ones(sharp.shape[:2], bool) if mask is None else mask
    if not m.any():
        return [float("nan")] * 3
    return [float(sharp[..., c][m].mean() / max(blurry[..., c][m].mean(), 1e-6))
            for c in range(3)]


def _pba_levels(name: str, image_id: str, blurry: np.ndarray,
                pba_section: PBASection | dict | None) -> tuple[dict | None, str]:
    """Share of pixels per PBA level in the blurry image's per-pixel map, made with the
    settings of ``params.yaml: pba`` (constants and ``pixel_map_patch``), the same map the
    scorer's blur-level regions use. A stored annotation is used only when it was made with
    those settings; otherwise PBA runs here."""
    try:
        from deblurbench.annotate import pba
        from deblurbench.annotate.run import pba_params_from
    except ImportError:
        return None, "unavailable"
    params, patch = pba_params_from(pba_section)
    h, w = blurry.shape[:2]
    stored = pba_dir(name) / f"{image_id}.npz"
    try:
        if stored.exists():
            res = pba.load_npz(stored)
            if res.params == params and patch in res.patch_sizes:
                grid = res.labels[res.patch_sizes.index(patch)]
                return pba.summarize_levels(pba.pixel_levels(grid, patch, h, w)), "stored"
        grid = pba.blur_levels(pba.blur_scores(blurry, patch, params), params)
        return pba.summarize_levels(pba.pixel_levels(grid, patch, h, w)), "computed"
    except (ValueError, OSError):
        return None, "failed"


def _aligned(name: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str | None]:
    base = dataset_dir(name) / "variants"
    if not base.is_dir():
        return None, None, None
    for v in sorted(base.iterdir()):
        if (v / "stats.parquet").exists() and not v.name.startswith("."):
            from deblurbench.datasets.manifest import load_manifest

            return (pd.read_parquet(v / "stats.parquet"), load_manifest(name, variant=v.name),
                    v.name)
    return None, None, None


def measure(name: str, pba: bool = True, pba_section: PBASection | dict | None = None,
            ) -> tuple[pd.DataFrame, dict]:
    """One row of measures per pair, and the notes on where they came from."""
    from deblurbench.datasets.manifest import load_manifest

    df = load_manifest(name)
    stats, variant_df, variant = _aligned(name)
    vmap = {} if variant_df is None else {(r.split, r.image_id): r for r in
                                          variant_df.itertuples(index=False)}
    rows, pba_src = [], set()
    for r in tqdm(df.itertuples(index=False), total=len(df), desc=f"report {name}", unit="pair"):
        blurry = read_image(r.blurry)
        row = {"split": r.split, "image_id": r.image_id, "height": r.height, "width": r.width,
               "bit_depth": r.bit_depth, "phash": phash(blurry)}
        if isinstance(r.sharp, str):
            v = vmap.get((r.split, r.image_id))
            if v is not None:
                sharp = read_image(v.sharp)
                mask = read_image(v.mask)[..., 0] > 0.5
            else:
                sharp, mask = read_image(r.sharp), None
            row.update({f"ratio_{c}": x for c, x in zip(CHANNELS, channel_ratio(sharp, blurry,
                                                                                mask))})
        if isinstance(r.left, str) and isinstance(r.right, str):
            ratio = channel_ratio(read_image(r.left), read_image(r.right), None)
            row.update({f"lr_ratio_{c}": x for c, x in zip(CHANNELS, ratio)})
        if pba:
            levels, src = _pba_levels(name, r.image_id, blurry, pba_section)
            pba_src.add(src)
            if levels:
                row.update({f"pba_{k}": v for k, v in levels.items()})
        rows.append(row)
    out = pd.DataFrame(rows)
    if stats is not None:
        keep = ["split", "image_id", "scale", "rotation_deg", "shift_x", "shift_y", "flow_mean",
                "flow_p95", "masked_fraction", "global_method"]
        out = out.merge(stats[keep], on=["split", "image_id"], how="left")
    ratio_cols = [f"ratio_{c}" for c in CHANNELS]
    if set(ratio_cols) <= set(out.columns):
        logs = np.log(out[ratio_cols].astype(float))
        out["exposure_shift"] = np.exp(logs.mean(axis=1))  # geometric mean over channels
        out["colour_cast"] = np.exp(logs.max(axis=1) - logs.min(axis=1))
    return out, {"variant": variant, "pba": sorted(pba_src)}


# ---------------------------------------------------------------------------------- figures


def _hist(ax, values, title: str, xlabel: str) -> None:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    ax.hist(v, bins=min(30, max(5, len(v))), color="#4878a8")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)


def _figures(name: str, m: pd.DataFrame, figs: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs.mkdir(parents=True, exist_ok=True)
    made = {}
    res = m.groupby(["height", "width"]).size()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([f"{w}x{h}" for h, w in res.index], res.values, color="#4878a8")
    ax.set_title(f"{name}: resolutions (WxH)", fontsize=9)
    ax.set_ylabel("images")
    fig.tight_layout(), fig.savefig(figs / "resolution.png", dpi=100), plt.close(fig)
    made["resolution"] = "figures/resolution.png"
    levels = [c for c in m.columns if c.startswith("pba_")]
    if levels:
        fig, ax = plt.subplots(figsize=(5, 3))
        shares = m[levels].mean()
        ax.bar([c[4:] for c in levels], shares.values, color="#c0504d")
        ax.set_title(f"{name}: PBA blur levels (share of pixels)", fontsize=9)
        fig.tight_layout(), fig.savefig(figs / "blur_levels.png", dpi=100), plt.close(fig)
        made["blur_levels"] = "figures/blur_levels.png"
    if "flow_p95" in m.columns:
        fig, axes = plt.subplots(1, 4, figsize=(12, 2.8))
        _hist(axes[0], m["scale"], "global scale", "sharp / blurry")
        _hist(axes[1], np.hypot(m["shift_x"], m["shift_y"]), "global shift", "pixels")
        _hist(axes[2], m["flow_p95"], "residual flow p95", "pixels")
        _hist(axes[3], m["masked_fraction"], "masked fraction (Eq. 13)", "share")
        fig.tight_layout(), fig.savefig(figs / "misalignment.png", dpi=100), plt.close(fig)
        made["misalignment"] = "figures/misalignment.png"
    if "ratio_R" in m.columns:
        fig, ax = plt.subplots(figsize=(5, 3))
        for c, col in zip(CHANNELS, ("#c0504d", "#9bbb59", "#4f81bd")):
            ax.hist(m[f"ratio_{c}"].astype(float), bins=20, alpha=0.5, color=col, label=c)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.legend(fontsize=8)
        ax.set_title(f"{name}: sharp / blurry mean per channel", fontsize=9)
        fig.tight_layout(), fig.savefig(figs / "exposure.png", dpi=100), plt.close(fig)
        made["exposure"] = "figures/exposure.png"
    return made


def _thumbs(name: str, keys: list[tuple[str, str]], figs: Path, tag: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deblurbench.datasets.manifest import load_manifest

    if not keys:
        return None
    df = load_manifest(name).set_index(["split", "image_id"])
    _, vdf, _ = _aligned(name)
    vdf = None if vdf is None else vdf.set_index(["split", "image_id"])
    cols = 3 if vdf is not None else 2
    fig, axes = plt.subplots(len(keys), cols, figsize=(3 * cols, 2.4 * len(keys)), squeeze=False)
    for i, key in enumerate(keys):
        r = df.loc[key]
        panels = [("blurry", r.blurry), ("sharp", r.sharp)]
        if vdf is not None and key in vdf.index:
            panels = [("blurry", r.blurry), ("aligned sharp", vdf.loc[key].sharp),
                      ("mask", vdf.loc[key]["mask"])]
        for j in range(cols):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(panels) and isinstance(panels[j][1], str):
                img = read_image(panels[j][1])
                scale = 240 / max(img.shape[:2])
                if scale < 1:
                    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                ax.imshow(to_display_uint8(img))
                ax.set_title(f"{key[1]}: {panels[j][0]}", fontsize=7)
    fig.tight_layout()
    path = figs / f"worst_{tag}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return f"figures/{path.name}"


# ----------------------------------------------------------------------------------- report


def _table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


WORST = {  # measure: (column, larger is worse, description)
    "flow_p95": ("flow_p95", True, "residual flow after the global transform, p95 (px)"),
    "masked_fraction": ("masked_fraction", True, "share of pixels masked by Eq. 13"),
    "exposure": ("exposure_dev", True, "|log| of the sharp / blurry mean ratio"),
    "colour_cast": ("colour_cast", True, "max / min channel ratio"),
    "severe_blur": ("pba_severe", True, "share of severely blurred pixels (PBA)"),
}


def report(name: str, top_k: int = 5, dup_threshold: int = 6, pba: bool = True,
           out_dir: Path | None = None, pba_section: PBASection | dict | None = None) -> Path:
    """Write the report; returns the path of ``report.md``."""
    from deblurbench.datasets.manifest import get_card

    card = get_card(name)
    out = out_dir or dataset_dir(name) / "report"
    figs = out / "figures"
    m, notes = measure(name, pba, pba_section)
    if "exposure_shift" in m.columns:
        m["exposure_dev"] = np.abs(np.log(m["exposure_shift"].astype(float)))
    made = _figures(name, m, figs)
    md = [f"# Data-quality report: {card.title}", "",
          (f"Data set `{name}` v{card.version}, {len(m)} images; card: {card.bit_depth}-bit, "
           f"native {card.native_resolution or 'unstated'}, ground truth: {card.has_gt}."), ""]
    census = (m.groupby(["split", "height", "width", "bit_depth"]).size()
              .reset_index(name="images"))
    md += ["## Resolution and bit depth", "", _table(census), "",
           f"![resolutions]({made['resolution']})", ""]
    if card.bit_depth not in set(m["bit_depth"]):
        found = sorted({int(b) for b in m["bit_depth"]})
        md += [f"**The card says {card.bit_depth}-bit; the files are {found}-bit.**", ""]
    md += ["## Blur levels (PBA)", ""]
    if "blur_levels" in made:
        shares = m[[c for c in m.columns if c.startswith("pba_")]].mean()
        levels_txt = ", ".join(f"{k[4:]} {v:.3f}" for k, v in shares.items())
        md += [(f"Source: {', '.join(notes['pba'])} annotations; share of pixels per level: "
                f"{levels_txt}"), "",
               f"![blur levels]({made['blur_levels']})", ""]
    else:
        md += [("PBA annotations unavailable (install the annotate module or run "
                f"`deblurbench annotate pba {name}`)."), ""]
    md += ["## Misalignment", ""]
    if "misalignment" in made:
        cols = ["scale", "shift_x", "shift_y", "flow_mean", "flow_p95", "masked_fraction"]
        md += [(f"From the `{notes['variant']}` variant (`deblurbench datasets align {name}`): "
                "global transform blurry -> sharp, residual flow in native pixels."), "",
               _table(m[cols].describe().loc[["mean", "50%", "max"]].reset_index()), "",
               f"![misalignment]({made['misalignment']})", ""]
    elif card.has_gt:
        md += [f"Not aligned yet: run `deblurbench datasets align {name}`.", ""]
    else:
        md += ["No ground truth: nothing to align.", ""]
    md += ["## Exposure and colour shift (sharp / blurry, per-channel mean)", ""]
    if "exposure" in made:
        cols = [f"ratio_{c}" for c in CHANNELS] + ["exposure_shift", "colour_cast"]
        md += [_table(m[cols].describe().loc[["mean", "min", "max"]].reset_index()), "",
               f"![exposure]({made['exposure']})", ""]
    else:
        md += ["No ground truth: not applicable.", ""]
    if "lr_ratio_R" in m.columns:
        cols = [f"lr_ratio_{c}" for c in CHANNELS]
        md += ["## Dual-pixel view balance (left / right, per-channel mean)", "",
               _table(m[cols].describe().loc[["mean", "min", "max"]].reset_index()), ""]
    keys = {(r.split, r.image_id): r.phash for r in m.itertuples(index=False)}
    dups = near_duplicates({f"{s}/{i}": h for (s, i), h in keys.items()}, dup_threshold)
    across = sum(a.split("/")[0] != b.split("/")[0] for a, b, _ in dups)
    dup_line = (f"Pairs within Hamming distance {dup_threshold} of 64 bits: {len(dups)}"
                + (f", {across} across splits" if dups else "") + ".")
    md += ["## Near-duplicate images (perceptual hash of the blurry image)", "", dup_line, ""]
    if dups:
        md += [_table(pd.DataFrame(dups[:50], columns=["image", "near duplicate", "distance"])),
               ""]
    md += ["## Worst pairs", ""]
    worst_json = {}
    for tag, (col, _, desc) in WORST.items():
        if col not in m.columns or m[col].isna().all():
            continue
        top = m.sort_values(col, ascending=False).head(top_k)
        worst_json[tag] = [{"split": r.split, "image_id": r.image_id, col: float(getattr(r, col))}
                           for r in top.itertuples(index=False)]
        md += [f"### {tag}: {desc}", "", _table(top[["split", "image_id", col]]), ""]
        fig = _thumbs(name, [(r.split, r.image_id) for r in top.head(3).itertuples()], figs, tag)
        if fig:
            md += [f"![worst {tag}]({fig})", ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(md))
    summary = {"dataset": name, "images": len(m), "variant": notes["variant"],
               "census": census.to_dict(orient="records"), "near_duplicates": dups,
               "worst": worst_json,
               "means": {c: float(m[c].astype(float).mean()) for c in m.columns
                         if c.startswith(("ratio_", "pba_", "flow_", "masked", "lr_ratio_"))}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_jsonable))
    m.drop(columns=["phash"]).to_csv(out / "pairs.csv", index=False)
    return out / "report.md"


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if math.isnan(o) else float(o)
    return str(o)
