"""The final transaction of a scoring: the only writes to the public tables.

Everything a run shows on the board (its scores, failures, per-metric status, bootstrap means,
paired comparisons with the other runs on the same images, and the data set, images, method
and specs they refer to) is replaced at once from the staged rows, so a reader never sees half
a run and a crash leaves the previous state.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from deblurbench import provenance
from deblurbench.io import ImageError
from deblurbench.metrics import aggregate
from deblurbench.metrics.scoring_job import ScoringJob
from deblurbench.runs import latency_ms_per_mp, output_path
from deblurbench.store import db, results

DATASET_IMAGE = "__split__"  # image_id of a data-set-level score (FID)


def commit(con, job: ScoringJob, state: dict, status: str, error: str | None) -> dict:
    """Write the run from its staged rows in one transaction; returns the scorer's result."""
    rid, fp, record, rows = job.run_id, job.fingerprint, job.record, job.rows
    dataset, split, method, sids = job.dataset, job.split, job.method, job.sids
    protocol, reference = job.protocol, job.reference
    region_source = job.rcfg.source if job.rcfg else None
    staged = results.staged(con, rid, fp)
    if status != "ok":
        staged = staged.iloc[0:0]
    ok = staged[staged["reason"].isna()]
    failed = staged[staged["reason"].notna()]
    cost = record.get("cost") or {}
    n_images = int(ok.loc[ok["region"] == "all", "image_id"].nunique()) if status == "ok" else 0
    # file headers are read before the transaction, which then holds only database writes
    output_bits = _output_bits(method, dataset, split, rows) if status == "ok" else None
    with db.transaction(con):
        _write_context(con, job)
        db.replace_run(con, rid)
        results.insert_scores(con, rid, ok)
        for r in failed[failed["region"] == "all"].itertuples():
            results.insert_failure(con, rid, r.image_id, r.metric, r.reason)
        means = {}
        for name, st in state.items():
            mine = ok[(ok["metric"] == name) & (ok["region"] == "all")]
            n_fail = int((failed["metric"] == name).sum())
            reason = st["reason"] or st.get("region_note")
            the_status = st["status"] if status == "ok" else "run failed"
            results.insert_metric_status(con, rid, name, sids[name], the_status, reason,
                                         len(mine), n_fail)
            if len(mine):
                means[name] = float(mine["value"].mean())
        for (name, region), g in ok.groupby(["metric", "region"]):
            mean, lo, hi = aggregate.bootstrap_ci(g["value"].to_numpy(),
                                                  aggregate.seed_of(rid, name, region))
            results.insert_aggregate(con, rid, name, region, sids[name], len(g), mean, lo, hi,
                                     aggregate.N_BOOT, aggregate.LEVEL)
        db.upsert(con, "runs", {
            "run_id": rid, "method": job.mcard["name"], "method_version": record["method_version"],
            "dataset": dataset, "dataset_version": record["dataset_version"], "split": split,
            "protocol": protocol, "status": status, "error": error,
            "started": record["started"], "finished": record.get("finished"),
            "scored": provenance.now(), "n_images": n_images,
            "latency_ms_per_mp": cost.get("latency_ms_per_mp",
                                           latency_ms_per_mp(record["images"])),
            "device": record["device"], "git_rev": record["git_rev"], "config": record["config"],
            "versions": record["versions"] | provenance.versions(
                "scikit-image", "duckdb", "pyiqa", "lpips", "torch", "opencv-python-headless")
            | {"scoring_git_rev": provenance.git_rev(), "scoring_device": job.device},
            "params": record["params"], "reference": reference, "region_source": region_source,
            "n_failed": int(failed["image_id"].nunique()), "n_params": cost.get("params"),
            "flops_per_mp": cost.get("flops_per_mp"), "peak_rss_mb": cost.get("peak_rss_mb"),
            "peak_gpu_mb": cost.get("peak_gpu_mb"),
            "output_bits": output_bits, "base_method": record["method"],
            "variant": record.get("variant"), "trained_on": record.get("trained_on"),
            "checkpoint": record.get("checkpoint"), "weights": record.get("weights"),
            "fingerprint": fp if status == "ok" else None},
            ["run_id"])
        if status == "ok":
            _paired(con, rid, dataset, split, protocol, reference)
        results.clear_staging(con, rid)
    unavailable = {k: v["reason"] for k, v in state.items() if v["status"] != "ok"}
    return {"run_id": rid, "status": status, "error": error, "n_images": n_images,
            "means": means if status == "ok" else {}, "unavailable": unavailable,
            "n_failed": int(failed["image_id"].nunique())}


