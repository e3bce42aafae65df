"""Migrations of the results database, applied in order; ``schema_version`` records each one."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the contract tables of DESIGN.md
    """
    CREATE TABLE datasets (
        dataset VARCHAR PRIMARY KEY, version VARCHAR, title VARCHAR, license VARCHAR,
        bit_depth INTEGER, card JSON);
    CREATE TABLE images (
        dataset VARCHAR, split VARCHAR, image_id VARCHAR, blurry VARCHAR, sharp VARCHAR,
        height INTEGER, width INTEGER, bit_depth INTEGER,
        PRIMARY KEY (dataset, split, image_id));
    CREATE TABLE methods (
        method VARCHAR PRIMARY KEY, version VARCHAR, source VARCHAR, kind VARCHAR,
        title VARCHAR, paper VARCHAR, label VARCHAR, card JSON);
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY, method VARCHAR, method_version VARCHAR, dataset VARCHAR,
        dataset_version VARCHAR, split VARCHAR, protocol VARCHAR, status VARCHAR,
        error VARCHAR, started VARCHAR, finished VARCHAR, scored VARCHAR, n_images INTEGER,
        latency_ms_per_mp DOUBLE, device VARCHAR, git_rev VARCHAR, config VARCHAR,
        versions JSON, params JSON);
    CREATE TABLE metric_specs (
        spec_id VARCHAR PRIMARY KEY, metric VARCHAR, version VARCHAR, kind VARCHAR,
        direction VARCHAR, spec JSON);
    CREATE TABLE scores (
        run_id VARCHAR, image_id VARCHAR, metric VARCHAR, region VARCHAR, value DOUBLE,
        spec_id VARCHAR, PRIMARY KEY (run_id, image_id, metric, region));
    CREATE TABLE reported (
        method VARCHAR, dataset VARCHAR, subset VARCHAR, metric VARCHAR, value DOUBLE,
        source VARCHAR, paper VARCHAR, table_ref VARCHAR, notes VARCHAR);
    """,
]
