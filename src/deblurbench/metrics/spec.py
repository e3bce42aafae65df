"""A metric's definition is part of its number: every field here travels with each score."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from deblurbench.registry import Registry

#: f(restored, reference) -> value, both float32 HxWx3 RGB [0, 1] (reference None for NR).
MetricFn = Callable[[np.ndarray, np.ndarray | None], float]


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


@dataclass(frozen=True)
class Metric:
    spec: MetricSpec
    fn: MetricFn
    library_package: str  # distribution whose version is recorded

    def library_version(self) -> str:
        from importlib import metadata

        try:
            return metadata.version(self.library_package)
        except metadata.PackageNotFoundError:
            return "absent"


METRICS: Registry[Metric] = Registry("metric")
