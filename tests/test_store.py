"""The results database: migrations, transactional runs, no duplicates, survival of a kill."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
import yaml
from conftest import cli, kill_scoring_after
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblurbench.io import read_image, write_png
from deblurbench.store.db import connect, schema_version
from deblurbench.store.schema import MIGRATIONS

CONTRACT = {"datasets", "images", "methods", "runs", "scores", "reported", "metric_specs",
            "schema_version"}


def db_state(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        scores = con.execute("SELECT run_id, image_id, metric, region, value FROM scores "
                             "ORDER BY ALL").fetchall()
        runs = con.execute("SELECT run_id, status, scored, n_images FROM runs ORDER BY ALL").fetchall()
    finally:
        con.close()
    return scores, runs


def test_migrations_create_the_contract_tables_once(tmp_path):
    con = connect(tmp_path / "r.duckdb")
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert CONTRACT <= tables
    assert schema_version(con) == len(MIGRATIONS)
    con.close()
    con = connect(tmp_path / "r.duckdb")  # reopening applies nothing twice
    assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    con.close()


def test_scores_equal_an_independent_computation_and_reruns_do_not_duplicate(prepared):
    for m in ("identity", "unsharp-mask"):
        cli("methods", "run", m, "--dataset", "synthetic-defocus", cwd=prepared)
    cli("score", cwd=prepared)
    db = prepared / "leaderboard/results.duckdb"
    first = db_state(db)
    cli("score", cwd=prepared)
    assert db_state(db)[0] == first[0]  # same rows, same values, no duplicates
    con = duckdb.connect(str(db), read_only=True)
    rows = dict(((i, m), v) for i, m, v in con.execute(
        "SELECT image_id, metric, value FROM scores WHERE run_id = "
        "'unsharp-mask/synthetic-defocus/test/defocus'").fetchall())
    assert len(rows) == 2 * 3
    specs = con.execute("SELECT metric, spec FROM metric_specs").fetchall()
    con.close()
    raw = prepared / "datasets/synthetic-defocus/raw/test"
    out = read_image(prepared / "outputs/unsharp-mask/synthetic-defocus/test/coffee-00.png")
    sharp = read_image(raw / "sharp/coffee-00.png")
    assert rows[("coffee-00", "psnr")] == pytest.approx(
        peak_signal_noise_ratio(sharp.astype(np.float64), out.astype(np.float64), data_range=1.0),
        abs=1e-9)
    assert rows[("coffee-00", "ssim")] == pytest.approx(
        structural_similarity(out, sharp, channel_axis=-1, data_range=1.0), abs=1e-9)
    assert rows[("coffee-00", "mae")] == pytest.approx(float(np.abs(out - sharp).mean()), abs=1e-6)
    spec = dict((m, yaml.safe_load(s)) for m, s in specs)["ssim"]
    assert spec["input_bits"] == 16 and spec["colour_space"] == "RGB" and spec["crop"] == 0
    assert spec["library"] == "scikit-image" and spec["library_version"].startswith("0.")


def test_identical_images_score_psnr_inf_ssim_1_mae_0(prepared):
    from deblurbench.metrics.fidelity import mae, psnr, ssim

    img = read_image(prepared / "datasets/synthetic-defocus/raw/test/sharp/coffee-00.png")
    assert psnr(img, img) == float("inf") and ssim(img, img) == 1.0 and mae(img, img) == 0.0
    off = np.clip(img + 0.01, 0, 1)
    mse = float(np.mean((off.astype(np.float64) - img) ** 2))
    assert psnr(off, img) == pytest.approx(10 * np.log10(1 / mse))


def make_big_split(project, n=36, size=320):
    """Many larger pairs written directly, so that scoring takes long enough to be killed."""
    rng = np.random.default_rng(1)
    base = project / "datasets/synthetic-defocus/raw"
    for split in ("train", "val", "test"):
        for i in range(n if split == "test" else 1):
            sharp = rng.random((size, size, 3)).astype(np.float32)
            write_png(base / split / "sharp" / f"img-{i:03d}.png", sharp)
            write_png(base / split / "blurry" / f"img-{i:03d}.png", sharp * 0.9)
    cli("datasets", "prepare", "synthetic-defocus", cwd=project)
    cli("methods", "run", "identity", "--dataset", "synthetic-defocus", cwd=project)


def kill_scoring_midway(project) -> None:
    kill_scoring_after(project, 3, 36, "--method", "identity")


def test_a_scoring_run_killed_midway_leaves_the_database_as_it_was(project):
    make_big_split(project)
    db = project / "leaderboard/results.duckdb"
    # 1. Killed during the very first scoring: no trace of the run, no partial scores.
    kill_scoring_midway(project)
    scores, runs = db_state(db) if db.exists() else ([], [])
    assert scores == [] and runs == []
    # 2. A complete scoring, then a rescoring killed midway: the complete one survives intact.
    #    (The rescoring is asked for per blur level, so it cannot reuse the stored scores.)
    cli("score", "--method", "identity", "--no-regions", cwd=project)
    complete = db_state(db)
    assert len(complete[0]) == 36 * 3 and complete[1][0][1] == "ok"
    kill_scoring_after(project, 3, 36, "--method", "identity", "--regions")
    assert db_state(db) == complete
    # 3. A rerun resumes to a complete state: the same whole-image values, no duplicates.
    cli("score", "--method", "identity", "--regions", cwd=project)
    after = db_state(db)
    whole = [r for r in after[0] if r[3] == "all"]
    assert whole == complete[0] and len(after[0]) > len(whole) and len(after[1]) == 1


def test_a_rescoring_of_unchanged_outputs_reuses_the_stored_scores_and_a_changed_one_does_not(
        project):
    """A run redone with the same bytes (only its timings differ) keeps its scores; the
    record is refreshed. Changing one output's bytes makes the next scoring compute again."""
    import json


    make_big_split(project, n=4, size=64)
    db = project / "leaderboard/results.duckdb"
    first = cli("score", "--method", "identity", "--no-regions", cwd=project).stdout
    assert "scores reused" not in first
    before = db_state(db)
    run_json = project / "outputs/identity/synthetic-defocus/test/run.json"
    rec = json.loads(run_json.read_text())
    rec["finished"] = "2099-01-01T00:00:00+00:00"  # another run, the same bytes
    run_json.write_text(json.dumps(rec))
    again = cli("score", "--method", "identity", "--no-regions", cwd=project).stdout
    assert "scores reused: same outputs and specs" in again
    after = db_state(db)
    assert after[0] == before[0]
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT finished FROM runs").fetchone()[0] == "2099-01-01T00:00:00+00:00"
    con.close()
    out = project / "outputs/identity/synthetic-defocus/test/img-000.png"
    write_png(out, read_image(out) * 0.5)
    third = cli("score", "--method", "identity", "--no-regions", cwd=project).stdout
    assert "scores reused" not in third
    changed = {r[:4]: r[4] for r in db_state(db)[0]}
    old = {r[:4]: r[4] for r in before[0]}
    differ = {k[1] for k in old if changed[k] != old[k]}
    assert differ == {"img-000"}


def test_a_run_taken_out_of_the_pipeline_leaves_the_board_once_its_outputs_are_gone(prepared):
    """A measured run no longer in params.yaml stays while its images are there (it can still
    be reviewed) and is dropped once its outputs folder is gone; pipeline runs stay."""
    import shutil

    for m in ("identity", "unsharp-mask", "wiener"):
        cli("methods", "run", m, "--dataset", "synthetic-defocus", cwd=prepared)
    cli("score", "--method", "wiener", cwd=prepared)
    db = prepared / "leaderboard/results.duckdb"

    def methods():
        con = duckdb.connect(str(db), read_only=True)
        try:
            return sorted(r[0] for r in con.execute("SELECT method FROM runs").fetchall())
        finally:
            con.close()

    out = cli("score", cwd=prepared).stdout
    assert "dropped" not in out and methods() == ["identity", "unsharp-mask", "wiener"]
    shutil.rmtree(prepared / "outputs/wiener")
    out = cli("score", cwd=prepared).stdout
    assert ("wiener/synthetic-defocus/test/defocus: dropped from the board (no longer in the "
            "pipeline, outputs folder gone)") in out
    assert methods() == ["identity", "unsharp-mask"]
