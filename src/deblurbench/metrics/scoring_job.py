"""One scoring call's facts, resolved and checked once: the run, its images, the metrics and
their specs, the reference, the region settings and the device. The scorer's helpers read
this object instead of passing a dozen arguments along, and no module-level state holds any of
it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from deblurbench.datasets.manifest import get_card as get_dataset_card
from deblurbench.datasets.manifest import load_manifest
from deblurbench.devices import pick_device
from deblurbench.metrics import regions
from deblurbench.metrics.spec import PROTOCOLS, Metric, get_metric, spec_id
from deblurbench.runs import load_run, output_path

REFERENCES = ("original", "aligned")


def run_id(method: str, dataset: str, split: str, protocol: str,
           reference: str = "original") -> str:
    base = f"{method}/{dataset}/{split}/{protocol}"
    return base if reference == "original" else f"{base}/{reference}"


@dataclass
class ScoringJob:
    method: str  # the run's folder name (a method, method+variant, method~trained_on)
    dataset: str
    split: str
    protocol: str
    reference: str
    run_id: str
    fingerprint: str
    record: dict[str, Any]
    dcard: Any
    mcard: dict[str, Any]
    rows: pd.DataFrame
    chosen: list[Metric]
    specs: dict[str, dict]  # metric -> resolved spec
    sids: dict[str, str]  # metric -> spec id
    rcfg: Any  # regions.RegionConfig, or None when scores are not split by blur level
    region_note: str | None  # why regions were asked for but are not computed
    device: str
    method_row: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, method: str, dataset: str, split: str, metrics: list[str],
             protocol: str = "defocus", reference: str = "original", regions_on: bool = False,
             device: str = "cpu", pba: Any = None,
             method_row: dict | None = None) -> ScoringJob:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
        if reference not in REFERENCES:
            raise ValueError(f"unknown reference {reference!r} (known: "
                             f"{', '.join(REFERENCES)})")
        chosen = [get_metric(m, protocol) for m in dict.fromkeys(metrics)]
        run = load_run(method, dataset, split)
        record = run.to_dict()
        dcard = get_dataset_card(dataset)
        rows = manifest(dataset, split, reference)
        bits = int(rows["bit_depth"].max()) if len(rows) else dcard.bit_depth
        specs = {}
        for m in chosen:
            s = m.spec.resolved(bits, m.library_version())
            if reference == "aligned":
                s["reference"] = ("aligned ground truth (flow-warped), scored over its valid "
                                  "mask" if m.spec.regions else "aligned ground truth, whole "
                                  "image")
            specs[m.spec.name] = s
        sids = {name: spec_id(s) for name, s in specs.items()}
        region_note = regions.available() if regions_on else None
        rcfg = regions.config_from(pba) if regions_on and region_note is None else None
        return cls(method=method, dataset=dataset, split=split, protocol=protocol,
                   reference=reference,
                   run_id=run_id(run.board_name, dataset, split, protocol, reference),
                   fingerprint=fingerprint(method, record, rows, sids, reference,
                                           rcfg.source if rcfg else False,
                                           {m.spec.name: m.unavailable_reason() is None
                                            for m in chosen}),
                   record=record, dcard=dcard,
                   mcard=run.method_card | {"name": run.board_name, "source": run.source},
                   rows=rows, chosen=chosen, specs=specs, sids=sids, rcfg=rcfg,
                   region_note=region_note, device=pick_device(device),
                   method_row=method_row or {})

    @property
    def board_name(self) -> str:
        return self.mcard["name"]


def manifest(dataset: str, split: str, reference: str) -> pd.DataFrame:
    if reference == "original":
        return load_manifest(dataset, split)
    from deblurbench.datasets.align import variant_name

    try:
        return load_manifest(dataset, split, variant=variant_name(dataset))
    except ValueError as exc:
        raise ValueError(f"{dataset}: no aligned ground truth to score against ({exc})") from None


def _digest(path: Any) -> str | None:
    if not isinstance(path, str | Path) or not Path(path).is_file():
        return None
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fingerprint(method: str, record, rows, sids, reference, regions_on,
                available: dict[str, bool]) -> str:
    """Everything a run's scores follow from, by content: the bytes of every output and
    input file (restored, blurry, reference, valid mask), the metric specs and which of them
    can run here, the reference mode and the region settings. Not the run's timings: a run
    redone with the same bytes keeps its scores (``score`` then only refreshes the record), and
    a crashed scoring resumes from rows staged under the same fingerprint."""
    files = {r.image_id: [_digest(output_path(method, r.dataset, r.split, r.image_id)),
                          _digest(r.blurry), _digest(getattr(r, "sharp", None)),
                          _digest(getattr(r, "mask", None))]
             for r in rows.itertuples()} if record.get("status") == "ok" else {}
    blob = json.dumps({"status": record.get("status"), "files": files,
                       "specs": sorted(sids.values()), "available": available,
                       "reference": reference, "regions": regions_on}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
