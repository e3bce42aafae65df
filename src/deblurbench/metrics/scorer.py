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

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from deblurbench.io import ImageError, read_image
from deblurbench.metrics import regions
from deblurbench.metrics.commit import DATASET_IMAGE, commit
from deblurbench.metrics.scoring_job import REFERENCES, ScoringJob, run_id
from deblurbench.metrics.spec import (
    Computer,
    Metric,
    MetricFailure,
    MetricUnavailable,
    get_metric,
)
from deblurbench.runs import output_path
from deblurbench.store import db, results

__all__ = ["DATASET_IMAGE", "REFERENCES", "Batching", "ScoreError", "ScoringJob", "run_id",
           "score_all", "score_job", "score_run"]

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
    job = ScoringJob.make(method, dataset, split, metrics, protocol, reference, regions_on,
                          device, pba, method_row)
    return score_job(job, db_path, metrics_dir, batching)


def score_job(job: ScoringJob, db_path: str | Path, metrics_dir: str | Path | None = None,
              batching: Batching | None = None) -> dict:
    """Score a prepared :class:`ScoringJob` into ``db_path`` (and its means into
    ``metrics_dir/<dataset>/<split>/<run>.json``)."""
    con = db.connect(db_path)
    try:
        status, error = job.record["status"], job.record.get("error")
        reused = status == "ok" and results.scored_fingerprint(con, job.run_id) == job.fingerprint
        with db.transaction(con):
            if reused:  # same bytes, specs and settings: rebuild from the stored scores
                state = results.restage_committed(con, job.run_id, job.fingerprint)
            staged = db.staged_images(con, job.run_id, job.fingerprint)
        if not reused:
            state = {m.spec.name: {"status": "ok", "reason": None} for m in job.chosen}
        if status == "ok" and not reused:
            computers = _prepare(job, state)
            try:
                _score_images(con, job, computers, staged,
                              (batching or Batching()).on(job.device))
                _dataset_level(con, job, computers)
            except ScoreError as exc:
                status, error = "failed", str(exc)
            if job.region_note:
                for m in job.chosen:
                    if m.spec.regions:
                        state[m.spec.name]["region_note"] = job.region_note
        result = commit(con, job, state, status, error) | {"reused": reused}
    finally:
        con.close()
    if metrics_dir is not None:
        out = Path(metrics_dir) / job.dataset / job.split / f"{job.board_name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"status": result["status"], "n_images": result["n_images"],
                                   **{k: v for k, v in result["means"].items()
                                      if np.isfinite(v)}}, indent=1))
    return result


def _prepare(job: ScoringJob, state: dict) -> dict[str, tuple[Metric, Computer]]:
    """The computers of the metrics that can run here; the others' status says why not."""
    has_gt = job.rows["sharp"].notna().any() if len(job.rows) else False
    out = {}
    for m in job.chosen:
        name = m.spec.name
        if m.spec.kind in ("FR", "dataset") and not has_gt:
            state[name] = {"status": "not applicable",
                           "reason": f"{job.dcard.name} has no ground truth"}
            continue
        reason = m.unavailable_reason()
        if reason is None:
            try:
                out[name] = (m, m.computer(job.device))
                continue
            except MetricUnavailable as exc:
                reason = str(exc)
            except (ImportError, OSError, RuntimeError) as exc:  # the other metrics go on
                reason = f"{name}: its model could not be built ({type(exc).__name__}: {exc})"
        state[name] = {"status": "unavailable", "reason": reason}
    return out


def _load_pair(job: ScoringJob, r):
    restored = read_output(job.method, job.dataset, job.split, r.image_id, r.height, r.width)
    sharp = read_image(r.sharp) if isinstance(r.sharp, str) else None
    valid = None
    if job.reference == "aligned":
        valid = read_image(r.mask)[:, :, 0] > 0.5
    blurry = read_image(r.blurry) if job.rcfg is not None else None
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


def _score_images(con, job: ScoringJob, computers, staged: set[str], batching: Batching
                  ) -> None:
    rows = job.rows
    todo = groups([r for r in rows.itertuples() if r.image_id not in staged], batching)
    bar = tqdm(total=len(rows), initial=len(rows) - sum(map(len, todo)), unit="img",
               mininterval=0, desc=f"score {job.method} on {job.dataset}/{job.split}")
    # One loader thread decodes the next group while this one is scored: at most two groups
    # of pairs are in memory. Pairs live only in ``pairs`` and the helpers' locals, so a
    # scored group is freed before the group after next starts decoding.
    with ThreadPoolExecutor(max_workers=1) as pool:
        def load(group):
            return [pool.submit(_load_pair, job, r) for r in group]

        nxt = load(todo[0]) if todo else None
        for i, group in enumerate(todo):
            pairs = _results(group, nxt)
            nxt = load(todo[i + 1]) if i + 1 < len(todo) else None
            staged_rows = _score_group(job, group, pairs, computers)
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


