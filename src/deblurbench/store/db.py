"""Connections, migrations and transactional writes of the results database.

A run's rows are replaced inside one transaction (delete, then insert), so a rerun never
duplicates and a crash mid-write leaves the previous state: DuckDB rolls back what was not
committed when the file is next opened.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb

from deblurbench import provenance
from deblurbench.store.schema import MIGRATIONS


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and migrate, unless read-only) the database at ``path``."""
    path = Path(path)
    if read_only:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no results database yet; run `deblurbench score`")
        return duckdb.connect(str(path), read_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    migrate(con)
    return con


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied VARCHAR)")
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    current = schema_version(con)
    for version, sql in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, provenance.now()])
    return len(MIGRATIONS)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def upsert(con: duckdb.DuckDBPyConnection, table: str, row: dict, keys: Iterable[str]) -> None:
    """Replace the row with the same key columns (delete + insert keeps DuckDB's PKs simple)."""
    keys = list(keys)
    where = " AND ".join(f"{k} = ?" for k in keys)
    con.execute(f"DELETE FROM {table} WHERE {where}", [row[k] for k in keys])
    cols = list(row)
    vals = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in row.values()]
    con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                vals)


def replace_run(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Drop a run's previous rows (inside the caller's transaction) before writing it anew."""
    con.execute("DELETE FROM scores WHERE run_id = ?", [run_id])
    con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
    for table in RUN_TABLES:
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    con.execute("DELETE FROM paired_comparisons WHERE run_a = ? OR run_b = ?", [run_id, run_id])


#: Tables (migration 2) whose rows belong to one run and are replaced with it.
RUN_TABLES = ("metric_status", "score_failures", "score_aggregates")


def stage_rows(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Staging rows (run_id, fingerprint, image_id, metric, region, value, spec_id, reason),
    committed per image so that a killed scoring resumes; the public tables are untouched."""
    if rows:
        con.executemany("INSERT INTO score_staging VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def staged_images(con: duckdb.DuckDBPyConnection, run_id: str, fingerprint: str) -> set[str]:
    """Images already scored by an interrupted scoring of the same inputs; drops stale ones."""
    con.execute("DELETE FROM score_staging WHERE run_id = ? AND fingerprint <> ?",
                [run_id, fingerprint])
    return {r[0] for r in con.execute("SELECT DISTINCT image_id FROM score_staging WHERE "
                                      "run_id = ? AND image_id <> '__done__'",
                                      [run_id]).fetchall()}


def insert_scores(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Rows of (run_id, image_id, metric, region, value, spec_id)."""
    if rows:
        con.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?)", rows)


REPORTED_COLUMNS = ["method", "dataset", "subset", "metric", "value", "source", "paper",
                    "table_ref", "notes"]


def replace_reported(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """The papers' numbers, all replaced in one transaction."""
    with transaction(con):
        con.execute("DELETE FROM reported")
        con.executemany(f"INSERT INTO reported ({', '.join(REPORTED_COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(REPORTED_COLUMNS))})",
                        [[r[c] for c in REPORTED_COLUMNS] for r in rows])


def method_source(path: str | Path, method: str) -> str | None:
    """Where the database's method ``method`` came from (measured, submitted), or None."""
    if not Path(path).exists():
        return None
    con = connect(path, read_only=True)
    try:
        row = con.execute("SELECT source FROM methods WHERE method = ?", [method]).fetchone()
    finally:
        con.close()
    return row[0] if row else None
