"""Batching benchmark: learned metrics scored a batch of same-size images per forward pass vs
one image per pass (the baseline: the engine with ``score.batch_size: 1``), same models, same
images, in one run.

Models are the real architectures with seeded random weights (none can be downloaded here):
LPIPS v0.1 on a random AlexNet (the ``lpips`` package) and pyiqa's DISTS on a random VGG16.
Both go through the project's own metric code (``lpips_computer``, ``pyiqa_build``), so the
timings are the engine's. Values must agree to 1e-5; prints images/s of both and the ratio.

    .venv/bin/python bench/bench_batching.py --n 8 --batch 4 --size 512x768 [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np
import torch


def images(n: int, h: int, w: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    sharp, blurry = [], []
    for i in range(n):
        small = rng.random((h // 8, w // 8, 3)).astype(np.float32)
        s = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        sharp.append(s)
        blurry.append(cv2.GaussianBlur(s, (0, 0), 1.0 + i % 4))
    return blurry, sharp


def computers(device: str) -> dict:
    import lpips
    import pyiqa.archs.dists_arch as dists_arch
    import torchvision

    from deblurbench.metrics.learned import lpips_computer
    from deblurbench.metrics.pyiqa_models import pyiqa_build

    vgg16 = torchvision.models.vgg16
    dists_arch.models.vgg16 = lambda weights=None, **kw: vgg16(**kw)  # random, no download
    torch.manual_seed(0)
    out = {"lpips_alex (random AlexNet)":
           lpips_computer(lpips.LPIPS(net="alex", pnet_rand=True, verbose=False), device)}
    torch.manual_seed(0)
    out["dists (random VGG16)"] = pyiqa_build("dists_bench", "dists", True,
                                              pretrained=False)(device)
    return out


def timed(fn) -> tuple[float, list[float]]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    values = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="number of pairs (default: 8)")
    ap.add_argument("--batch", type=int, default=4, help="images per pass (default: 4)")
    ap.add_argument("--size", default="512x768", help="HxW (default: 512x768)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    h, w = map(int, args.size.lower().split("x"))
    blurry, sharp = images(args.n, h, w)
    print(f"pairs: {args.n} x {h}x{w}; batch {args.batch}; device {args.device}; "
          f"torch threads {torch.get_num_threads()}")
    bad = False
    for name, comp in computers(args.device).items():
        comp.fn(blurry[0], sharp[0])  # warm-up: first-call allocations out of both timings
        t_one, one = timed(lambda c=comp: [c.fn(b, s) for b, s in zip(blurry, sharp)])
        t_many, many = timed(lambda c=comp: [v for k in range(0, args.n, args.batch)
                                             for v in c.batch_fn(blurry[k:k + args.batch],
                                                                 sharp[k:k + args.batch])])
        worst = float(np.max(np.abs(np.array(one) - np.array(many))))
        print(f"{name}:")
        print(f"  one image per pass:   {t_one:7.2f} s  {args.n / t_one:7.3f} images/s")
        print(f"  {args.batch} images per pass:   {t_many:7.2f} s  {args.n / t_many:7.3f} "
              f"images/s")
        print(f"  ratio (batched / one-per-pass images/s): {t_one / t_many:.2f}x; "
              f"max |difference| {worst:.2e}")
        bad |= worst > 1e-5
    if bad:
        print("FAIL: values differ by more than 1e-5", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
