"""The Python API: what the CLI does, as three calls a notebook or another tool can make.

>>> import deblurbench as db
>>> db.run_method("nafnet", "synthetic-defocus", "test")          # restore a split
>>> db.score_folder("my_outputs/", "synthetic-defocus", "test", "my-method")
>>> db.board()[("synthetic-defocus", "test", "defocus")]          # a DataFrame

Each resolves its defaults from the project's ``params.yaml`` (the current folder or
``$DEBLURBENCH_ROOT``), as the CLI does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def _params():
    from deblurbench.config import load_params
    from deblurbench.paths import project_root

    return load_params(project_root() / "params.yaml")


def run_method(name: str, dataset: str, split: str = "test", **options: Any) -> dict:
    """Run method ``name`` on every image of (``dataset``, ``split``) into
    ``outputs/<run>/<dataset>/<split>/`` with its record ``run.json``; ``options`` are those of
    :func:`deblurbench.methods.runner.run_method` (``device``, ``variant``, ``trained_on``,
    ...). Returns the run record."""
    from deblurbench.methods.runner import run_method as run

    return run(name, dataset, split, **options)


def score_folder(folder: str | Path, dataset: str, split: str, method: str,
                 card: str | Path | None = None, metrics: list[str] | None = None,
                 db: str | Path | None = None) -> dict:
    """Score a folder (or zip) of restored ``<image_id>.png`` files against (``dataset``,
    ``split``) with the project's metric specs, and store it as the submitted method
    ``method`` (validated whole first; see ``deblurbench submit results``). Returns {run_id,
    n_images, means}."""
    from deblurbench.submit.results import submit_results

    p = _params()
    return submit_results(folder, dataset, split, method, card, db or p.score.db,
                          metrics or list(p.score.metrics), p.score.protocol)


def board(db: str | Path | None = None) -> dict[tuple[str, str, str], pd.DataFrame]:
    """Every board of the results database as a DataFrame, keyed by (dataset, split,
    protocol): one row per run with its label, status, metric means and cost, as the
    leaderboard shows it (read from a private snapshot, so a scoring may run meanwhile)."""
    from deblurbench.leaderboard.snapshot import open_snapshot
    from deblurbench.leaderboard.table import load_boards

    con = open_snapshot(db or _params().score.db)
    try:
        return {k: b.table for k, b in load_boards(con).items()}
    finally:
        con.close()
