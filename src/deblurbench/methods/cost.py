"""What a method costs: parameters, FLOPs and latency per megapixel, peak memory.

The run record carries them as ``cost = {params, flops_per_mp, latency_ms_per_mp, peak_rss_mb,
peak_gpu_mb}``:

- ``params``: distinct parameters of the torch modules the method holds (0 for classical ones).
- ``flops_per_mp``: ``torch.utils.flop_counter.FlopCounterMode`` over one restore of the
  first image, divided by its megapixels. Torch counts matrix products, convolutions and
  attention (a multiply-add is 2 FLOPs); FFTs and element-wise work are not counted, so an
  FFT-based deconvolution shows only its convolutions. See ``COST_SPEC``.
- ``latency_ms_per_mp``: median over images of wall time per megapixel (GPU synchronised),
  including tiling and padding but not image decoding or writing.
- ``peak_rss_mb``: the process's peak resident memory while restoring (Linux ``VmHWM``, reset
  at the start of the run; it includes the interpreter and torch, about 0.4-0.6 GB).
- ``peak_gpu_mb``: ``torch.cuda.max_memory_allocated`` over the run; ``None`` on CPU.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from pathlib import Path

import torch

from deblurbench.runs import latency_ms_per_mp

COST_SPEC = {
    "version": "2",
    "flops": "torch.utils.flop_counter.FlopCounterMode over one restore of the first image, or "
             "over the method's flops_probe (one network pass) times its count; cost.flops_how "
             "says which (mm/conv/attention; FFT and element-wise ops not counted), per "
             "megapixel",
    "params": "distinct parameters of the method's networks (dicts, pipelines included); "
              "trainable_params: those with requires_grad",
    "latency": "median over images of restore wall time (ms) per megapixel, GPU synchronised",
    "peak_rss": "Linux VmHWM of the process while restoring, reset at run start (MB)",
    "peak_gpu": "torch.cuda.max_memory_allocated during the run (MB); null on CPU",
}

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def count_params(modules: list[torch.nn.Module], trainable_only: bool = False) -> int:
    """Distinct parameters over ``modules`` (a parameter shared by two modules counts once)."""
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            if p.requires_grad or not trainable_only:
                seen[id(p)] = p.numel()
    return int(sum(seen.values()))


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs torch's flop counter sees while ``fn()`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _status_kb(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak CPU RSS and GPU allocation between ``start()`` and ``stop()``."""

    def __init__(self, device: str):
        self.device = device
        self.peak_rss_mb: float | None = None
        self.peak_gpu_mb: float | None = None
        self._reset_ok = False

    def start(self) -> None:
        try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
            _CLEAR_REFS.write_text("5")
            self._reset_ok = True
        except OSError:
            self._reset_ok = False
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(torch.device(self.device))

    def stop(self) -> None:
        hwm = _status_kb("VmHWM") if self._reset_ok else None
        if hwm is None:  # lifetime peak of the process: an upper bound
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_rss_mb = round(hwm / 1024, 1)
        if self.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated(torch.device(self.device))
            self.peak_gpu_mb = round(peak / 2**20, 1)


def cost_record(params: int, flops: int | None, megapixels: float | None,
                images: dict[str, dict], memory: PeakMemory) -> dict:
    per_mp = None if flops is None or not megapixels else float(flops) / megapixels
    return {"params": params, "flops_per_mp": per_mp,
            "latency_ms_per_mp": latency_ms_per_mp(images),
            "peak_rss_mb": memory.peak_rss_mb, "peak_gpu_mb": memory.peak_gpu_mb}
