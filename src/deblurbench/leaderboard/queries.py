"""Read-only queries over a results-database connection (a snapshot; see ``snapshot.py``).

Only the contract tables of DESIGN.md are required. Everything added later by the scorer is
optional and found by its columns, so the leaderboard shows "n/a" until it exists:

- confidence intervals: any table or view with columns ``run_id, metric, ci_low, ci_high``
  (and optionally ``region``, ``spec_id``);
- paired tests: any table or view with ``metric, p_value`` and the two runs as
  ``run_a, run_b`` (or ``run_id_a, run_id_b``), optionally ``diff``/``mean_diff``, ``ci_low``,
  ``ci_high``;
- cost: columns ``n_params``/``params_count``, ``flops_per_mp``/``gflops_per_mp``,
  ``latency_ms_per_mp``, ``peak_mem_mb`` on ``runs`` or ``methods``.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

#: Display column -> candidate (column, scale) pairs, first found wins.
COST_CANDIDATES: dict[str, tuple[tuple[str, float], ...]] = {
    "params (M)": (("n_params", 1e-6), ("params_count", 1e-6), ("n_params_m", 1.0)),
    "GFLOPs/MP": (("flops_per_mp", 1e-9), ("gflops_per_mp", 1.0)),
    "latency ms/MP": (("latency_ms_per_mp", 1.0),),
    "peak mem MB": (("peak_gpu_mb", 1.0), ("peak_rss_mb", 1.0), ("peak_mem_mb", 1.0)),
}

#: Relations preferred for CIs (the scorer's view), before any other with the right columns.
CI_RELATIONS = ("run_metric_summary", "score_aggregates")

#: Metric family when a spec does not name one: no-reference by kind, perceptual by the
#: learned/deep-feature definitions, fidelity otherwise.
PERCEPTUAL = {"lpips", "dists", "fid", "kid", "pieapp", "ahiq", "topiq_fr"}


def relations(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Every table and view with its lower-case column names."""
    rows = con.execute("SELECT table_name, lower(column_name) FROM information_schema.columns "
                       "ORDER BY table_name, ordinal_position").fetchall()
    out: dict[str, list[str]] = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


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


def board_protocol(con: duckdb.DuckDBPyConnection) -> str:
    """SQL for a run's board protocol: its metric protocol, plus the reference when it is not
    the original ground truth (``defocus+aligned``), so that scores against aligned ground
    truth sit on a board of their own and are never ranked with the original ones."""
    if "reference" not in relations(con).get("runs", []):
        return "r.protocol"
    return ("CASE WHEN coalesce(r.reference, 'original') = 'original' THEN r.protocol "
            "ELSE r.protocol || '+' || r.reference END")


def _run_filter(run_ids) -> tuple[str, list]:
    """An ``AND r.run_id IN (...)`` clause for an optional list of run ids."""
    if run_ids is None:
        return "", []
    ids = list(run_ids)
    return (f" AND r.run_id IN ({', '.join('?' * len(ids))})", ids) if ids else (" AND FALSE", [])


def runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per run with the method's source, kind, label and whatever cost columns exist;
    ``protocol`` is the board protocol (see ``board_protocol``)."""
    rel = relations(con)
    rcols, mcols = set(rel.get("runs", [])), set(rel.get("methods", []))
    extra = []
    for name, cands in COST_CANDIDATES.items():
        found = [f"r.{c} * {k}" for c, k in cands if c in rcols] + \
            [f"m.{c} * {k}" for c, k in cands if c in mcols]
        col = f"coalesce({', '.join(found)})" if found else "NULL::DOUBLE"
        extra.append(f"{col} AS \"{name}\"")
    for c, kind in (("trained_on", "VARCHAR"), ("variant", "VARCHAR"), ("checkpoint", "JSON"),
                    ("weights", "JSON")):  # a run's identity (migration 4)
        extra.append(f"r.{c}" if c in rcols else f"NULL::{kind} AS {c}")
    df = con.execute(f"""
        SELECT r.run_id, r.method, r.dataset, r.split, {board_protocol(con)} AS protocol,
               r.status, r.error,
               r.n_images, r.config, r.device, r.method_version, r.git_rev, r.scored,
               coalesce(m.source, 'measured') AS source, coalesce(m.kind, '?') AS kind,
               coalesce(m.label, '') AS label, m.title, m.paper, m.card, r.output_bits,
               d.bit_depth AS dataset_bits, {', '.join(extra)}
        FROM runs r LEFT JOIN methods m ON m.method = r.method
             LEFT JOIN datasets d ON d.dataset = r.dataset
        ORDER BY r.dataset, r.split, r.method""").df()
    return df


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
    ci = confidence_intervals(con)
    if ci is not None and len(df):
        keys = [k for k in ("run_id", "metric", "region", "spec_id") if k in ci.columns]
        df = df.merge(ci, on=keys, how="left")
    else:
        df["ci_low"] = float("nan")
        df["ci_high"] = float("nan")
    return df.drop(columns=["spec"])


def _find(con, required: set[str], prefer: tuple[str, ...] = ()) -> tuple[str, list[str]] | None:
    rel = relations(con)
    for name in [*[p for p in prefer if p in rel], *sorted(rel)]:
        cols = rel[name]
        if required <= set(cols):
            return name, cols
    return None


def confidence_intervals(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    found = _find(con, {"run_id", "metric", "ci_low", "ci_high"}, CI_RELATIONS)
    if found is None:
        return None
    name, cols = found
    keys = [k for k in ("run_id", "metric", "region", "spec_id") if k in cols]
    sql = f'SELECT {", ".join(keys)}, ci_low, ci_high FROM "{name}"'
    return con.execute(sql).df().drop_duplicates(subset=keys)


def paired_tests(con: duckdb.DuckDBPyConnection, run_a: str, run_b: str) -> pd.DataFrame | None:
    """The scorer's paired tests between two runs, or None when no such view exists yet."""
    for a, b in (("run_a", "run_b"), ("run_id_a", "run_id_b")):
        found = _find(con, {a, b, "metric", "p_value"})
        if found is None:
            continue
        name, cols = found
        diff = next((c for c in ("mean_diff", "diff", "delta") if c in cols), None)
        sel = ["metric", f"{diff} AS diff" if diff else "NULL AS diff",
               "ci_low" if "ci_low" in cols else "NULL AS ci_low",
               "ci_high" if "ci_high" in cols else "NULL AS ci_high", "p_value"]
        region = " AND region = 'all'" if "region" in cols else ""
        df = con.execute(f'SELECT {", ".join(sel)} FROM "{name}" WHERE {a} = ? AND {b} = ?'
                         f"{region}", [run_a, run_b]).df()
        if len(df):
            return df
        df = con.execute(f'SELECT {", ".join(sel)} FROM "{name}" WHERE {a} = ? AND {b} = ?'
                         f"{region}", [run_b, run_a]).df()
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
    cols = set(relations(con).get("reported", []))
    if not cols:
        return pd.DataFrame(columns=["method", "dataset", "subset", "metric", "value", "source",
                                     "paper", "table_ref", "notes"])
    where, args = ("WHERE dataset = ?", [dataset]) if dataset else ("", [])
    return con.execute(f"SELECT * FROM reported {where} ORDER BY dataset, paper, table_ref, "
                       "subset, method, metric", args).df()


def unavailable(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Metrics asked for but not computed (no weights here), one row per (board, metric)."""
    if "metric_status" not in relations(con):
        return pd.DataFrame(columns=["dataset", "split", "protocol", "metric", "reason"])
    return con.execute(
        f"SELECT r.dataset, r.split, {board_protocol(con)} AS protocol, s.metric, "
        "any_value(s.reason) AS reason "
        "FROM metric_status s JOIN runs r USING (run_id) WHERE s.status = 'unavailable' "
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
    cols = ["method", "metric", "spec_id", "region", "mean", "n"]
    if "subset_means" not in relations(con):
        return pd.DataFrame(columns=cols)
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