def _output_bits(method, dataset, split, rows) -> int | None:
    """The lowest bit depth among the run's output files, read from their headers."""
    from deblurbench.io import probe

    bits = []
    for image_id in rows["image_id"]:
        try:
            bits.append(probe(output_path(method, dataset, split, image_id)).bit_depth)
        except ImageError:
            continue  # scored a moment ago; a file gone since says nothing about the run
    return min(bits) if bits else None


def _paired(con, rid, dataset, split, protocol, reference) -> None:
    """Compare this run with every other ok run on the same images (same spec only)."""
    for other in results.comparable_runs(con, dataset, split, protocol, reference, rid):
        for metric, region, sid, va, vb in results.paired_values(con, rid, other, DATASET_IMAGE):
            res = aggregate.paired(np.array(va), np.array(vb),
                                   aggregate.seed_of(rid, other, metric, region))
            results.insert_paired(con, rid, other, metric, region, sid, res)


def _write_context(con, job: ScoringJob) -> None:
    dcard, rows, mcard, specs, sids = job.dcard, job.rows, job.mcard, job.specs, job.sids
    db.upsert(con, "datasets", {"dataset": dcard.name, "version": dcard.version,
                                "title": dcard.title, "license": dcard.license,
                                "bit_depth": dcard.bit_depth, "card": asdict(dcard)}, ["dataset"])
    for r in rows.itertuples():
        db.upsert(con, "images", {"dataset": r.dataset, "split": r.split, "image_id": r.image_id,
                                  "blurry": r.blurry, "sharp": getattr(r, "sharp_original", None)
                                  or r.sharp, "height": r.height, "width": r.width,
                                  "bit_depth": r.bit_depth}, ["dataset", "split", "image_id"])
    _write_subsets(con, dcard, rows)
    db.upsert(con, "methods", {"method": mcard["name"], "version": mcard.get("version"),
                               "source": mcard.get("source", "measured"),
                               "kind": mcard.get("kind"), "title": mcard.get("title"),
                               "paper": mcard.get("paper"), "label": mcard.get("label"),
                               "card": mcard} | job.method_row, ["method"])
    for name, spec in specs.items():
        db.upsert(con, "metric_specs", {"spec_id": sids[name], "metric": name,
                                        "version": spec["version"], "kind": spec["kind"],
                                        "direction": spec["direction"], "spec": spec}, ["spec_id"])


def _write_subsets(con, dcard, rows) -> None:
    """Subsets (DPDD indoor/outdoor): a manifest ``subset`` column, or card ``subsets`` mapping
    a subset name to a file of image ids (one per line) relative to ``datasets/<name>/``."""
    from deblurbench.paths import dataset_dir

    pairs = set()
    if "subset" in rows.columns:
        pairs |= {(r.split, r.image_id, r.subset) for r in rows.itertuples()
                  if isinstance(r.subset, str)}
    ids = set(rows["image_id"])
    for subset, rel in dcard.subsets.items():
        path = dataset_dir(dcard.name) / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path}: subset list {subset!r} of card {dcard.name} "
                                    "not found")
        listed = {line.strip() for line in path.read_text().splitlines() if line.strip()}
        split = rows["split"].iloc[0] if len(rows) else ""
        pairs |= {(split, i, subset) for i in listed & ids}
    for split, image_id, subset in sorted(pairs):
        db.upsert(con, "image_subsets", {"dataset": dcard.name, "split": split,
                                         "image_id": image_id, "subset": subset},
                  ["dataset", "split", "image_id", "subset"])
