"""The board's reads of the results database (a snapshot, migrated to the current schema;
see ``deblurbench.leaderboard.snapshot``): every query the leaderboard, the review and the
exports run, over the tables and views of ``schema.py``.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

#: The cost columns of ``board_runs`` (display units), in board order.
COST_COLUMNS = ["params (M)", "GFLOPs/MP", "latency ms/MP", "peak mem MB"]

#: Metric family when a spec does not name one: no-reference by kind, perceptual by the
#: learned/deep-feature definitions, fidelity otherwise.
PERCEPTUAL = {"lpips", "dists", "fid", "kid", "pieapp", "ahiq", "topiq_fr"}


def family(metric: str, kind: str | None, spec_json: str | None = None) -> str:
    if spec_json:
        try:
            fam = json.loads(spec_json).get("family")
            if fam:
                return str(fam)
        except (ValueError, AttributeError):
            pass
    if kind == "NR":
        return "no-reference"
    base = metric.split("@")[0].lower()
    return "perceptual" if base in PERCEPTUAL else "fidelity"


def _run_filter(run_ids) -> tuple[str, list]:
    """An ``AND r.run_id IN (...)`` clause for an optional list of run ids."""
    if run_ids is None:
        return "", []
    ids = list(run_ids)
    return (f" AND r.run_id IN ({', '.join('?' * len(ids))})", ids) if ids else (" AND FALSE", [])


def runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per run (view ``board_runs``): the board protocol, the method's source, kind and
    label, the cost in display units and the run's identity."""
    return con.execute("SELECT * FROM board_runs ORDER BY dataset, split, method").df()


def means(con: duckdb.DuckDBPyConnection, region: str | None = "all") -> pd.DataFrame:
    """Mean of every (run, metric, spec[, region]) with direction, kind, family and CI columns.

    ``region=None`` returns every region (``all`` and the PBA blur levels).
    """
    where = "" if region is None else "WHERE s.region = ?"
    args = [] if region is None else [region]
    df = con.execute(f"""
        SELECT s.run_id, s.metric, s.spec_id, s.region, ms.direction, ms.kind,
               CAST(ms.spec AS VARCHAR) AS spec, avg(s.value) AS mean, count(*) AS n
        FROM scores s LEFT JOIN metric_specs ms ON ms.spec_id = s.spec_id
        {where} GROUP BY ALL ORDER BY s.run_id, s.metric""", args).df()
    df["family"] = [family(m, k, s) for m, k, s in zip(df["metric"], df["kind"], df["spec"])]
    if len(df):
        df = df.merge(confidence_intervals(con), on=["run_id", "metric", "region", "spec_id"],
                      how="left")
    else:
        df["ci_low"] = float("nan")
        df["ci_high"] = float("nan")
    return df.drop(columns=["spec"])


