"""`deblurbench submit results`: restored images from elsewhere, validated, scored, stored.

The upload (a flat folder or zip of ``<image_id>.png``; or the project's own run folder
``outputs/<method>/<dataset>/<split>/``, whose ``run.json`` is read and its provenance kept) is
checked completely before anything is written: archive safety (see ``archive.py``), then every image id of the split present
exactly once, no extra file, each PNG readable, 8 or 16 bits, and of its blurry input's size.
All problems are reported together. Only then are the images copied to
``outputs/<method>/<dataset>/<split>/`` (beside a ``run.json`` saying they were submitted),
scored with the same metric specs as measured runs, and written in one transaction with
source ``submitted`` and the submitter's card.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from deblurbench import provenance
from deblurbench.config import ConfigError, from_dict, load_yaml
from deblurbench.io import ImageError, probe, read_image
from deblurbench.paths import run_dir
from deblurbench.runs import RUN_FILE
from deblurbench.submit.archive import UploadError, extract_zip, inspect_folder, inspect_zip

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")  # the method-card name rule
KINDS = ("baseline", "classical", "learned", "diffusion")


@dataclass(frozen=True)
class SubmissionCard:
    """The submitter's method card (``--card FILE``, YAML)."""

    name: str
    paper: str | None = None
    description: str = ""
    submitter: str = ""
    kind: str = "learned"
    label: str = ""


def load_submission_card(path: str | Path | None, method: str) -> SubmissionCard:
    if path is None:
        return SubmissionCard(name=method)
    card = from_dict(SubmissionCard, load_yaml(path), str(path))
    if card.name != method:
        raise ConfigError(f"{path}: card name {card.name!r} differs from --method {method!r}")
    if card.kind not in KINDS:
        raise ConfigError(f"{path}: kind must be one of {', '.join(KINDS)}, got {card.kind!r}")
    if card.paper and not re.match(r"^(https?://|doi:|arxiv:)", card.paper):
        raise ConfigError(f"{path}: paper must be a link (http(s)://, doi: or arxiv:), "
                          f"got {card.paper!r}")
    return card


def check_images(folder: Path, names: list[str], rows, contents: bool = True
                 ) -> tuple[dict[str, Path], list[str]]:
    """Match upload files to the split's image ids; every problem, not just the first."""
    problems: list[str] = []
    expected = {r.image_id: r for r in rows.itertuples()}
    found: dict[str, Path] = {}
    stems: dict[str, str] = {}
    for name in names:
        p = Path(name)
        if p.suffix != ".png":
            problems.append(f"{name}: not a .png file (expected <image_id>.png)")
            continue
        if p.stem.lower() in stems:
            problems.append(f"{name}: image id {p.stem!r} present more than once "
                            f"(also {stems[p.stem.lower()]})")
            continue
        stems[p.stem.lower()] = name
        if p.stem not in expected:
            problems.append(f"{name}: extra file, no image {p.stem!r} in this split")
            continue
        found[p.stem] = folder / name
    present = {Path(n).stem for n in names}
    for image_id in expected:
        if image_id not in present:
            problems.append(f"{image_id}.png: missing")
    for image_id, path in tqdm(sorted(found.items()) if contents else [],
                               desc="check submission", unit="img"):
        r = expected[image_id]
        try:
            info = probe(path)
            if info.bit_depth not in (8, 16):
                problems.append(f"{path.name}: bit depth {info.bit_depth}, expected 8 or 16")
                continue
            if (info.height, info.width) != (r.height, r.width):
                problems.append(f"{path.name}: {info.width}x{info.height}, expected the blurry "
                                f"input's {r.width}x{r.height}")
                continue
            read_image(path)
        except ImageError as exc:
            problems.append(f"{path.name}: {exc.reason}")
    return found, problems


