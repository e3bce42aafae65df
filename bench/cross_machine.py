"""Where do metric values differ between machines? Restores the embedded test split with one
method in this process, quantises to 16 bits as `methods run` does, and prints the output
digest and the mean PSNR. Run it under settings that make the same machine behave like another
one (the CPU kernels torch, MKL and OpenBLAS pick at run time, and the thread count); equal
digests mean equal outputs, and the PSNR difference is the cross-machine difference.

    python bench/cross_machine.py sv-deconv           # baseline
    ATEN_CPU_CAPABILITY=avx2 python bench/cross_machine.py sv-deconv
    MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/cross_machine.py sv-deconv
    OMP_NUM_THREADS=1 python bench/cross_machine.py sv-deconv

Nothing is written; the data set must be prepared (`make run` or `dvc repro prepare@...`).
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import torch

from deblurbench.datasets.manifest import load_manifest
from deblurbench.io import read_image
from deblurbench.methods.registry import get_card, load_class
from deblurbench.methods.runner import load_inputs, make_restorer, resolve_params
from deblurbench.metrics.spec import get_metric


def main(name: str, dataset: str = "synthetic-defocus", split: str = "test") -> dict:
    card = get_card(name)
    params = resolve_params(card, True, None, None)
    method = load_class(card)(params, device="cpu")
    if card.trainable:  # its checkpoint from `make run`
        from deblurbench.methods.train import load_trained

        method.load_state_dict(load_trained(card, dataset, "small", params, None)[0])
    psnr = get_metric("psnr").computer("cpu").fn
    niqe = get_metric("niqe").computer("cpu").fn
    digest, values, nr = hashlib.sha256(), [], []
    for row in load_manifest(dataset, split).itertuples():
        x, extras = load_inputs(row, card, "cpu")
        restore = make_restorer(method, card, row.image_id, "fp32", "cpu", None, None, 4)
        torch.manual_seed(0)
        with torch.no_grad():
            y = restore(x, extras)[0].permute(1, 2, 0).numpy()
        q = np.round(np.clip(y, 0, 1) * 65535).astype(np.uint16)  # as write_png(bits=16)
        digest.update(q.tobytes())
        out = q.astype(np.float32) / 65535
        values.append(psnr(out, read_image(row.sharp)))
        nr.append(niqe(out, None))
    return {"method": name, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "outputs_sha256": digest.hexdigest()[:16],
            "psnr_mean": float(np.mean(values)), "niqe_mean": float(np.mean(nr))}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
