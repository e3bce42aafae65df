"""`dvc repro` end to end on a tiny copy of the project, and the terminal leaderboard."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import duckdb
import pytest
import yaml
from conftest import BIN, REPO, TINY_PARAMS, cli, make_project


def sh(*args, cwd):
    env = os.environ | {"DEBLURBENCH_ROOT": str(cwd), "DVC_NO_ANALYTICS": "1",
                        "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture
def dvc_project(tmp_path):
    """A git + DVC repo holding the real dvc.yaml and sources, with tiny params."""
    root = make_project(tmp_path / "p")
    shutil.copy(REPO / "dvc.yaml", root)
    shutil.copy(REPO / ".dvcignore", root)
    (root / "leaderboard").mkdir()
    shutil.copy(REPO / "leaderboard" / "reported.csv", root / "leaderboard")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    sh("git", "init", "-q", cwd=root)
    sh(str(BIN / "dvc"), "init", "-q", cwd=root)
    return root


def test_dvc_repro_runs_the_pipeline_then_does_nothing_when_nothing_changed(dvc_project):
    out = sh(str(BIN / "dvc"), "repro", cwd=dvc_project)
    for stage in ("synth", "prepare@synthetic-defocus", "annotate@synthetic-defocus",
                  "run@identity-synthetic-defocus-test",
                  "run@unsharp-mask-synthetic-defocus-test", "score", "leaderboard"):
        assert f"Running stage '{stage}'" in out
    table = (dvc_project / "leaderboard/leaderboard.md").read_text()
    assert "identity" in table and "unsharp-mask" in table
    assert all(m in table for m in ("psnr", "ssim", "mae"))
    metrics = json.loads((dvc_project / "metrics/synthetic-defocus/test/identity.json").read_text())
    assert metrics["status"] == "ok" and metrics["n_images"] == 2 and 15 < metrics["psnr"] < 60
    with duckdb.connect(str(dvc_project / "leaderboard/results.duckdb"), read_only=True) as con:
        n_reported = con.execute("SELECT count(*) FROM reported").fetchone()[0]
    csv_rows = (REPO / "leaderboard/reported.csv").read_text().strip().count("\n")
    assert n_reported == csv_rows  # the papers' numbers ride along, one row per CSV line

    # Bytecode written by any later run of the code is not a change of the sources.
    cache = dvc_project / "src/deblurbench/methods/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "runner.cpython-311.pyc").write_bytes(b"\x00" * 64)
    again = sh(str(BIN / "dvc"), "repro", cwd=dvc_project)
    assert "Running stage" not in again

    shown = json.loads(sh(str(BIN / "dvc"), "metrics", "show", "--json", cwd=dvc_project))
    files = shown[""]["data"]
    assert files["metrics/synthetic-defocus/test/identity.json"]["data"]["psnr"] == metrics["psnr"]
    assert "metrics/synthetic-defocus/test/unsharp-mask.json" in files

    # A params change reruns only what depends on it.
    params = yaml.safe_load((dvc_project / "params.yaml").read_text())
    params["score"]["metrics"] = ["psnr", "mae"]
    (dvc_project / "params.yaml").write_text(yaml.safe_dump(params))
    third = sh(str(BIN / "dvc"), "repro", cwd=dvc_project)
    assert "Running stage 'score'" in third and "Running stage 'synth'" not in third
    assert "Running stage 'run@" not in third
    assert "Running stage 'annotate@" not in third
    summary = json.loads((dvc_project / "annotate/pba/synthetic-defocus/summary.json").read_text())
    assert sum(summary["blurry"]["test"]["share"].values()) == pytest.approx(1.0)
    assert summary["sharp"]["test"]["images"] == metrics["n_images"]


def test_leaderboard_print_shows_both_methods_with_their_means(prepared):
    for m in ("identity", "unsharp-mask"):
        cli("methods", "run", m, "--dataset", "synthetic-defocus", cwd=prepared)
    scored = cli("score", cwd=prepared).stdout
    out = cli("leaderboard", "--print", cwd=prepared).stdout
    assert "synthetic-defocus / test" in out
    assert "identity" in out and "unsharp-mask" in out and "psnr ↑" in out and "mae ↓" in out
    psnr_identity = [l for l in scored.splitlines() if l.startswith("identity/")][0]
    value = psnr_identity.split("psnr=")[1].split()[0]
    assert value in out  # the printed table shows the stored mean
    assert "…" not in out  # nothing truncated, however many metrics
    assert "identity: floor" in out  # each method's honest label, below the table


def test_leaderboard_print_names_unavailable_metrics_and_never_shows_a_number_for_them(prepared):
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["score"]["metrics"] = ["psnr", "fid"]
    (prepared / "params.yaml").write_text(yaml.safe_dump(params))
    cli("methods", "run", "identity", "--dataset", "synthetic-defocus", cwd=prepared)
    cli("score", "--method", "identity", cwd=prepared,
        env={"TORCH_HOME": str(prepared / "no-weights")})
    out = cli("leaderboard", "--print", cwd=prepared).stdout
    assert "psnr ↑" in out and "fid" not in out.split("unavailable here")[0]
    assert "unavailable here (no value, never ranked): fid" in out


def test_every_verb_has_help_and_bad_input_exits_non_zero_with_one_reason(project):
    for verb in (["datasets", "list"], ["datasets", "prepare"], ["synth"], ["methods", "run"],
                 ["score"], ["leaderboard"], ["weights", "download"]):
        assert "usage:" in cli(*verb, "--help", cwd=project).stdout
    proc = cli("weights", "download", "psnr", cwd=project, check=False)
    assert proc.returncode == 2 and "error: no weight files are known for psnr" in proc.stderr
    proc = cli("datasets", "prepare", "nosuch", cwd=project, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown data set 'nosuch'")
    proc = cli("leaderboard", "--print", cwd=project, check=False)
    assert proc.returncode == 2 and "no results database yet" in proc.stderr
    (project / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS | {"runn": {}}))
    proc = cli("score", cwd=project, check=False)
    assert proc.returncode == 2 and "params.yaml: unknown key 'runn' (did you mean 'run'?)" in proc.stderr
    real = TINY_PARAMS["real"] | {"datasets": ["sdd"]}
    (project / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS | {"real": real}))
    proc = cli("score", cwd=project, check=False)
    assert proc.returncode == 2 and ("params.yaml: real.datasets lists sdd but datasets does "
                                     "not; add it to datasets too") in proc.stderr


def test_leaderboard_print_shows_psnr_per_blur_level_when_scored_with_regions(prepared):
    cli("methods", "run", "identity", "--dataset", "synthetic-defocus", cwd=prepared)
    cli("score", "--method", "identity", "--regions", cwd=prepared)
    out = cli("leaderboard", "--print", cwd=prepared).stdout
    assert "psnr per PBA blur level of the input" in out
    with duckdb.connect(str(prepared / "leaderboard/results.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT region, avg(value), count(*) FROM scores WHERE metric = 'psnr' "
                           "AND region <> 'all' GROUP BY region").fetchall()
    assert rows  # the blurred test images have pixels at some PBA level
    line = next(l for l in out.splitlines() if l.strip().startswith("identity") and "(n=" not in l
                and l.count(".") == len(rows))
    for region, mean, n in rows:
        assert f"{region} (n={n})" in out and f"{mean:.4f}" in line