def confidence_intervals(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The scorer's bootstrap intervals per (run, metric, region, spec)."""
    return con.execute("SELECT run_id, metric, region, spec_id, ci_low, ci_high "
                       "FROM score_aggregates").df()


def paired_tests(con: duckdb.DuckDBPyConnection, run_a: str, run_b: str) -> pd.DataFrame | None:
    """The scorer's paired tests of A against B (whole images), or None when it has none."""
    sql = ("SELECT metric, mean_diff AS diff, ci_low, ci_high, p_value FROM paired_comparisons "
           "WHERE run_a = ? AND run_b = ? AND region = 'all'")
    df = con.execute(sql, [run_a, run_b]).df()
    if len(df):
        return df
    df = con.execute(sql, [run_b, run_a]).df()
    if len(df):  # stored the other way round: flip the sign of the difference
        df["diff"] = -df["diff"]
        lo, hi = -df["ci_high"], -df["ci_low"]
        df["ci_low"], df["ci_high"] = lo, hi
        return df
    return None


def paired_differences(con: duckdb.DuckDBPyConnection, run_a: str, run_b: str) -> pd.DataFrame:
    """Per metric (same spec only): mean of A - B over the images both runs scored, and n."""
    return con.execute("""
        SELECT a.metric, a.spec_id, ms.direction, avg(a.value - b.value) AS diff,
               count(*) AS n_pairs,
               sum(CASE WHEN (a.value > b.value) = (ms.direction = 'higher')
                        AND a.value <> b.value THEN 1 ELSE 0 END) AS a_better
        FROM scores a JOIN scores b
          ON a.image_id = b.image_id AND a.metric = b.metric AND a.region = b.region
         AND a.spec_id = b.spec_id
        LEFT JOIN metric_specs ms ON ms.spec_id = a.spec_id
        WHERE a.run_id = ? AND b.run_id = ? AND a.region = 'all'
          AND isfinite(a.value) AND isfinite(b.value)
        GROUP BY ALL ORDER BY a.metric""", [run_a, run_b]).df()


def image_scores(con: duckdb.DuckDBPyConnection, dataset: str, split: str,
                 run_ids=None) -> pd.DataFrame:
    """Per-image scores (region ``all``) of the runs on (dataset, split), or of ``run_ids``
    only (one board's runs)."""
    clause, ids = _run_filter(run_ids)
    return con.execute(f"""
        SELECT r.method, r.protocol, s.run_id, s.image_id, s.metric, s.spec_id, s.value,
               ms.direction
        FROM scores s JOIN runs r ON r.run_id = s.run_id
        LEFT JOIN metric_specs ms ON ms.spec_id = s.spec_id
        WHERE r.dataset = ? AND r.split = ? AND s.region = 'all'{clause}
        ORDER BY r.method, s.image_id, s.metric""", [dataset, split, *ids]).df()


def images(con: duckdb.DuckDBPyConnection, dataset: str, split: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM images WHERE dataset = ? AND split = ? ORDER BY image_id",
                       [dataset, split]).df()


def reported(con: duckdb.DuckDBPyConnection, dataset: str | None = None) -> pd.DataFrame:
    where, args = ("WHERE dataset = ?", [dataset]) if dataset else ("", [])
    return con.execute(f"SELECT * FROM reported {where} ORDER BY dataset, paper, table_ref, "
                       "subset, method, metric", args).df()


def unavailable(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Metrics asked for but not computed (no weights here), one row per (board, metric)."""
    return con.execute(
        "SELECT r.dataset, r.split, r.protocol, s.metric, any_value(s.reason) AS reason "
        "FROM metric_status s JOIN board_runs r USING (run_id) WHERE s.status = 'unavailable' "
        "GROUP BY ALL ORDER BY ALL").df()


def metric_specs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT spec_id, metric, version, kind, direction, CAST(spec AS VARCHAR) "
                       "AS spec FROM metric_specs ORDER BY metric, spec_id").df()


#: Direction of papers' metrics that no local spec defines (reported numbers carry no spec).
REPORTED_LOWER_IS_BETTER = {"lpips", "dists", "fid", "kid", "niqe", "piqe", "brisque", "mae",
                            "mse", "rmse"}


def reported_direction(metric: str, specs: pd.DataFrame | None = None) -> str:
    if specs is not None and len(specs):
        d = specs.loc[specs["metric"] == metric, "direction"].dropna().unique()
        if len(d) == 1:
            return str(d[0])
    return "lower" if metric.lower() in REPORTED_LOWER_IS_BETTER else "higher"


def subset_means(con: duckdb.DuckDBPyConnection, run_ids) -> pd.DataFrame:
    """Mean per (method, metric, spec, image subset) of ``run_ids`` (whole images), for data
    sets whose card ships subsets (DPDD indoor/outdoor); empty otherwise."""
    clause, ids = _run_filter(run_ids)
    return con.execute(f"""
        SELECT r.method, m.metric, m.spec_id, m.subset AS region, m.mean, m.n
        FROM subset_means m JOIN runs r ON r.run_id = m.run_id
        WHERE m.region = 'all'{clause} ORDER BY r.method, m.metric, m.subset""", ids).df()


def region_means(con: duckdb.DuckDBPyConnection, dataset: str, split: str,
                 run_ids=None) -> pd.DataFrame:
    """Mean per (method, metric, spec, PBA region) for region-stratified scores (none: empty),
    of the runs on (dataset, split) or of ``run_ids`` only (one board's runs)."""
    clause, ids = _run_filter(run_ids)
    return con.execute(f"""
        SELECT r.method, s.metric, s.spec_id, s.region, avg(s.value) AS mean, count(*) AS n
        FROM scores s JOIN runs r ON r.run_id = s.run_id
        WHERE r.dataset = ? AND r.split = ? AND s.region <> 'all' AND isfinite(s.value){clause}
        GROUP BY ALL ORDER BY r.method, s.metric, s.region""", [dataset, split, *ids]).df()
