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
    # 2: the scoring engine (issue 6): reference mode, region source and method cost on runs;
    # per-metric status, per-image failures, a resumable staging area, aggregates with
    # bootstrap CIs, paired comparisons, image subsets (DPDD indoor/outdoor) and their views.
    """
    ALTER TABLE runs ADD COLUMN reference VARCHAR;
    ALTER TABLE runs ADD COLUMN region_source VARCHAR;
    ALTER TABLE runs ADD COLUMN n_failed INTEGER;
    ALTER TABLE runs ADD COLUMN n_params BIGINT;
    ALTER TABLE runs ADD COLUMN flops_per_mp DOUBLE;
    ALTER TABLE runs ADD COLUMN peak_rss_mb DOUBLE;
    ALTER TABLE runs ADD COLUMN peak_gpu_mb DOUBLE;
    CREATE TABLE metric_status (
        run_id VARCHAR, metric VARCHAR, spec_id VARCHAR, status VARCHAR, reason VARCHAR,
        n_scored INTEGER, n_failed INTEGER, PRIMARY KEY (run_id, metric));
    CREATE TABLE score_failures (
        run_id VARCHAR, image_id VARCHAR, metric VARCHAR, reason VARCHAR,
        PRIMARY KEY (run_id, image_id, metric));
    CREATE TABLE score_staging (
        run_id VARCHAR, fingerprint VARCHAR, image_id VARCHAR, metric VARCHAR, region VARCHAR,
        value DOUBLE, spec_id VARCHAR, reason VARCHAR);
    CREATE TABLE score_aggregates (
        run_id VARCHAR, metric VARCHAR, region VARCHAR, spec_id VARCHAR, n INTEGER,
        mean DOUBLE, ci_low DOUBLE, ci_high DOUBLE, n_boot INTEGER, level DOUBLE,
        PRIMARY KEY (run_id, metric, region));
    CREATE TABLE paired_comparisons (
        run_a VARCHAR, run_b VARCHAR, metric VARCHAR, region VARCHAR, spec_id VARCHAR,
        n INTEGER, mean_diff DOUBLE, ci_low DOUBLE, ci_high DOUBLE, p_value DOUBLE,
        PRIMARY KEY (run_a, run_b, metric, region));
    CREATE TABLE image_subsets (
        dataset VARCHAR, split VARCHAR, image_id VARCHAR, subset VARCHAR,
        PRIMARY KEY (dataset, split, image_id, subset));
    CREATE VIEW run_metric_summary AS
        SELECT r.dataset, r.split, r.protocol, r.reference, r.method, a.run_id, a.metric,
               a.region, a.spec_id, ms.direction, a.n, a.mean, a.ci_low, a.ci_high
        FROM score_aggregates a JOIN runs r USING (run_id)
        LEFT JOIN metric_specs ms ON ms.spec_id = a.spec_id;
    CREATE VIEW subset_means AS
        SELECT s.run_id, r.dataset, r.split, i.subset, s.metric, s.region, s.spec_id,
               count(*) AS n, avg(s.value) AS mean
        FROM scores s JOIN runs r USING (run_id)
        JOIN image_subsets i ON i.dataset = r.dataset AND i.split = r.split
             AND i.image_id = s.image_id
        GROUP BY ALL;
    """,
    # 3: the restored outputs' bit depth (the lowest over a run's images), so an 8-bit
    # submission on 16-bit data says so beside its numbers.
    """
    ALTER TABLE runs ADD COLUMN output_bits INTEGER;
    """,
    # 4: a run's identity beyond (method, data set, split): the method its row is a run of,
    # its variant, the data set it was trained on, the checkpoint (path, sha256, step, how it
    # was selected) and the pretrained weights it used ([] = none / random init, said so).
    """
    ALTER TABLE runs ADD COLUMN base_method VARCHAR;
    ALTER TABLE runs ADD COLUMN variant VARCHAR;
    ALTER TABLE runs ADD COLUMN trained_on VARCHAR;
    ALTER TABLE runs ADD COLUMN checkpoint JSON;
    ALTER TABLE runs ADD COLUMN weights JSON;
    """,
    # 5: what the board reads of a run, in one view next to the tables it reads: the board
    # protocol (the metric protocol, plus the reference when it is not the original ground
    # truth, so scores against aligned ground truth sit on a board of their own), the method's
    # facts and the cost in display units.
    """
    CREATE VIEW board_runs AS
        SELECT r.run_id, r.method, r.dataset, r.split,
               CASE WHEN coalesce(r.reference, 'original') = 'original' THEN r.protocol
                    ELSE r.protocol || '+' || r.reference END AS protocol,
               r.status, r.error, r.n_images, r.config, r.device, r.method_version, r.git_rev,
               r.scored, coalesce(m.source, 'measured') AS source,
               coalesce(m.kind, '?') AS kind, coalesce(m.label, '') AS label, m.title, m.paper,
               m.card, r.output_bits, d.bit_depth AS dataset_bits,
               r.n_params * 1e-6 AS "params (M)", r.flops_per_mp * 1e-9 AS "GFLOPs/MP",
               r.latency_ms_per_mp AS "latency ms/MP",
               coalesce(r.peak_gpu_mb, r.peak_rss_mb) AS "peak mem MB",
               r.trained_on, r.variant, r.checkpoint, r.weights
        FROM runs r LEFT JOIN methods m ON m.method = r.method
             LEFT JOIN datasets d ON d.dataset = r.dataset;
    """,
    # 6: the content fingerprint a run was scored under (outputs, inputs, specs): a rescore
    # with the same one reuses the stored per-image scores instead of computing them again.
    """
    ALTER TABLE runs ADD COLUMN fingerprint VARCHAR;
    """,
]
