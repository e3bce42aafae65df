"""Deformable-conv benchmark on CPU: torchvision's kernel (the baseline) vs the grid_sample
formulation of ``deblurbench.nn.deform``, with a plain conv of the same shape for scale.

Same module, same weights, same random inputs (fractional offsets up to 2 px, random mask);
times are the best of ``--repeats``; ratios are baseline time / path time (above 1: faster
than torchvision). Also prints the max abs difference of the output and of the input gradient.

    .venv/bin/python bench/bench_deform.py [--channels 64] [--sizes 128 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from deblurbench.nn import DeformConv2d


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocator, lazy init)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def inputs(c: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, size, size, generator=gen)
    offset = (torch.rand(1, 18, size, size, generator=gen) - 0.5) * 4
    mask = torch.rand(1, 9, size, size, generator=gen)
    return x, offset, mask


def paths(conv: DeformConv2d, x, offset, mask) -> dict[str, Callable[[bool], torch.Tensor]]:
    def deform(impl: str) -> Callable[[bool], torch.Tensor]:
        def call(grad: bool) -> torch.Tensor:
            conv.impl = impl
            return conv(*(t.requires_grad_(grad) for t in (x, offset, mask)))
        return call

    def plain(grad: bool) -> torch.Tensor:
        return F.conv2d(x.requires_grad_(grad), conv.weight, conv.bias, padding=1)

    return {"torchvision": deform("torchvision"), "grid_sample": deform("grid_sample"),
            "plain conv": plain}


def forward_backward(call: Callable[[bool], torch.Tensor]) -> torch.Tensor:
    y = call(True)
    y.sum().backward()
    return y


def bench(c: int, size: int, repeats: int) -> None:
    torch.manual_seed(0)
    conv = DeformConv2d(c, c)
    x, offset, mask = inputs(c, size)
    calls = paths(conv, x, offset, mask)
    rows = {}
    for name, call in calls.items():
        with torch.no_grad():
            fwd = best_of(lambda call=call: call(False), repeats)
        both = best_of(lambda call=call: forward_backward(call), repeats)
        rows[name] = (fwd, both)
    base_f, base_b = rows["torchvision"]
    print(f"\n{c} ch, {size}x{size}, batch 1, {torch.get_num_threads()} threads, "
          f"best of {repeats}")
    print(f"{'path':<12} {'fwd s':>8} {'fwd+bwd s':>10} {'fwd vs tv':>10} {'f+b vs tv':>10}")
    for name, (f, b) in rows.items():
        print(f"{name:<12} {f:8.4f} {b:10.4f} {base_f / f:9.2f}x {base_b / b:9.2f}x")
    grads = {}
    for impl in ("torchvision", "grid_sample"):
        x.grad = None
        y = forward_backward(calls[impl])
        grads[impl] = (y.detach(), x.grad.clone())
    out_err = (grads["torchvision"][0] - grads["grid_sample"][0]).abs().max().item()
    grad_err = (grads["torchvision"][1] - grads["grid_sample"][1]).abs().max().item()
    print(f"max abs difference grid_sample vs torchvision: output {out_err:.2e}, "
          f"input gradient {grad_err:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}")
    for size in args.sizes:
        bench(args.channels, size, args.repeats)


if __name__ == "__main__":
    main()
