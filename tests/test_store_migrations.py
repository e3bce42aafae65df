"""Migration 2 upgrades a database written by migration 1 without losing its rows."""

from __future__ import annotations

import duckdb

from deblurbench.store.db import connect, schema_version
from deblurbench.store.schema import MIGRATIONS


def test_a_v1_database_is_upgraded_in_place_keeping_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied VARCHAR)")
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO schema_version VALUES (1, 'then')")
    con.execute("INSERT INTO runs (run_id, method, status) VALUES ('r', 'identity', 'ok')")
    con.execute("INSERT INTO scores VALUES ('r', 'a', 'psnr', 'all', 30.0, 'psnr-x')")
    con.close()
    con = connect(path)
    assert schema_version(con) == len(MIGRATIONS) >= 2
    assert con.execute("SELECT run_id, status, reference, n_params FROM runs").fetchall() == \
        [("r", "ok", None, None)]
    assert con.execute("SELECT value FROM scores").fetchall() == [(30.0,)]
    rels = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"metric_status", "score_failures", "score_staging", "score_aggregates",
            "paired_comparisons", "image_subsets", "run_metric_summary", "subset_means"} <= rels
    con.close()
