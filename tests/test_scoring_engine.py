"""The engine end to end on a tiny project: staging/resume, idempotence, failures, aggregates,
paired comparisons, unavailable metrics, cost columns, aligned ground truth."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from conftest import cli, kill_scoring_after

from deblurbench.io import read_image, write_png
from deblurbench.metrics.scorer import ScoreError, check_output_image

GAIN = """name: gain
version: "1.0"
title: Gain (a fixed brightening, test method)
entry: gain:Gain
kind: baseline
description: Multiplies the input by 1.05; a second method for paired comparisons.
label: test
"""
GAIN_PY = """import torch
from deblurbench.methods.base import Method


class Gain(Method):
    def restore(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch * 1.05).clamp(0, 1)
"""
DB = "leaderboard/results.duckdb"


def q(project, sql, args=()):
    con = duckdb.connect(str(project / DB), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()
    finally:
        con.close()


@pytest.fixture
def two_runs(prepared):
    (prepared / "methods/gain").mkdir()
    (prepared / "methods/gain/method.yaml").write_text(GAIN)
    (prepared / "methods/gain/gain.py").write_text(GAIN_PY)
    for m in ("identity", "gain"):
        cli("methods", "run", m, "--dataset", "synthetic-defocus", cwd=prepared)
    return prepared


def score(project, *extra, check=True):
    return cli("score", "--method", "identity", "--method", "gain", *extra, cwd=project,
               check=check)


def test_scores_aggregates_paired_tests_and_rerun_idempotence(two_runs):
    p = two_runs
    score(p, "--metric", "psnr", "--metric", "mae", "--metric", "ms_ssim",
          "--metric", "pba_blur_score", "--metric", "lpips_alex")
    rows = q(p, "SELECT run_id, image_id, metric, region, value FROM scores ORDER BY ALL")
    assert {r[2] for r in rows} == {"psnr", "mae"} and len(rows) == 2 * 2 * 2
    # per-image failures (64 px images are too small for MS-SSIM and PBA) are recorded, not
    # scored, and the run goes on; lpips has no weights here: unavailable with the reason.
    st = {(r, m): (s, why, n, f) for r, m, s, why, n, f in q(
        p, "SELECT run_id, metric, status, reason, n_scored, n_failed FROM metric_status")}
    rid = "identity/synthetic-defocus/test/defocus"
    assert st[(rid, "ms_ssim")][0] == "ok" and st[(rid, "ms_ssim")][2:] == (0, 2)
    assert st[(rid, "lpips_alex")][0] == "unavailable"
    assert "alexnet-owt-7be5be79.pth" in st[(rid, "lpips_alex")][1]
    fails = q(p, "SELECT image_id, metric, reason FROM score_failures WHERE run_id = ?", [rid])
    assert len(fails) == 4 and all("small" in f[2] or "at least" in f[2] for f in fails)
    # aggregates: CI contains the mean of the stored per-image values
    for run, metric, n, mean, lo, hi in q(p, "SELECT run_id, metric, n, mean, ci_low, ci_high "
                                             "FROM score_aggregates WHERE region = 'all'"):
        vals = [r[4] for r in rows if r[0] == run and r[2] == metric]
        assert n == 2 and mean == pytest.approx(np.mean(vals)) and lo <= mean <= hi
    # paired comparison identity vs gain over the same images
    pc = q(p, "SELECT run_a, run_b, metric, n, mean_diff, p_value FROM paired_comparisons "
              "WHERE metric = 'mae'")
    assert len(pc) == 1 and pc[0][3] == 2
    a_vals = {r[1]: r[4] for r in rows if r[0] == pc[0][0] and r[2] == "mae"}
    b_vals = {r[1]: r[4] for r in rows if r[0] == pc[0][1] and r[2] == "mae"}
    assert pc[0][4] == pytest.approx(np.mean([a_vals[k] - b_vals[k] for k in a_vals]))
    assert q(p, "SELECT count(*) FROM run_metric_summary")[0][0] >= 4
    assert q(p, "SELECT count(*) FROM score_staging")[0][0] == 0  # staging emptied
    versions = json.loads(q(p, "SELECT versions FROM runs WHERE run_id = ?", [rid])[0][0])
    assert versions["pyiqa"] != "absent" and "scoring_git_rev" in versions
    # rerun: same rows, nothing duplicated anywhere
    before = {t: q(p, f"SELECT * EXCLUDE ({c}) FROM {t} ORDER BY ALL") for t, c in
              (("scores", "value"), ("metric_status", "reason"),
               ("paired_comparisons", "p_value"), ("score_failures", "reason"))}
    score(p, "--metric", "psnr", "--metric", "mae", "--metric", "ms_ssim",
          "--metric", "pba_blur_score", "--metric", "lpips_alex")
    assert q(p, "SELECT run_id, image_id, metric, region, value FROM scores ORDER BY ALL") == rows
    for t, c in (("scores", "value"), ("metric_status", "reason"),
                 ("paired_comparisons", "p_value"), ("score_failures", "reason")):
        assert q(p, f"SELECT * EXCLUDE ({c}) FROM {t} ORDER BY ALL") == before[t], t


def test_regions_and_cost_columns(two_runs):
    p = two_runs
    rec_path = p / "outputs/gain/synthetic-defocus/test/run.json"
    rec = json.loads(rec_path.read_text())
    rec["cost"] = {"params": 0, "flops_per_mp": 3.0e6, "latency_ms_per_mp": 1.5,
                   "peak_rss_mb": 512.0, "peak_gpu_mb": None}
    rec_path.write_text(json.dumps(rec))
    score(p, "--metric", "psnr", "--metric", "mae", "--regions")
    regs = q(p, "SELECT DISTINCT region FROM scores")
    assert {r[0] for r in regs} - {"all"} <= {"slight", "mild", "moderate", "severe"}
    if q(p, "SELECT region_source FROM runs LIMIT 1")[0][0] is not None:
        assert len(regs) >= 2  # the PBA module is present: at least one level was scored
    cost = q(p, "SELECT n_params, flops_per_mp, latency_ms_per_mp, peak_rss_mb FROM runs "
                "WHERE method = 'gain'")
    assert cost == [(0, 3.0e6, 1.5, 512.0)]


def test_wrong_size_output_fails_the_run_naming_the_image_and_keeps_the_others(two_runs):
    p = two_runs
    score(p, "--metric", "psnr")
    good = q(p, "SELECT * FROM scores WHERE run_id LIKE 'identity/%' ORDER BY ALL")
    out = p / "outputs/gain/synthetic-defocus/test/coffee-01.png"
    write_png(out, np.zeros((10, 12, 3), np.float32))
    proc = score(p, "--metric", "psnr", check=False)
    assert proc.returncode == 1 and "coffee-01" in proc.stderr and "12x10" in proc.stderr
    runs = dict(q(p, "SELECT method, status FROM runs"))
    assert runs == {"identity": "ok", "gain": "failed"}
    assert q(p, "SELECT count(*) FROM scores WHERE run_id LIKE 'gain/%'")[0][0] == 0
    assert q(p, "SELECT * FROM scores WHERE run_id LIKE 'identity/%' ORDER BY ALL") == good
    err = q(p, "SELECT error FROM runs WHERE method = 'gain'")[0][0]
    assert "coffee-01" in err


def test_an_8_bit_output_of_16_bit_data_is_recorded_and_labelled(two_runs):
    """The run keeps the lowest bit depth of its output files; the board says so beside it."""
    p = two_runs
    out = p / "outputs/gain/synthetic-defocus/test/coffee-01.png"
    write_png(out, read_image(out), bits=8)
    score(p, "--metric", "psnr")
    bits = dict(q(p, "SELECT method, output_bits FROM runs"))
    assert bits == {"identity": 16, "gain": 8}
    board = cli("leaderboard", "--print", cwd=p).stdout
    notes = {ln.split(":")[0].strip(): ln for ln in board.splitlines() if ": " in ln}
    assert "8-bit outputs of 16-bit data" in notes["gain"]
    assert "-bit outputs" not in notes["identity"]


def test_nan_output_is_refused_with_the_image_id():
    img = np.zeros((4, 5, 3), np.float32)
    img[1, 1, 0] = np.nan
    with pytest.raises(ScoreError, match="'im-7'.*1 NaN"):
        check_output_image(img, "im-7", 4, 5)
    with pytest.raises(ScoreError, match="expected 5x4"):
        check_output_image(np.zeros((4, 4, 3), np.float32), "im-7", 4, 5)


def test_a_killed_scoring_resumes_without_rescoring_finished_images(project):
    rng = np.random.default_rng(1)
    base = project / "datasets/synthetic-defocus/raw"
    n = 30
    for split, k in (("train", 1), ("val", 1), ("test", n)):
        for i in range(k):
            sharp = rng.random((320, 320, 3)).astype(np.float32)
            write_png(base / split / "sharp" / f"img-{i:03d}.png", sharp)
            write_png(base / split / "blurry" / f"img-{i:03d}.png", sharp * 0.9)
    cli("datasets", "prepare", "synthetic-defocus", cwd=project)
    cli("methods", "run", "identity", "--dataset", "synthetic-defocus", cwd=project)
    # Images are staged a batch at a time: with four per batch, the kill lands after two.
    kill_scoring_after(project, 8, n, "--method", "identity", "--metric", "psnr",
                       "--metric", "ssim", "--batch-size", "4")
    con = duckdb.connect(str(project / DB), read_only=True)
    staged = con.execute("SELECT count(DISTINCT image_id) FROM score_staging").fetchone()[0]
    public = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    con.close()
    assert staged >= 8 and public == 0
    again = cli("score", "--method", "identity", "--metric", "psnr", "--metric", "ssim",
                cwd=project)
    first = again.stderr.split(f"/{n} [")[0].rsplit("| ", 1)[-1]
    assert int(first) == staged  # the progress bar starts where the killed run stopped
    rows = q(project, "SELECT image_id, metric, value FROM scores")
    assert len(rows) == 2 * n
    sharp = read_image(base / "test/sharp/img-000.png")
    blurry = read_image(base / "test/blurry/img-000.png")
    mse = float(np.mean((sharp.astype(np.float64) - blurry) ** 2))
    assert {(i, m): v for i, m, v in rows}[("img-000", "psnr")] == pytest.approx(
        10 * np.log10(1 / mse), abs=1e-9)