def _score_group(job: ScoringJob, group, pairs, computers) -> list[tuple]:
    """Staging rows of a group of decoded pairs: batched metrics first, then per image."""
    batch = _score_batched(group, pairs, computers)
    rows = []
    for j, (r, pair) in enumerate(zip(group, pairs, strict=True)):
        rows += _score_one(job, r.image_id, pair, computers, {k: v[j] for k, v in batch.items()})
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


def _score_one(job: ScoringJob, image_id: str, pair: tuple, computers,
               done: dict[str, float] | None = None) -> list[tuple]:
    """Staging rows of one image; ``done`` holds values already computed in a batch."""
    restored, sharp, valid, blurry = pair
    rid, fp, sids = job.run_id, job.fingerprint, job.sids
    done = done or {}
    out = [(rid, fp, image_id, MARK, "all", None, None, None)]
    masks = None
    if blurry is not None:
        try:
            masks = regions.masks_from_labels(
                regions.label_map(job.dataset, job.split, image_id, blurry, job.rcfg), valid)
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


def _dataset_level(con, job: ScoringJob, computers) -> None:
    rid, fp = job.run_id, job.fingerprint
    for name, (m, comp) in computers.items():
        if m.spec.kind != "dataset" or comp.dataset_fn is None:
            continue
        with_gt = job.rows[job.rows["sharp"].notna()]
        outs = [str(output_path(job.method, job.dataset, job.split, i))
                for i in with_gt["image_id"]]
        try:
            value, reason = comp.dataset_fn(outs, list(with_gt["sharp"])), None
        except MetricFailure as exc:
            value, reason = None, str(exc)
        with db.transaction(con):
            results.clear_staged_metric(con, rid, name)
            db.stage_rows(con, [(rid, fp, DATASET_IMAGE, name, "all", value, job.sids[name],
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




def score_all(params, methods: list[str] | None = None, datasets: list[str] | None = None,
              splits: list[str] | None = None, metrics: list[str] | None = None,
              protocol: str | None = None, reference: str | None = None,
              regions_on: bool | None = None, device: str | None = None,
              db_path: str | Path | None = None, batch_size: int | str | None = None,
              on_result=None) -> dict:
    """Score every run of the pipeline (``params``: :class:`deblurbench.config.Params`), or the
    named run folders ``methods`` on ``datasets`` x ``splits``, then load the papers' numbers
    (all runs only). Each argument left ``None`` comes from ``params.score``; ``on_result`` sees
    each run's result as it is stored. Returns {results, reported: rows loaded or None}."""
    from deblurbench.config import pipeline_runs

    s = params.score
    batching = Batching(batch_size or s.batch_size, int(s.batch_megapixels * 1e6))
    runs = [r for r in pipeline_runs(params) if (not datasets or r[1] in datasets)
            and (not splits or r[2] in splits)]
    if methods:  # run folder names: a method, or method~trained_on for a cross run
        runs = [(m, d, sp) for d in (datasets or params.datasets)
                for sp in (splits or params.run.splits) for m in methods]
    db_path = db_path or s.db
    out = []
    for m, d, sp in runs:
        res = score_run(m, d, sp, db_path, metrics or list(s.metrics), protocol or s.protocol,
                        metrics_dir=s.metrics_dir, reference=reference or s.reference,
                        regions_on=s.regions if regions_on is None else regions_on,
                        device=device or s.device, pba=params.pba, batching=batching)
        out.append(res)
        if on_result is not None:
            on_result(res)
    dropped = [] if methods or datasets or splits else drop_gone(db_path, runs)
    reported = Path(s.reported) if s.reported else None
    loaded = None
    if reported is not None and not methods and reported.is_file():
        # The papers' own numbers ride along, in their own table, never ranked with ours.
        from deblurbench.submit.reported import load_reported

        loaded = (load_reported(reported, db_path), reported)
    return {"results": out, "reported": loaded, "dropped": dropped}


def drop_gone(db_path: str | Path, runs: list[tuple[str, str, str]]) -> list[str]:
    """Remove from the board the measured runs the pipeline no longer makes and whose outputs
    folder is gone (a method or cross row taken out of params.yaml): their numbers could no
    longer be reviewed or reproduced. Submissions, and runs whose images are still there, stay.
    Returns the run ids dropped."""
    from deblurbench.runs import run_folder

    made = set(runs)
    con = db.connect(db_path)
    try:
        gone = [rid for rid, name, d, sp in results.measured_runs(con)
                if (name, d, sp) not in made and not run_folder(name, d, sp).exists()]
        with db.transaction(con):
            for rid in gone:
                db.replace_run(con, rid)
    finally:
        con.close()
    return gone
