"""The scoring engine: scores a finished run against its data set into the results database.

- Images are decoded once per pair (the next pair is decoded in a background thread while the
  current one is scored) and shared by every metric; learned models load once per run.
- Resumable without ever exposing a partial run: each image's rows are committed to
  ``score_staging`` (keyed by a fingerprint of the run's inputs and metric specs) as soon as it is
  scored, so a killed scoring continues where it stopped; the public tables (``scores``,
  ``runs``, aggregates) change only in the final transaction, which replaces the run's rows.
- A metric without its weights is recorded in ``metric_status`` as unavailable with the reason;
  a metric that fails on one image (NIQE on a flat image) records that image in
  ``score_failures`` and the run goes on. A method output that is missing, of the wrong size or
  non-finite fails the whole run with the image id, and nothing else is lost.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from deblurbench import provenance
from deblurbench.datasets.manifest import get_card as get_dataset_card
from deblurbench.datasets.manifest import load_manifest
from deblurbench.devices import pick_device
from deblurbench.io import ImageError, read_image
from deblurbench.metrics import aggregate, regions
from deblurbench.metrics.spec import (
    PROTOCOLS,
    Computer,
    Metric,
    MetricFailure,
    MetricUnavailable,
    get_metric,
    spec_id,
)
from deblurbench.runs import latency_ms_per_mp, load_run, output_path
from deblurbench.store import db, results

REFERENCES = ("original", "aligned")
DATASET_IMAGE = "__split__"  # image_id of a data-set-level score (FID)
MARK = "__image__"  # staging marker: this image is completely scored


class ScoreError(ValueError):
    """An output that cannot be scored (missing, wrong size, NaN); names the image."""


#: ``batch_size: auto``: images per forward pass on each kind of device. On 2 CPU cores a batch
#: is no faster (bench/bench_batching.py: LPIPS 1.02x, DISTS 0.74x), so CPUs take one at a time.
AUTO_BATCH = {"cuda": 4, "cpu": 1}


@dataclass(frozen=True)
class Batching:
    """How many same-size images the engine scores together for metrics with a ``batch_fn``.

    ``size`` is a count or ``"auto"`` (``AUTO_BATCH`` for the scoring device). A group never
    holds more than ``max_pixels`` pixels, so 4096x2160 images come one at a time and memory
    stays flat; values do not depend on either (tested), so neither is in the spec.
    """

    size: int | Literal["auto"] = "auto"
    max_pixels: int = 8_000_000

    def __post_init__(self) -> None:
        if (self.size != "auto" and (isinstance(self.size, bool) or not isinstance(self.size, int)
                                     or self.size < 1)) or self.max_pixels < 1:
            raise ValueError(f"batch size must be 'auto' or positive and the pixel budget "
                             f"positive, got {self}")

    def on(self, device: str) -> Batching:
        """The batching with ``auto`` resolved for ``device``."""
        if self.size != "auto":
            return self
        return Batching(AUTO_BATCH.get(device.split(":")[0], 1), self.max_pixels)


class _ProtocolView:
    """``METRICS.get(name)``: the default protocol's metric (kept for existing callers)."""

    def get(self, name: str) -> Metric:
        return get_metric(name, "defocus")


METRICS = _ProtocolView()


def run_id(method: str, dataset: str, split: str, protocol: str,
           reference: str = "original") -> str:
    base = f"{method}/{dataset}/{split}/{protocol}"
    return base if reference == "original" else f"{base}/{reference}"


