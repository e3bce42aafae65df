"""Which device and which configuration a run uses: one rule for running, training and scoring.

``auto`` is a GPU when there is one, else the CPU; a named CUDA device that is not there is an
error that says so (never a silent CPU run). A method's ``small`` params run on a CPU and its
paper params on a GPU unless asked otherwise, and a card that needs a GPU for its paper
configuration refuses to run it on a CPU.
"""

from __future__ import annotations


def pick_device(requested: str = "auto") -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> the device to use, checked."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {requested}: no CUDA device is available here")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ValueError(f"--device {requested}: expected auto, cpu, cuda or cuda:N")
    return requested


def pick_config(name: str, needs_gpu: bool, on_gpu: bool, small: bool | None) -> tuple[bool, str]:
    """(use the small params?, ``small`` | ``paper``): ``small=None`` follows the device."""
    use_small = (not on_gpu) if small is None else small
    if needs_gpu and not on_gpu and not use_small:
        raise ValueError(f"method {name!r} needs a GPU for its paper configuration")
    return use_small, "small" if use_small else "paper"
