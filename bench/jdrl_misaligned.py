"""JDRL's claim on known misalignment: trained on misaligned pairs, JDRL (reblurring module and
misalignment-tolerant loss) beats the same backbone trained with a plain L1 loss, when both are
scored against the true aligned ground truth.

Runs in its own project folder (default ``bench/work/jdrl-misaligned``) so the main pipeline's
outputs, metrics and database stay untouched:

1. ``synth misalign`` from the embedded synthetic-defocus set (its raw folder is linked, or
   rendered when absent), ``datasets prepare`` and ``datasets align`` (the true alignment);
2. ``methods train jdrl`` and ``methods train jdrl --variant l1`` on its train split (small
   configuration unless ``--config paper``), validation on its val split against the
   misaligned targets, exactly what a user with SDD-like data has;
3. ``methods run`` of both and of ``identity`` on the test split;
4. ``score`` against the aligned truth (``--reference aligned``) and, to show how misleading it
   is, against the misaligned targets (``--reference original``).

Writes ``<work>/result.json``, ``<work>/result.md`` and a picture ``<work>/result.png`` (one
test crop: input, misaligned target, L1, JDRL, truth), and prints the table. About 8 minutes on
2 CPU cores with the small configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SRC, DST = "synthetic-defocus", "synthetic-misaligned"
RUNS = ["identity", "jdrl+l1", "jdrl"]


def cli(root: Path, *args: str) -> str:
    env = os.environ | {"DEBLURBENCH_ROOT": str(root)}
    exe = Path(sys.executable).with_name("deblurbench")
    print(f"$ deblurbench {' '.join(args)}", flush=True)
    proc = subprocess.run([str(exe), *args], cwd=root, env=env, stdout=subprocess.PIPE, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"deblurbench {' '.join(args)} failed ({proc.returncode})")
    return proc.stdout


def setup(root: Path, config: str, overrides: dict) -> None:
    """A project folder: the repo's cards and methods, params with this run's database."""
    (root / "datasets").mkdir(parents=True, exist_ok=True)
    for name in (SRC, DST):
        shutil.copy(REPO / "datasets" / f"{name}.yaml", root / "datasets")
    methods = root / "methods"
    if methods.is_symlink():
        methods.unlink()
    elif methods.exists():
        shutil.rmtree(methods)
    methods.symlink_to(REPO / "methods")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = [DST]
    params["train"] |= {"config": config, "overrides": overrides}
    params["run"] |= {"config": config}
    params["score"] |= {"db": "results.duckdb", "metrics_dir": "metrics", "regions": False}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = root / "datasets" / SRC / "raw"
    if not raw.exists():
        main_raw = REPO / "datasets" / SRC / "raw"
        if main_raw.is_dir():
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.symlink_to(main_raw)
        else:
            cli(root, "synth", "defocus", "--out", SRC)


def scores(root: Path, reference: str) -> dict[str, dict[str, float]]:
    out = {}
    for run in RUNS:
        cli(root, "score", "--method", run, "--dataset", DST, "--split", "test",
            "--reference", reference, "--metric", "psnr", "--metric", "ssim", "--no-regions")
        f = root / "metrics" / DST / "test" / f"{run}.json"
        out[run] = {k: v for k, v in json.loads(f.read_text()).items() if k in ("psnr", "ssim")}
    return out


def figure(root: Path, out: Path, image_id: str = "rocket-03", crop: int = 96) -> None:
    """Blurry input, misaligned target, plain L1, JDRL and the aligned truth, one crop each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deblurbench.io import read_image

    raw = root / "datasets" / DST / "raw" / "test"
    panels = [("blurry input", raw / "blurry"), ("misaligned target", raw / "sharp"),
              ("same backbone, plain L1", root / "outputs" / "jdrl+l1" / DST / "test"),
              ("JDRL", root / "outputs" / "jdrl" / DST / "test"),
              ("aligned truth", raw / "aligned_sharp")]
    imgs = [read_image(d / f"{image_id}.png") for _, d in panels]
    h, w = imgs[0].shape[:2]
    y0, x0 = (h - crop) // 2, (w - crop) // 2
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
    for ax, (title, _), img in zip(axes, panels, imgs, strict=True):
        ax.imshow(img[y0:y0 + crop, x0:x0 + crop], interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"synthetic-misaligned test {image_id}, centre {crop} px crop", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "jdrl-misaligned")
    ap.add_argument("--config", choices=["small", "paper"], default="small")
    ap.add_argument("--fresh", action="store_true", help="delete the work folder first")
    args = ap.parse_args()
    root = args.work.resolve()
    if args.fresh:
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    setup(root, args.config, {})
    cli(root, "synth", "misalign", "--from", SRC, "--out", DST)
    cli(root, "datasets", "prepare", DST)
    cli(root, "datasets", "align", DST)
    seconds = {}
    for variant in ("l1", None):
        t0 = time.monotonic()
        cli(root, "methods", "train", "jdrl", "--dataset", DST, "--retrain-stale",
            *(["--variant", variant] if variant else []))
        seconds["jdrl" + (f"+{variant}" if variant else "")] = round(time.monotonic() - t0, 1)
    for run in RUNS:
        name, _, variant = run.partition("+")
        cli(root, "methods", "run", name, "--dataset", DST, "--split", "test",
            *(["--variant", variant] if variant else []))
    result = {"config": args.config, "train_seconds": seconds,
              "aligned": scores(root, "aligned"), "original": scores(root, "original")}
    a = result["aligned"]
    result["jdrl_minus_l1_psnr_db"] = round(a["jdrl"]["psnr"] - a["jdrl+l1"]["psnr"], 4)
    (root / "result.json").write_text(json.dumps(result, indent=1))
    lines = [("| run | PSNR vs aligned truth | SSIM vs aligned truth | PSNR vs misaligned target "
              "| train s |"), "| --- | --- | --- | --- | --- |"]
    for run in RUNS:
        lines.append(f"| {run} | {a[run]['psnr']:.3f} | {a[run]['ssim']:.4f} | "
                     f"{result['original'][run]['psnr']:.3f} | {seconds.get(run, '-')} |")
    lines.append(f"\nJDRL - L1 (aligned truth): {result['jdrl_minus_l1_psnr_db']:+.3f} dB")
    (root / "result.md").write_text("\n".join(lines) + "\n")
    figure(root, root / "result.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