def score_run(method: str, dataset: str, split: str, db_path: str | Path,
              metrics: list[str], protocol: str = "defocus",
              metrics_dir: str | Path | None = None, reference: str = "original",
              regions_on: bool = False, device: str = "cpu",
              pba: dict | None = None, method_row: dict | None = None,
              batching: Batching | None = None) -> dict:
    """Score one (method, dataset, split) run; returns {run_id, status, error, n_images, means,
    unavailable}. ``pba`` is params.yaml's pba section (the regions' PBA settings).
    ``method_row`` overrides columns of the run's ``methods`` row (a submission's source and
    card), written in the same transaction as the scores. ``batching``: how many same-size
    images metrics with a batch path score together (default ``Batching()``: auto)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r} (known: {', '.join(REFERENCES)})")
    chosen = [get_metric(m, protocol) for m in dict.fromkeys(metrics)]
    run = load_run(method, dataset, split)  # ``method``: the run's folder name
    record = run.to_dict()
    dcard = get_dataset_card(dataset)
    mcard = run.method_card | {"name": run.board_name, "source": run.source}
    rows = _manifest(dataset, split, reference)
    rid = run_id(run.board_name, dataset, split, protocol, reference)
    bits = int(rows["bit_depth"].max()) if len(rows) else dcard.bit_depth
    specs = {}
    for m in chosen:
        s = m.spec.resolved(bits, m.library_version())
        if reference == "aligned":
            s["reference"] = ("aligned ground truth (flow-warped), scored over its valid mask"
                              if m.spec.regions else "aligned ground truth, whole image")
        specs[m.spec.name] = s
    sids = {name: spec_id(s) for name, s in specs.items()}
    region_note = None
    if regions_on:
        region_note = regions.available()
    rcfg = regions.config_from(pba) if regions_on and region_note is None else None
    fp = _fingerprint(record, rows, sids, reference, rcfg.source if rcfg else False)
    _DEVICE[0] = pick_device(device)

    con = db.connect(db_path)
    try:
        with db.transaction(con):
            staged = db.staged_images(con, rid, fp)
        status, error = record["status"], record.get("error")
        state = {m.spec.name: {"status": "ok", "reason": None} for m in chosen}
        if status == "ok":
            computers = _prepare(chosen, state, rows, dcard)
            try:
                _score_images(con, rid, fp, dataset, split, method, rows, computers, sids,
                              staged, rcfg, reference, (batching or Batching()).on(_DEVICE[0]))
                _dataset_level(con, rid, fp, method, dataset, split, rows, computers, sids,
                               state)
            except ScoreError as exc:
                status, error = "failed", str(exc)
            if regions_on and region_note:
                for name, st in state.items():
                    if get_metric(name, protocol).spec.regions:
                        st["region_note"] = region_note
        result = _commit(con, rid, fp, record, dcard, rows, mcard, specs, sids, state, status,
                         error, protocol, reference, dataset, split, method,
                         rcfg.source if rcfg else None, method_row or {})
    finally:
        con.close()
    if metrics_dir is not None:
        out = Path(metrics_dir) / dataset / split / f"{run.board_name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"status": result["status"], "n_images": result["n_images"],
                                   **{k: v for k, v in result["means"].items()
                                      if np.isfinite(v)}}, indent=1))
    return result


def _manifest(dataset: str, split: str, reference: str):
    if reference == "original":
        return load_manifest(dataset, split)
    from deblurbench.datasets.align import variant_name

    try:
        return load_manifest(dataset, split, variant=variant_name(dataset))
    except ValueError as exc:
        raise ValueError(f"{dataset}: no aligned ground truth to score against ({exc})") from None


def _fingerprint(record, rows, sids, reference, regions_on) -> str:
    blob = json.dumps({"run": [record.get("started"), record.get("finished")],
                       "images": sorted(rows["image_id"]), "specs": sorted(sids.values()),
                       "reference": reference, "regions": regions_on}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _prepare(chosen, state, rows, dcard) -> dict[str, tuple[Metric, Computer]]:
    has_gt = rows["sharp"].notna().any() if len(rows) else False
    out = {}
    for m in chosen:
        name = m.spec.name
        if m.spec.kind in ("FR", "dataset") and not has_gt:
            state[name] = {"status": "not applicable",
                           "reason": f"{dcard.name} has no ground truth"}
            continue
        reason = m.unavailable_reason()
        if reason is None:
            try:
                out[name] = (m, m.computer(_DEVICE[0]))
                continue
            except MetricUnavailable as exc:
                reason = str(exc)
            except (ImportError, OSError, RuntimeError) as exc:  # the other metrics go on
                reason = f"{name}: its model could not be built ({type(exc).__name__}: {exc})"
        state[name] = {"status": "unavailable", "reason": reason}
    return out


_DEVICE = ["cpu"]


def _load_pair(method, dataset, split, r, rcfg, reference):
    restored = read_output(method, dataset, split, r.image_id, r.height, r.width)
    sharp = read_image(r.sharp) if isinstance(r.sharp, str) else None
    valid = None
    if reference == "aligned":
        valid = read_image(r.mask)[:, :, 0] > 0.5
    blurry = read_image(r.blurry) if rcfg is not None else None
    return restored, sharp, valid, blurry


def groups(rows: list, batching: Batching) -> list[list]:
    """Consecutive rows cut into groups of one image size within the batching budget."""
    out: list[list] = []
    for r in rows:
        g = out[-1] if out else None
        if (g is None or len(g) >= batching.size
                or (r.height, r.width) != (g[0].height, g[0].width)
                or (len(g) + 1) * r.height * r.width > batching.max_pixels):
            out.append([r])
        else:
            g.append(r)
    return out


def _score_images(con, rid, fp, dataset, split, method, rows, computers, sids, staged,
                  rcfg, reference, batching: Batching) -> None:
    todo = groups([r for r in rows.itertuples() if r.image_id not in staged], batching)
    bar = tqdm(total=len(rows), initial=len(rows) - sum(map(len, todo)), unit="img",
               mininterval=0, desc=f"score {method} on {dataset}/{split}")
    # One loader thread decodes the next group while this one is scored: at most two groups
    # of pairs are in memory. Pairs live only in ``pairs`` and the helpers' locals, so a
    # scored group is freed before the group after next starts decoding.
    with ThreadPoolExecutor(max_workers=1) as pool:
        def load(group):
            return [pool.submit(_load_pair, method, dataset, split, r, rcfg, reference)
                    for r in group]

        nxt = load(todo[0]) if todo else None
        for i, group in enumerate(todo):
            pairs = _results(group, nxt)
            nxt = load(todo[i + 1]) if i + 1 < len(todo) else None
            staged_rows = _score_group(rid, fp, dataset, split, group, pairs, computers, sids,
                                       rcfg)
            del pairs
            with db.transaction(con):
                db.stage_rows(con, staged_rows)
            bar.update(len(group))
    bar.close()


def _results(group, futures) -> list[tuple]:
    """The decoded pairs of a group, in order; an unreadable file fails with its image id."""
    out = []
    for r, fut in zip(group, futures, strict=True):
        try:
            out.append(fut.result())
        except ImageError as exc:
            raise ScoreError(f"image {r.image_id!r}: {exc}") from None
    return out


def _score_group(rid, fp, dataset, split, group, pairs, computers, sids, rcfg) -> list[tuple]:
    """Staging rows of a group of decoded pairs: batched metrics first, then per image."""
    batch = _score_batched(group, pairs, computers)
    rows = []
    for j, (r, (restored, sharp, valid, blurry)) in enumerate(zip(group, pairs, strict=True)):
        rows += _score_one(rid, fp, dataset, split, r.image_id, restored, sharp, valid, blurry,
                           computers, sids, rcfg, {k: v[j] for k, v in batch.items()})
    return rows


def _score_batched(group, pairs, computers) -> dict[str, list[float]]:
    """{metric: one value per image} for the metrics scored in one pass over the group.

    A metric that fails on the batch (one flat image for NIQE) is left to the per-image path,
    which records which image failed and why."""
    if len(group) < 2:
        return {}
    out = {}
    for name, (m, comp) in computers.items():
        if comp.batch_fn is None or m.spec.kind == "dataset":
            continue
        refs = [sharp for _, sharp, _, _ in pairs] if m.spec.kind == "FR" else [None] * len(pairs)
        if m.spec.kind == "FR" and any(s is None for s in refs):
            continue
        if m.spec.kind == "FR" and comp.region_fn is not None and pairs[0][2] is not None:
            continue  # aligned ground truth: the value is over the valid mask, per image
        try:
            out[name] = comp.batch_fn([p[0] for p in pairs], refs)
        except MetricFailure:
            continue
    return out


def _score_one(rid, fp, dataset, split, image_id, restored, sharp, valid, blurry, computers,
               sids, rcfg, done: dict[str, float] | None = None) -> list[tuple]:
    """Staging rows of one image; ``done`` holds values already computed in a batch."""
    done = done or {}
    out = [(rid, fp, image_id, MARK, "all", None, None, None)]
    masks = None
    if blurry is not None:
        try:
            masks = regions.masks_from_labels(
                regions.label_map(dataset, split, image_id, blurry, rcfg), valid)
        except ValueError as exc:
            out.append((rid, fp, image_id, "__regions__", "all", None, None, str(exc)))
    for name, (m, comp) in computers.items():
        if m.spec.kind == "dataset" or (m.spec.kind == "FR" and sharp is None):
            continue
        ref = sharp if m.spec.kind == "FR" else None
        try:
            if name in done:
                value = float(done[name])
            elif valid is not None and comp.region_fn is not None:
                value = comp.region_fn(restored, ref, {"all": valid}).get("all")
                if value is None:
                    raise MetricFailure("the aligned ground truth has no valid pixel")
            else:
                value = float(comp.fn(restored, ref))
            out.append((rid, fp, image_id, name, "all", value, sids[name], None))
            if masks is not None and comp.region_fn is not None:
                for region, v in comp.region_fn(restored, ref, masks).items():
                    out.append((rid, fp, image_id, name, region, v, sids[name], None))
        except MetricFailure as exc:
            out.append((rid, fp, image_id, name, "all", None, sids[name], str(exc)))
    return out


def _dataset_level(con, rid, fp, method, dataset, split, rows, computers, sids, state) -> None:
    for name, (m, comp) in computers.items():
        if m.spec.kind != "dataset" or comp.dataset_fn is None:
            continue
        with_gt = rows[rows["sharp"].notna()]
        outs = [str(output_path(method, dataset, split, i)) for i in with_gt["image_id"]]
        try:
            value, reason = comp.dataset_fn(outs, list(with_gt["sharp"])), None
        except MetricFailure as exc:
            value, reason = None, str(exc)
        with db.transaction(con):
            results.clear_staged_metric(con, rid, name)
            db.stage_rows(con, [(rid, fp, DATASET_IMAGE, name, "all", value, sids[name],
                                 reason)])


def read_output(method, dataset, split, image_id, height, width) -> np.ndarray:
    path = output_path(method, dataset, split, image_id)
    if not path.exists():
        raise ScoreError(f"{path}: missing output for image {image_id!r}")
    try:
        img = read_image(path)
    except ImageError as exc:
        raise ScoreError(f"image {image_id!r}: {exc}") from None
    return check_output_image(img, image_id, height, width, path)


def check_output_image(img: np.ndarray, image_id: str, height: int, width: int,
                       path: str | Path = "<array>") -> np.ndarray:
    """Refuse an output of the wrong size or with NaN/Inf, naming the image."""
    if img.shape[:2] != (height, width):
        raise ScoreError(f"{path}: output of image {image_id!r} is {img.shape[1]}x{img.shape[0]},"
                         f" expected {width}x{height}")
    if not np.isfinite(img).all():
        raise ScoreError(f"{path}: output of image {image_id!r} holds "
                         f"{int((~np.isfinite(img)).sum())} NaN/Inf values")
    return img


# ---------------------------------------------------------------------------------------------
# The final transaction: the only writes to the public tables.


def _commit(con, rid, fp, record, dcard, rows, mcard, specs, sids, state, status, error,
            protocol, reference, dataset, split, method, region_source,
            method_row: dict) -> dict:
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
        _write_context(con, dcard, rows, mcard, specs, sids, method_row)
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
            "run_id": rid, "method": mcard["name"], "method_version": record["method_version"],
            "dataset": dataset, "dataset_version": record["dataset_version"], "split": split,
            "protocol": protocol, "status": status, "error": error,
            "started": record["started"], "finished": record.get("finished"),
            "scored": provenance.now(), "n_images": n_images,
            "latency_ms_per_mp": cost.get("latency_ms_per_mp",
                                           latency_ms_per_mp(record["images"])),
            "device": record["device"], "git_rev": record["git_rev"], "config": record["config"],
            "versions": record["versions"] | provenance.versions(
                "scikit-image", "duckdb", "pyiqa", "lpips", "torch", "opencv-python-headless")
            | {"scoring_git_rev": provenance.git_rev(), "scoring_device": _DEVICE[0]},
            "params": record["params"], "reference": reference, "region_source": region_source,
            "n_failed": int(failed["image_id"].nunique()), "n_params": cost.get("params"),
            "flops_per_mp": cost.get("flops_per_mp"), "peak_rss_mb": cost.get("peak_rss_mb"),
            "peak_gpu_mb": cost.get("peak_gpu_mb"),
            "output_bits": output_bits, "base_method": record["method"],
            "variant": record.get("variant"), "trained_on": record.get("trained_on"),
            "checkpoint": record.get("checkpoint"), "weights": record.get("weights")},
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


def _write_context(con, dcard, rows, mcard, specs, sids, method_row: dict) -> None:
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
                               "card": mcard} | method_row, ["method"])
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
