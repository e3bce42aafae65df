"""GPU smoke test of every learned method at paper size: one short training, one restore.

For each trainable learned method (or those named), with its paper params on the GPU:
a few training steps (of each training stage) at the paper's batch and crop size through the method's own ``train``
(the runner's TrainContext, no checkpoint written), then one restore of a DPDD-sized image
(1120x1680), with bf16 autocast where the card allows it. Prints and writes (``--out``) step
time, peak GPU memory and throughput. Minutes on an H100; also runs on CPU with ``--small``
(``python bench/gpu_smoke.py --device cpu --small``) to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def smoke(name: str, device: str, small: bool, steps: int, size: tuple[int, int]) -> dict:
    from accelerate import Accelerator

    from deblurbench.methods.card import resolve_params
    from deblurbench.methods.registry import get_card, load_class
    from deblurbench.methods.train_context import TrainContext, parse_stages

    card = get_card(name)
    params = resolve_params(card, small)
    if params.get("stages"):  # a staged method: every stage runs ``steps`` steps
        params["stages"] = [{**st, "steps": steps} for st in params["stages"]]
        steps *= len(params["stages"])
    params["train_steps"] = steps
    cuda = device.startswith("cuda")
    amp = card.amp and cuda
    acc = Accelerator(cpu=not cuda, mixed_precision="bf16" if amp else "no")
    torch.manual_seed(0)
    method = load_class(card)(params, device=str(acc.device))
    n_params = sum(p.numel() for m in method.networks() for p in m.parameters())
    bs, crop = int(params.get("batch_size", 4)), int(params.get("crop_size", 128))
    times: list[float] = []

    from deblurbench.inputs import INPUTS

    extras = {k: INPUTS[k].channels for k in [*card.inputs, *card.train_inputs] if k != "blurry"}

    def loader():
        for _ in range(steps):
            x = torch.rand(bs, 3, crop, crop, device=acc.device)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter())
            more = {k: torch.rand(bs, c, crop, crop, device=acc.device) * (
                4.0 if k == "blur_map" else 1.0) for k, c in extras.items()}
            if params.get("unpaired_split"):  # target-domain blurry images (BD-Diff)
                more["unpaired_blurry"] = x.flip(-1)
            yield {"blurry": x, "sharp": x.roll(1, -1), **more}

    with tempfile.TemporaryDirectory() as tmp:
        ctx = TrainContext(acc, method, steps, 0, 10**9, None, {}, Path(tmp) / "x.pt",
                           stages=parse_stages(params, steps))
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        method.train(loader(), params, ctx)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter())
    train_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    step_s = [b - a for a, b in zip(times[1:-1], times[2:])] or [times[-1] - times[0]]
    x = torch.rand(1, 3, *size, device=acc.device)
    given = {k: torch.rand(1, c, *size, device=acc.device) for k, c in extras.items()
             if k in card.inputs}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=amp):
        method.restore(x, **given)  # warm-up
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        method.restore(x, **given)
        if cuda:
            torch.cuda.synchronize()
        restore_s = time.perf_counter() - t0
    return {"method": name, "config": "small" if small else "paper", "device":
            torch.cuda.get_device_name() if cuda else "cpu", "bf16": amp, "params": n_params,
            "batch": bs, "crop": crop, "train_step_s": min(step_s),
            "train_images_per_s": bs / min(step_s), "train_peak_gpu_mb": train_peak,
            "restore_size": list(size), "restore_s": restore_s,
            "restore_mp_per_s": size[0] * size[1] / 1e6 / restore_s,
            "restore_peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("methods", nargs="*", help="default: every trainable learned method")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="small params (a CPU check)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=2, default=[1120, 1680])
    ap.add_argument("--out", default=os.environ.get("OUT", "bench") + "/gpu_smoke.json")
    args = ap.parse_args()
    from deblurbench.methods.registry import discover

    names = args.methods or [n for n, c in sorted(discover().items())
                             if c.trainable and c.kind in ("learned", "diffusion")]
    rows = []
    for n in names:
        try:
            rows.append(smoke(n, args.device, args.small, args.steps, tuple(args.size)))
        except Exception as exc:  # noqa: BLE001  (report every method, then fail)
            rows.append({"method": n, "error": f"{type(exc).__name__}: {exc}"})
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
