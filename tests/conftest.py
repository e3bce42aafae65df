"""Shared test kit: a tiny DeblurBench project in a temp folder, built by the real engine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tiny_params() -> dict:
    """The repo's params.yaml (every key DVC stages name) with a tiny embedded data set."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = ["synthetic-defocus"]
    params["synth"] |= {"seed": 7, "photos": ["astronaut"], "extra_photos": [],
                        "scenes_per_photo": 2, "dead_leaves": 0, "val_photos": ["chelsea"],
                        "val_scenes_per_photo": 1, "val_dead_leaves": 0,
                        "test_photos": ["coffee"], "test_scenes_per_photo": 2, "max_side": 64,
                        "scene_mean_radius_px": [0.25, 1.0]}  # default blur scaled to 64 px
    params["run"] |= {"methods": ["identity", "unsharp-mask"], "splits": ["test"], "cross": []}
    # tests that train a method name it themselves
    params["train"] |= {"methods": [], "extra": []}
    # per-blur-level rows off: tests that want them pass --regions
    params["score"] |= {"metrics": ["psnr", "ssim", "mae"], "regions": False}
    return params


TINY_PARAMS = tiny_params()


def make_project(root: Path, params: dict | None = None) -> Path:
    """A project folder with the repo's cards and methods and tiny synth params."""
    (root / "datasets").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "datasets" / "synthetic-defocus.yaml", root / "datasets")
    shutil.copytree(REPO / "methods", root / "methods", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "params.yaml").write_text(yaml.safe_dump(params or TINY_PARAMS))
    return root


def cli(*args: str, cwd: Path, env: dict | None = None, check: bool = True,
        ) -> subprocess.CompletedProcess:
    """Run the real `deblurbench` console script in ``cwd``."""
    full_env = os.environ | {"DEBLURBENCH_ROOT": str(cwd)} | (env or {})
    proc = subprocess.run([str(BIN / "deblurbench"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"deblurbench {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def kill_scoring_after(project: Path, done: int, total: int, *args: str) -> None:
    """Start `deblurbench score ARGS` and SIGKILL it once its progress bar shows ``done`` of
    ``total`` images (and before it finishes): a crash in the middle of a scoring run."""
    env = os.environ | {"DEBLURBENCH_ROOT": str(project)}
    proc = subprocess.Popen([str(BIN / "deblurbench"), "score", *args], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mark, buf, deadline = f"| {done}/{total}".encode(), b"", time.time() + 120
    while mark not in buf and time.time() < deadline:
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "scoring ended before it could be killed"
    assert mark in buf and f"{total}/{total}".encode() not in buf


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: a second torch thread only adds contention (measured 1.2 s -> 10 s for the
    NAFNet training test when other jobs share the 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty tiny project; DEBLURBENCH_ROOT and the cwd point at it."""
    root = make_project(tmp_path / "proj")
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(root))
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def prepared(project) -> Path:
    """The tiny project with synthetic-defocus rendered and prepared (through the CLI)."""
    cli("synth", "defocus", "--out", "synthetic-defocus", cwd=project)
    cli("datasets", "prepare", "synthetic-defocus", cwd=project)
    return project


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty, offline HF hub cache and torch hub; huggingface_hub reads its constants at
    import, so they are patched too."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return cache
