"""A metric's definition is part of its number: every field here travels with each score.

Metrics are registered per protocol (``defocus``, ``matlab``) or protocol-independent; a lookup
by ``(name, protocol)`` takes the protocol's own definition first. A metric declares its
capabilities as data (``kind``, ``regions``, ``weights``), never by a special case on its name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from deblurbench.registry import Registry

#: f(restored, reference) -> value, both float32 HxWx3 RGB [0, 1] (reference None for NR).
MetricFn = Callable[[np.ndarray, np.ndarray | None], float]
#: f(restored, reference, masks) -> {region: value}; masks are HxW bool, one per region.
RegionFn = Callable[[np.ndarray, np.ndarray | None, dict[str, np.ndarray]], dict[str, float]]

PROTOCOLS = ("defocus", "matlab")


class MetricFailure(ValueError):
    """A metric that cannot score this image (flat image for NIQE, too small for MS-SSIM)."""


class MetricUnavailable(RuntimeError):
    """A metric whose weight files are missing; the message says what the user must provide."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    version: str
    kind: Literal["FR", "NR", "dataset"]
    direction: Literal["higher", "lower"]
    library: str
    colour_space: str
    window: str
    data_range: float
    crop: int
    definition: str
    identical_value: float | None = None
    value_range: tuple[float, float] = (float("-inf"), float("inf"))
    weights: tuple[str, ...] = field(default_factory=tuple)
    family: Literal["fidelity", "perceptual", "no-reference", "blur", "distribution"] = "fidelity"
    protocol: str = "any"
    regions: bool = False  # has a spatial map or can be computed on masked pixels
    tiling: str = "none"  # how large images are cut for the metric (part of the definition)
    implementation: str = ""  # how the engine computes it, and what it is checked against

    def resolved(self, input_bits: int, library_version: str) -> dict:
        """The full spec of one score: the definition plus what it was computed from."""
        d = asdict(self)
        d["value_range"] = [str(v) for v in self.value_range]
        d["weights"] = list(self.weights)
        return d | {"input_bits": input_bits, "library_version": library_version}


def spec_id(resolved: dict) -> str:
    """Stable short hash of a resolved spec: scores are ranked together only when it matches."""
    blob = json.dumps(resolved, sort_keys=True).encode()
    return resolved["name"] + "-" + hashlib.sha256(blob).hexdigest()[:12]


@dataclass
class Computer:
    """A metric made ready for one run (a learned model loaded once, on one device)."""

    fn: MetricFn
    region_fn: RegionFn | None = None
    dataset_fn: Callable[[list[Any], list[Any]], float] | None = None
    #: f([restored], [reference]) -> [value]: same-size images in one pass, each value equal to
    #: ``fn``'s on that image (to float rounding); the engine groups images for it.
    batch_fn: Callable[[list[np.ndarray], list[np.ndarray | None]], list[float]] | None = None


@dataclass(frozen=True)
class Metric:
    spec: MetricSpec
    fn: MetricFn | None
    library_package: str  # distribution whose version is recorded
    region_fn: RegionFn | None = None
    build: Callable[[str], Computer] | None = None  # device -> Computer (learned metrics)
    available: Callable[[], str | None] | None = None  # None when usable, else the reason

    def library_version(self) -> str:
        from importlib import metadata

        try:
            return metadata.version(self.library_package)
        except metadata.PackageNotFoundError:
            return "absent"

    def unavailable_reason(self) -> str | None:
        return self.available() if self.available is not None else None

    def computer(self, device: str = "cpu") -> Computer:
        if self.build is not None:
            return self.build(device)
        assert self.fn is not None
        return Computer(self.fn, self.region_fn)


METRICS: Registry[Metric] = Registry("metric")


def key(name: str, protocol: str | None = None) -> str:
    return f"{protocol}:{name}" if protocol and protocol != "any" else name


def register(metric: Metric) -> Metric:
    METRICS.register(key(metric.spec.name, metric.spec.protocol), metric)
    return metric


def get_metric(name: str, protocol: str = "defocus") -> Metric:
    """The protocol's own definition of ``name``, else the protocol-independent one."""
    _load_all()
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    if key(name, protocol) in METRICS:
        return METRICS.get(key(name, protocol))
    if name in METRICS:
        return METRICS.get(name)
    METRICS.get(name)  # raises with close matches
    raise AssertionError  # pragma: no cover


def metric_names(protocol: str = "defocus") -> list[str]:
    _load_all()
    out = set()
    for k in METRICS.names():
        p, _, n = k.rpartition(":")
        if not p or p == protocol:
            out.add(n)
    return sorted(out)


def _load_all() -> None:
    import deblurbench.metrics.fid
    import deblurbench.metrics.fidelity
    import deblurbench.metrics.learned
    import deblurbench.metrics.ms_ssim
    import deblurbench.metrics.pba_score
    import deblurbench.metrics.pyiqa_models  # noqa: F401
