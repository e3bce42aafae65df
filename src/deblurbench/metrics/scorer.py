"""Scores a finished run against its data set and writes it to the results database.

All of a run's rows are written in one transaction that is opened before the first image is
scored: killing the scorer at any point leaves the database exactly as it was, and rerunning
replaces the run's rows rather than adding to them. Images are decoded once per pair and
shared by every metric.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

import deblurbench.metrics.fidelity  # noqa: F401  (registers the defocus protocol)
from deblurbench import provenance
from deblurbench.datasets.manifest import get_card as get_dataset_card
from deblurbench.datasets.manifest import load_manifest
from deblurbench.io import ImageError, read_image
from deblurbench.methods.registry import get_card as get_method_card
from deblurbench.methods.runner import load_run_record, output_path, summary_latency
from deblurbench.metrics.spec import METRICS, spec_id
from deblurbench.store import db

PROTOCOLS = {"defocus"}


class ScoreError(ValueError):
    """An output that cannot be scored (missing, wrong size, NaN); names the image."""


def run_id(method: str, dataset: str, split: str, protocol: str) -> str:
    return f"{method}/{dataset}/{split}/{protocol}"


def score_run(method: str, dataset: str, split: str, db_path: str | Path,
              metrics: list[str], protocol: str = "defocus",
              metrics_dir: str | Path | None = None) -> dict:
    """Score one (method, dataset, split) run; returns {status, n_images, means, error}."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(sorted(PROTOCOLS))})")
    chosen = [METRICS.get(m) for m in metrics]
    record = load_run_record(method, dataset, split)
    rows = load_manifest(dataset, split)
    dcard = get_dataset_card(dataset)
    mcard = get_method_card(method)
    rid = run_id(method, dataset, split, protocol)
    bits = int(rows["bit_depth"].max()) if len(rows) else dcard.bit_depth
    specs = {m.spec.name: m.spec.resolved(bits, m.library_version()) for m in chosen}
    sids = {name: spec_id(s) for name, s in specs.items()}
    con = db.connect(db_path)
    status, error = record["status"], record.get("error")
    values: dict[str, list[float]] = {m.spec.name: [] for m in chosen}
    try:
        with db.transaction(con):
            _write_context(con, dcard, rows, mcard, specs, sids)
            db.replace_run(con, rid)
            if status == "ok":
                try:
                    _score_images(con, rid, method, dataset, split, rows, chosen, sids, values)
                except ScoreError as exc:
                    status, error = "failed", str(exc)
                    con.execute("DELETE FROM scores WHERE run_id = ?", [rid])
                    values = {k: [] for k in values}
            db.upsert(con, "runs", {
                "run_id": rid, "method": method, "method_version": record["method_version"],
                "dataset": dataset, "dataset_version": record["dataset_version"], "split": split,
                "protocol": protocol, "status": status, "error": error,
                "started": record["started"], "finished": record.get("finished"),
                "scored": provenance.now(), "n_images": len(values[chosen[0].spec.name]),
                "latency_ms_per_mp": summary_latency(record), "device": record["device"],
                "git_rev": record["git_rev"], "config": record["config"],
                "versions": record["versions"] | provenance.versions("scikit-image", "duckdb"),
                "params": record["params"]}, ["run_id"])
    finally:
        con.close()
    means = {k: float(np.mean(v)) for k, v in values.items() if v}
    result = {"run_id": rid, "status": status, "error": error,
              "n_images": len(values[chosen[0].spec.name]), "means": means}
    if metrics_dir is not None:
        out = Path(metrics_dir) / dataset / split / f"{method}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"status": status, "n_images": result["n_images"], **means},
                                  indent=1))
    return result


def _write_context(con, dcard, rows, mcard, specs, sids) -> None:
    db.upsert(con, "datasets", {"dataset": dcard.name, "version": dcard.version,
                                "title": dcard.title, "license": dcard.license,
                                "bit_depth": dcard.bit_depth, "card": asdict(dcard)}, ["dataset"])
    for r in rows.itertuples():
        db.upsert(con, "images", {"dataset": r.dataset, "split": r.split, "image_id": r.image_id,
                                  "blurry": r.blurry, "sharp": r.sharp, "height": r.height,
                                  "width": r.width, "bit_depth": r.bit_depth},
                  ["dataset", "split", "image_id"])
    card = {k: (str(v) if k == "folder" else v) for k, v in asdict(mcard).items()}
    db.upsert(con, "methods", {"method": mcard.name, "version": mcard.version, "source": "measured",
                               "kind": mcard.kind, "title": mcard.title, "paper": mcard.paper,
                               "label": mcard.label, "card": card}, ["method"])
    for name, spec in specs.items():
        db.upsert(con, "metric_specs", {"spec_id": sids[name], "metric": name,
                                        "version": spec["version"], "kind": spec["kind"],
                                        "direction": spec["direction"], "spec": spec}, ["spec_id"])


def _score_images(con, rid, method, dataset, split, rows, chosen, sids, values) -> None:
    for r in tqdm(rows.itertuples(), total=len(rows), desc=f"score {method} on {dataset}/{split}",
                  unit="img", mininterval=0):
        restored = _read_output(method, dataset, split, r.image_id, r.height, r.width)
        sharp = read_image(r.sharp) if r.sharp else None
        batch = []
        for m in chosen:
            if m.spec.kind == "FR" and sharp is None:
                continue
            v = m.fn(restored, sharp)
            values[m.spec.name].append(v)
            batch.append((rid, r.image_id, m.spec.name, "all", v, sids[m.spec.name]))
        db.insert_scores(con, batch)


def _read_output(method, dataset, split, image_id, height, width) -> np.ndarray:
    path = output_path(method, dataset, split, image_id)
    if not path.exists():
        raise ScoreError(f"{path}: missing output for image {image_id!r}")
    try:
        img = read_image(path)
    except ImageError as exc:
        raise ScoreError(f"image {image_id!r}: {exc}") from None
    if img.shape[:2] != (height, width):
        raise ScoreError(f"{path}: output of image {image_id!r} is {img.shape[1]}x{img.shape[0]},"
                         f" expected {width}x{height}")
    return img