def submit_results(path: str | Path, dataset: str, split: str, method: str,
                   card_file: str | Path | None, db_path: str | Path,
                   metrics: list[str], protocol: str = "defocus") -> dict:
    """Validate, score and store a results submission; returns {run_id, n_images, means}."""
    from deblurbench.datasets.manifest import get_card as get_dataset_card
    from deblurbench.datasets.manifest import load_manifest
    from deblurbench.methods.registry import discover

    path = Path(path)
    if not NAME.match(method):
        raise ConfigError(f"--method {method!r}: use lower-case letters, digits and '-'")
    if method in discover():
        raise ConfigError(f"--method {method!r}: a method plugin of that name exists "
                          f"(methods/{method}); choose another name")
    card = load_submission_card(card_file, method)
    if not path.exists():
        raise FileNotFoundError(f"{path}: submission not found")
    rows = load_manifest(dataset, split)
    dcard = get_dataset_card(dataset)
    final = run_dir(method, dataset, split)
    staging = Path(tempfile.mkdtemp(prefix="deblurbench-submit-"))
    try:
        if path.is_dir():
            entries, problems = inspect_folder(path)
            source = path
        elif path.suffix.lower() == ".zip":
            entries, problems = inspect_zip(path)
            source = staging
            if not problems:  # nothing is extracted from an archive with a safety problem
                extract_zip(path, entries, staging)
        else:
            raise UploadError(path, ["expected a folder or a .zip archive"])
        unsafe = bool(problems) and source is staging
        names = [e.name for e in entries]
        own = None
        if RUN_FILE in names and not unsafe:  # the project's own run folder: its record
            names.remove(RUN_FILE)
            own, bad = own_record(source, dataset, split)
            problems += bad
        _, more = check_images(source, names, rows, contents=not unsafe)
        problems += more
        if unsafe:
            problems.append("image contents not checked: the archive was refused before "
                            "extraction")
        if problems:
            raise UploadError(path, problems)
        if source is path:
            for r in rows.itertuples():
                shutil.copyfile(path / f"{r.image_id}.png", staging / f"{r.image_id}.png")
        (staging / RUN_FILE).unlink(missing_ok=True)  # a new record is written for the run
        result = _store(staging, final, method, dataset, split, protocol, dcard, card,
                        db_path, metrics, source=str(path), own=own)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def own_record(folder: Path, dataset: str, split: str):
    """(record, problems) of the ``run.json`` in an upload: a finished run of this project on
    this (dataset, split), whose provenance the submission keeps."""
    from deblurbench.runs import RunRecordError, read_record

    try:
        rec = read_record(folder)
    except (RunRecordError, TypeError) as exc:
        return None, [f"{RUN_FILE}: not a run record of this project ({exc})"]
    problems = []
    if (rec.dataset, rec.split) != (dataset, split):
        problems.append(f"{RUN_FILE}: a run on {rec.dataset}/{rec.split}, not {dataset}/{split}")
    if rec.status != "ok":
        problems.append(f"{RUN_FILE}: the run's status is {rec.status!r}, not 'ok'"
                        + (f" ({rec.error})" if rec.error else ""))
    return (None if problems else rec), problems


def _store(staging: Path, final: Path, method: str, dataset: str, split: str, protocol: str,
           dcard, card: SubmissionCard, db_path, metrics: list[str], source: str,
           own=None) -> dict:
    """Put the outputs in place and score them with the real scorer, then mark the method as
    submitted with its card; on any failure the outputs and the database are restored. With
    ``own`` (the record of a run folder of this project) the run's provenance is kept: its
    device, versions, params, checkpoint and weights, and its card's facts unless a card is
    given."""
    import os

    from deblurbench.metrics.scorer import score_run
    from deblurbench.runs import RunRecord
    from deblurbench.store.db import method_source

    now = provenance.now()
    facts = {"name": card.name, "version": "submitted", "kind": card.kind, "paper": card.paper,
             "title": card.description.split("\n")[0][:120] or card.name,
             "description": card.description, "label": card.label}
    kept: dict = {"device": "unknown (submitted outputs)", "git_rev": provenance.git_rev(),
                  "versions": provenance.versions()}
    if own is not None:
        kept = {"device": own.device, "git_rev": own.git_rev, "versions": own.versions,
                "params": own.params, "checkpoint": own.checkpoint, "weights": own.weights,
                "trained_on": None, "precision": own.precision, "seed": own.seed,
                "tiling": own.tiling, "output_bits": own.output_bits}
        if not card.description and not card.label:  # no card given: the run's own facts
            label = own.method_card.get("label") or own.method
            facts = own.method_card | {"name": card.name, "version": "submitted",
                                       "label": f"{label} (submitted from run {own.name})"}
    RunRecord(method=method, method_version="submitted", dataset=dataset,
              dataset_version=dcard.version, split=split, config="submitted", status="ok",
              started=now, finished=now, method_card=facts, source="submitted",
              upload=source, card=asdict(card) | ({"from_run": own.name} if own else {}),
              **kept).write(staging)
    db_path = Path(db_path)
    held = method_source(db_path, method)
    if held not in (None, "submitted"):
        raise ConfigError(f"--method {method!r}: the database holds a {held} method of "
                          "that name; choose another name")
    backup = final.with_name(final.name + ".replaced")
    db_backup = db_path.with_name(db_path.name + ".before-submit")
    shutil.rmtree(backup, ignore_errors=True)
    if final.exists():
        final.rename(backup)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staging, final)
    if db_path.exists():
        shutil.copyfile(db_path, db_backup)
    try:
        # scores and the "submitted" label in one transaction: never a half-labelled run
        res = score_run(method, dataset, split, db_path, metrics, protocol,
                        method_row={"source": "submitted", "version": "submitted",
                                    "card": asdict(card) | {"upload": source}})
        if res["status"] != "ok":
            raise ValueError(f"scoring the submission failed: {res['error']}")
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        if backup.exists():
            backup.rename(final)
        if db_backup.exists():
            os.replace(db_backup, db_path)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    db_backup.unlink(missing_ok=True)
    return {"run_id": res["run_id"], "n_images": res["n_images"], "means": res["means"]}
