"""Test kit for the methods tests: a tiny prepared project and throw-away plugins."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from conftest import REPO, TINY_PARAMS, make_project

PLUGINS = REPO / "tests" / "plugins"


def build_project(root: Path) -> Path:
    """A tiny project (2 train + 1 val + 2 test pairs, 64 px) rendered and prepared in-process."""
    from deblurbench.config import load_params
    from deblurbench.datasets.manifest import prepare
    from deblurbench.datasets.synthetic import make_synthetic_defocus

    make_project(root, TINY_PARAMS)
    make_synthetic_defocus(root / "datasets/synthetic-defocus/raw",
                           load_params(root / "params.yaml").synth)
    import os

    old = os.environ.get("DEBLURBENCH_ROOT")
    os.environ["DEBLURBENCH_ROOT"] = str(root)
    try:
        prepare("synthetic-defocus")
    finally:
        if old is None:
            del os.environ["DEBLURBENCH_ROOT"]
        else:
            os.environ["DEBLURBENCH_ROOT"] = old
    return root


def write_plugin(folder: Path, name: str, code: str, cls: str = "M", **card) -> Path:
    """A plugin ``folder/name`` whose module ``plugin.py`` holds ``code``."""
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "method.yaml").write_text(yaml.safe_dump(
        {"name": name, "version": "1.0", "title": name, "entry": f"plugin:{cls}",
         "kind": "learned"} | card))
    (d / "plugin.py").write_text("import time\nimport numpy as np\nimport torch\n"
                                 "from deblurbench.methods.base import Method\n\n" + code)
    return d


def copy_dummy(folder: Path, name: str = "dummy", **param_changes) -> Path:
    d = folder / name
    shutil.copytree(PLUGINS / "dummy", d, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    card = yaml.safe_load((d / "method.yaml").read_text())
    card["name"] = name
    card["params"].update(param_changes)
    (d / "method.yaml").write_text(yaml.safe_dump(card))
    return d


def two_ranks(project: Path, *args: str, env: dict | None = None) -> None:
    """`deblurbench ARGS` as two ranks of one job (torch.distributed on CPU, gloo): what
    `accelerate launch --multi_gpu --num_processes 2` starts on two GPUs."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full = os.environ | {"DEBLURBENCH_ROOT": str(project), "OMP_NUM_THREADS": "1"} | (env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "deblurbench.cli",
         *args], cwd=project, env=full, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def train_briefly(method, loss_fn, steps: int, lr: float = 1e-3) -> None:
    """Adam on ``method.trainable()`` for ``steps`` steps of ``loss_fn()`` (a scalar), the
    timesteps and noise drawn from three fixed seeds in turn (the SD methods' short runs)."""
    import torch

    params = [p for mod in method.trainable().values() for p in mod.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    for i in range(steps):
        for mod in method.trainable().values():
            mod.train()
        torch.manual_seed(123 + i % 3)
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
