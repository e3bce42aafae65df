"""The venv is the locked environment: one OpenCV (the pinned headless one) and every package
at its locked version, so PBA, alignment and the metrics compute the same on every machine."""

from __future__ import annotations

import importlib.metadata as md
import re

from conftest import REPO


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_cv2_is_the_locked_headless_opencv_and_the_only_one():
    import cv2

    locked = _lock()["opencv-python-headless"]
    assert cv2.__version__ == ".".join(locked.split(".")[:3])
    assert md.version("opencv-python-headless") == locked
    names = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in md.distributions()}
    assert "opencv-python" not in names and "opencv-contrib-python" not in names


def test_every_locked_package_is_installed_at_its_locked_version():
    wrong = {}
    for name, version in _lock().items():
        try:
            got = md.version(name)
        except md.PackageNotFoundError:
            got = None
        if got != version:
            wrong[name] = (version, got)
    assert not wrong, f"the venv differs from requirements.lock (locked, installed): {wrong}"
    assert {"torch", "opencv-python-headless", "fiftyone", "diffusers"} <= set(_lock())
