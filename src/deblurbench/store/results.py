"""The scorer's reads and writes of the results database: every statement on a run's rows.

The scorer computes numbers; this module knows the tables. Writes happen inside the caller's
transaction (:func:`deblurbench.store.db.transaction`), so a run's rows change all at once.
"""

from __future__ import annotations

import duckdb
import pandas as pd


def clear_staged_metric(con: duckdb.DuckDBPyConnection, run_id: str, metric: str) -> None:
    """Drop the staged rows of one metric of a run (a data-set-level metric is restaged whole)."""
    con.execute("DELETE FROM score_staging WHERE run_id = ? AND metric = ?", [run_id, metric])


def clear_staging(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    con.execute("DELETE FROM score_staging WHERE run_id = ?", [run_id])


def staged(con: duckdb.DuckDBPyConnection, run_id: str, fingerprint: str) -> pd.DataFrame:
    """The staged per-image rows of a run's scoring (markers such as ``__done__`` left out):
    image_id, metric, region, value, spec_id, reason."""
    return con.execute("SELECT image_id, metric, region, value, spec_id, reason FROM "
                       "score_staging WHERE run_id = ? AND fingerprint = ? AND metric NOT "
                       "LIKE '\\_\\_%' ESCAPE '\\'", [run_id, fingerprint]).df()


def measured_runs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    """(run_id, run folder name, data set, split) of every run this project measured itself
    (submissions left out)."""
    return con.execute("SELECT r.run_id, r.method, r.dataset, r.split FROM runs r LEFT JOIN "
                       "methods m ON m.method = r.method WHERE coalesce(m.source, 'measured') "
                       "= 'measured' ORDER BY r.run_id").fetchall()


def scored_fingerprint(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The fingerprint the run's committed scores were computed under (None: not scored)."""
    row = con.execute("SELECT fingerprint FROM runs WHERE run_id = ? AND status = 'ok'",
                      [run_id]).fetchone()
    return row[0] if row else None


def restage_committed(con: duckdb.DuckDBPyConnection, run_id: str, fingerprint: str) -> dict:
    """Copy a run's committed per-image scores and failures back into staging under
    ``fingerprint`` (the same inputs), so that a commit rebuilds the run from them; returns
    each metric's stored {status, reason}."""
    clear_staging(con, run_id)
    con.execute("INSERT INTO score_staging SELECT run_id, ?, image_id, metric, region, value, "
                "spec_id, NULL FROM scores WHERE run_id = ?", [fingerprint, run_id])
    con.execute("INSERT INTO score_staging SELECT f.run_id, ?, f.image_id, f.metric, 'all', "
                "NULL, ms.spec_id, f.reason FROM score_failures f JOIN metric_status ms "
                "USING (run_id, metric) WHERE f.run_id = ?", [fingerprint, run_id])
    return {m: {"status": st, "reason": reason} for m, st, reason in con.execute(
        "SELECT metric, status, reason FROM metric_status WHERE run_id = ?",
        [run_id]).fetchall()}


def insert_scores(con: duckdb.DuckDBPyConnection, run_id: str, ok: pd.DataFrame) -> None:
    """The public per-image scores of a run, from a frame of image_id, metric, region, value,
    spec_id."""
    if not len(ok):
        return
    con.register("staged_ok", ok[["image_id", "metric", "region", "value", "spec_id"]])
    try:
        con.execute("INSERT INTO scores SELECT ?, image_id, metric, region, value, spec_id "
                    "FROM staged_ok", [run_id])
    finally:
        con.unregister("staged_ok")


def insert_failure(con, run_id: str, image_id: str, metric: str, reason: str) -> None:
    con.execute("INSERT INTO score_failures VALUES (?, ?, ?, ?)",
                [run_id, image_id, metric, reason])


def insert_metric_status(con, run_id: str, metric: str, spec_id: str, status: str,
                         reason: str | None, n_ok: int, n_failed: int) -> None:
    con.execute("INSERT INTO metric_status VALUES (?, ?, ?, ?, ?, ?, ?)",
                [run_id, metric, spec_id, status, reason, n_ok, n_failed])


def insert_aggregate(con, run_id: str, metric: str, region: str, spec_id: str, n: int,
                     mean: float, ci_low: float, ci_high: float, n_boot: int,
                     level: float) -> None:
    con.execute("INSERT INTO score_aggregates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, metric, region, spec_id, n, mean, ci_low, ci_high, n_boot, level])


def comparable_runs(con, dataset: str, split: str, protocol: str, reference: str,
                    run_id: str) -> list[str]:
    """The other ok runs scored on the same images under the same protocol and reference."""
    return [r[0] for r in con.execute(
        "SELECT run_id FROM runs WHERE dataset = ? AND split = ? AND protocol = ? AND "
        "coalesce(reference, 'original') = ? AND status = 'ok' AND run_id <> ?",
        [dataset, split, protocol, reference, run_id]).fetchall()]


def paired_values(con, run_a: str, run_b: str, skip_image: str) -> list[tuple]:
    """(metric, region, spec_id, values of a, values of b) over the images both runs scored
    with the same spec, in image order."""
    return con.execute("""
        SELECT a.metric, a.region, a.spec_id, list(a.value ORDER BY a.image_id) AS va,
               list(b.value ORDER BY a.image_id) AS vb
        FROM scores a JOIN scores b ON a.image_id = b.image_id AND a.metric = b.metric
             AND a.region = b.region AND a.spec_id = b.spec_id
        WHERE a.run_id = ? AND b.run_id = ? AND a.image_id <> ?
        GROUP BY ALL""", [run_a, run_b, skip_image]).fetchall()


def insert_paired(con, run_a: str, run_b: str, metric: str, region: str, spec_id: str,
                  res: dict) -> None:
    con.execute("INSERT INTO paired_comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_a, run_b, metric, region, spec_id, res["n"], res["mean_diff"],
                 res["ci_low"], res["ci_high"], res["p_value"]])
