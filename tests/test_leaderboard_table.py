"""Leaderboard tables: ranking by direction, specs never mixed, snapshot under a writer, export."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, cli
from kit_leaderboard import build_results, db, means

from deblurbench.leaderboard import table
from deblurbench.leaderboard.snapshot import NoDatabase, open_snapshot, snapshot
from deblurbench.store import queries


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return build_results(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def _snapdir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBLURBENCH_SNAPSHOT_DIR", str(tmp_path / "snaps"))


def boards_of(path):
    con = open_snapshot(path)
    try:
        return table.load_boards(con)
    finally:
        con.close()


def test_sorting_and_best_marks_follow_each_metrics_direction(results):
    ref = means(results)
    board = boards_of(db(results))[("synthetic-defocus", "test", "defocus")]
    assert {c.key: c.direction for c in board.columns} == {"psnr": "higher", "ssim": "higher",
                                                           "mae": "lower"}
    for key in ("psnr", "ssim", "mae"):
        t, _ = table.view(board, sort_by=key)
        higher = key != "mae"
        expect = sorted(["identity", "box-sharpen"], key=lambda m: ref[(m, key)],
                        reverse=higher)
        assert list(t["method"]) == expect
        assert t.loc[0, f"rank:{key}"] == 1 and t.loc[1, f"rank:{key}"] == 2
        assert t.loc[0, key] == pytest.approx(ref[(expect[0], key)], rel=1e-12)
    # mean rank over the chosen metrics, documented as the average of per-metric ranks
    t, _ = table.view(board, rank_by=["psnr", "mae"])
    for r in t.itertuples():
        ranks = [1 + sum(ref[(o, k)] > ref[(r.method, k)] if k != "mae" else
                         ref[(o, k)] < ref[(r.method, k)] for o in ("identity", "box-sharpen"))
                 for k in ("psnr", "mae")]
        assert t.set_index("method").loc[r.method, table.MEAN_RANK] == np.mean(ranks)


def test_identity_floor_survives_filters_and_labels_are_honest(results):
    board = boards_of(db(results))[("synthetic-defocus", "test", "defocus")]
    t, _ = table.view(board, kinds=["classical"], sources=["measured"])
    assert set(t["method"]) == {"identity", "box-sharpen"}
    t, _ = table.view(board, kinds=["learned"])
    assert list(t["method"]) == ["identity"]  # nothing learned here, the floor stays
    labels = dict(zip(board.table["method"], board.table["label"]))
    assert labels["identity"].startswith("floor") and "CPU" in labels["identity"]
    ref = means(results)
    top, low = sorted(["identity", "box-sharpen"], key=lambda m: -ref[(m, "psnr")])
    html = table.to_html(*table.view(board, sort_by="psnr"), board)
    assert html.index(f'data-method="{top}"') < html.index(f'data-method="{low}"')
    assert 'class="best"' in html and 'class="second"' in html
    con = duckdb.connect(str(db(results)), read_only=True)
    ci = con.execute("SELECT ci_low, ci_high FROM run_metric_summary WHERE metric = 'psnr' "
                     "AND region = 'all' AND run_id LIKE 'identity/%'").fetchone()
    con.close()
    assert f"95% CI [{ci[0]:.4f}, {ci[1]:.4f}]; rank" in html  # the scorer's interval, shown


def test_a_database_of_the_first_schema_is_migrated_on_its_snapshot_and_shows_na(results,
                                                                                 tmp_path):
    """A database written before the scorer's CIs, cost columns and views (schema version 1,
    the contract tables only): its private snapshot is migrated, so the board reads the same
    views, and what the old file never held shows as n/a."""
    from deblurbench.store.schema import MIGRATIONS

    old = tmp_path / "old.duckdb"
    con = duckdb.connect(str(old))
    con.execute(MIGRATIONS[0])
    con.execute("CREATE TABLE schema_version (version INTEGER, applied VARCHAR)")
    con.execute("INSERT INTO schema_version VALUES (1, 'then')")
    con.execute(f"ATTACH '{db(results)}' AS new (READ_ONLY)")
    for t in ("datasets", "images", "methods", "metric_specs", "scores", "reported"):
        con.execute(f"INSERT INTO {t} SELECT * FROM new.{t}")
    cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'runs' AND table_catalog = 'old' "
                                      "ORDER BY ordinal_position").fetchall()]
    con.execute(f"INSERT INTO runs SELECT {', '.join(cols)} FROM new.runs")
    con.close()
    board = boards_of(old)[("synthetic-defocus", "test", "defocus")]
    t, cols = table.view(board)
    html = table.to_html(t, cols, board, show_ci=True)
    assert "95% CI n/a" in html and "[" not in html.split("<tbody>")[1].split("rank")[0]
    assert t["params (M)"].isna().all() and t["latency ms/MP"].notna().all()
    con = open_snapshot(old)
    assert queries.paired_tests(con, "identity/synthetic-defocus/test/defocus",
                                "box-sharpen/synthetic-defocus/test/defocus") is None
    assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(
        MIGRATIONS)
    con.close()
    assert duckdb.connect(str(old), read_only=True).execute(  # the file itself is untouched
        "SELECT max(version) FROM schema_version").fetchone()[0] == 1


def test_scores_under_different_specs_are_separate_columns(results, tmp_path):
    copy = tmp_path / "r.duckdb"
    shutil.copy(db(results), copy)
    con = duckdb.connect(str(copy))
    con.execute("INSERT INTO metric_specs SELECT 'psnr-0000000000ff', metric, 'other', kind, "
                "direction, spec FROM metric_specs WHERE metric = 'psnr'")
    con.execute("UPDATE scores SET spec_id = 'psnr-0000000000ff' WHERE metric = 'psnr' AND "
                "run_id LIKE 'box-sharpen/%'")
    con.close()
    board = boards_of(copy)[("synthetic-defocus", "test", "defocus")]
    psnr_cols = [c.key for c in board.columns if c.metric == "psnr"]
    assert len(psnr_cols) == 2 and "psnr@0000ff" in psnr_cols
    t, _ = table.view(board)
    ranked = t.set_index("method")
    for k in psnr_cols:  # each column ranks only its own method: both are "1st of 1"
        assert ranked[f"rank:{k}"].dropna().tolist() == [1.0]
    # a mean rank over both psnr columns needs both: nobody has both, so n/a, not a guess
    t, _ = table.view(board, rank_by=psnr_cols)
    assert t[table.MEAN_RANK].isna().all()


def test_scores_against_aligned_ground_truth_sit_on_a_board_of_their_own(results, tmp_path):
    copy = tmp_path / "r.duckdb"
    shutil.copy(db(results), copy)
    con = duckdb.connect(str(copy))
    run = con.execute("SELECT run_id FROM runs WHERE method = 'identity'").fetchone()[0]
    con.execute("INSERT INTO runs SELECT * REPLACE (run_id || '/aligned' AS run_id, "
                "'aligned' AS reference) FROM runs WHERE run_id = ?", [run])
    con.execute("INSERT INTO scores SELECT * REPLACE (run_id || '/aligned' AS run_id, "
                "value + 1 AS value) FROM scores WHERE run_id = ? AND metric = 'psnr'", [run])
    con.close()
    ref = means(results)
    boards = boards_of(copy)
    original = boards[("synthetic-defocus", "test", "defocus")]
    aligned = boards[("synthetic-defocus", "test", "defocus+aligned")]
    # one row per method on each board, each with its own reference's numbers
    assert sorted(original.table["method"]) == ["box-sharpen", "identity"]
    orig = original.table.set_index("method")
    assert orig.loc["identity", "psnr"] == pytest.approx(ref[("identity", "psnr")], rel=1e-12)
    assert list(aligned.table["method"]) == ["identity"]
    assert aligned.table.loc[0, "psnr"] == pytest.approx(ref[("identity", "psnr")] + 1)
    # the app's per-image and per-level views keep to the chosen board's runs
    con = open_snapshot(copy)
    try:
        per_image = queries.image_scores(con, "synthetic-defocus", "test",
                                         aligned.table["run_id"])
    finally:
        con.close()
    shown = table.on_board(per_image, aligned)
    assert set(shown["run_id"]) == {f"{run}/aligned"} and set(shown["metric"]) == {"psnr"}
    assert table.on_board(per_image.iloc[:0], original).empty


def test_snapshot_reads_committed_state_while_a_writer_holds_the_lock(results, tmp_path):
    live = tmp_path / "live.duckdb"
    shutil.copy(db(results), live)
    writer = subprocess.Popen([sys.executable, "-c", f"""
import duckdb, sys, time
con = duckdb.connect({str(live)!r})
con.execute("INSERT INTO reported VALUES ('committed', 'x', 'all', 'psnr', 1.0, 'reported', 'P', 'T', NULL)")
con.execute("BEGIN TRANSACTION")
con.execute("INSERT INTO reported VALUES ('uncommitted', 'x', 'all', 'psnr', 2.0, 'reported', 'P', 'T', NULL)")
print('ready', flush=True)
sys.stdin.readline()
con.execute("COMMIT")
print('committed', flush=True)
sys.stdin.readline()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        with pytest.raises(duckdb.IOException):  # the live file is locked for readers
            duckdb.connect(str(live), read_only=True)
        con = open_snapshot(live)
        names = {r[0] for r in con.execute("SELECT method FROM reported WHERE dataset = 'x'")
                 .fetchall()}
        con.close()
        assert names == {"committed"}
        first = snapshot(live)
        assert snapshot(live) is first  # unchanged file: no new copy
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "committed"
        deadline = time.time() + 10
        while snapshot(live).stamp == first.stamp and time.time() < deadline:
            time.sleep(0.1)
        con = open_snapshot(live)
        names = {r[0] for r in con.execute("SELECT method FROM reported WHERE dataset = 'x'")
                 .fetchall()}
        con.close()
        assert names == {"committed", "uncommitted"}
    finally:
        writer.stdin.write("\n")
        writer.stdin.flush()
        writer.wait(timeout=30)
    with pytest.raises(NoDatabase, match="no results database yet"):
        snapshot(tmp_path / "absent.duckdb")


def test_cli_print_and_markdown_out(results, tmp_path):
    out = tmp_path / "lb.md"
    proc = cli("leaderboard", "--print", "--out", str(out), cwd=results)
    md = out.read_text()
    ref = means(results)
    assert "psnr ↑" in md and "mae ↓" in md and "mean rank" in md
    first = max(["identity", "box-sharpen"], key=lambda m: -ref[(m, "mae")])
    lines = [ln for ln in md.splitlines() if ln.startswith("| identity") or
             ln.startswith("| box-sharpen")]
    assert lines[0].startswith(f"| {first}")  # both metrics agree here, so mean rank does
    assert f"{ref[('identity', 'psnr')]:.4f}" in md
    assert "identity" in proc.stdout


def test_export_formats_hold_the_view(results):
    board = boards_of(db(results))[("synthetic-defocus", "test", "defocus")]
    t, cols = table.view(board, sort_by="psnr")
    frame = table.display_frame(t, cols, board, show_ci=True)
    csv = table.export(frame, "csv")
    back = pd.read_csv(pd.io.common.StringIO(csv))
    assert list(back["method"]) == list(t["method"])
    assert back["psnr ↑"].tolist() == pytest.approx(t["psnr"].tolist())
    lo, hi = board.ci[(t.loc[0, "method"], "psnr")]
    assert back.loc[0, "psnr 95% CI"] == f"[{lo:.4f}, {hi:.4f}]" and lo <= t.loc[0, "psnr"] <= hi
    tex = table.export(frame, "latex", "synthetic-defocus")
    assert "\\begin{tabular}" in tex and "box-sharpen" in tex
    assert f"{t.loc[0, 'psnr']:.4f}" in tex
    with pytest.raises(ValueError, match="unknown export format"):
        table.export(frame, "xlsx")


def test_reported_numbers_loaded_beside_not_among_measured(results, tmp_path):
    csv = pd.read_csv(REPO / "leaderboard" / "reported.csv", keep_default_na=False)
    con = open_snapshot(db(results))
    rep = queries.reported(con)
    runs = queries.runs(con)
    con.close()
    assert len(rep) == len(csv)
    row = csv.iloc[0]
    got = rep[(rep["method"] == row["method"]) & (rep["paper"] == row["paper"])
              & (rep["metric"] == row["metric"]) & (rep["table_ref"] == row["table"])]
    assert got["value"].iloc[0] == pytest.approx(float(row["value"]))
    assert set(runs["source"]) == {"measured"}  # reported rows never become runs
    # a bad CSV: every problem named, the table unchanged
    bad = tmp_path / "bad.csv"
    bad.write_text("method,dataset,subset,metric,value,source,paper,table,notes\n"
                   "A,dpdd,all,psnr,abc,reported,P,T1,\n,dpdd,all,psnr,1,reported,P,T1,\n")
    proc = cli("submit", "reported", str(bad), cwd=results, check=False)
    assert proc.returncode == 2
    assert "line 2: value 'abc' is not a number" in proc.stderr
    assert "line 3: empty method" in proc.stderr
    con = open_snapshot(db(results))
    assert len(queries.reported(con)) == len(csv)
    con.close()


def test_paired_differences_equal_an_independent_computation(results):
    con = open_snapshot(db(results))
    d = queries.paired_differences(con, "box-sharpen/synthetic-defocus/test/defocus",
                                   "identity/synthetic-defocus/test/defocus")
    tests = queries.paired_tests(con, "box-sharpen/synthetic-defocus/test/defocus",
                                 "identity/synthetic-defocus/test/defocus")
    raw = con.execute("SELECT r.method, s.image_id, s.metric, s.value FROM scores s JOIN runs r "
                      "USING (run_id)").df()
    con.close()
    w = raw.pivot_table(index=["metric", "image_id"], columns="method", values="value")
    for r in d.itertuples():
        sub = w.loc[r.metric]
        assert r.diff == pytest.approx(float((sub["box-sharpen"] - sub["identity"]).mean()))
        assert r.n_pairs == len(sub)
        stored = tests.set_index("metric").loc[r.metric]  # the scorer's test, same orientation
        assert stored["diff"] == pytest.approx(r.diff)
        assert stored["ci_low"] <= r.diff <= stored["ci_high"] and 0 <= stored["p_value"] <= 1


def test_leaderboard_modules_never_import_methods_or_metrics():
    code = ("import sys, deblurbench.leaderboard.table, deblurbench.store.queries, "
            "deblurbench.leaderboard.snapshot, deblurbench.leaderboard.plots, "
            "deblurbench.leaderboard.viewer, deblurbench.leaderboard.review;"
            "bad = [m for m in sys.modules if m.startswith(('deblurbench.methods', "
            "'deblurbench.metrics'))]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    src = (REPO / "leaderboard" / "app.py").read_text()
    assert "deblurbench.methods" not in src and "deblurbench.metrics" not in src


def test_a_papers_table_prints_a_dash_with_a_reason_where_it_has_no_number():
    import pandas as pd

    from deblurbench.leaderboard.reported_view import reported_html

    wide = pd.DataFrame({"method": ["A", "B"], "psnr ↑": [25.5, float("nan")],
                         "lpips ↓": [None, 0.2]})
    html = reported_html(wide, "not reported in MBSD, Table 1")
    assert html.count('<td class="missing" title="not reported in MBSD, Table 1">–</td>') == 2
    assert "None" not in html and "nan" not in html
    assert "<td>25.5</td>" in html and "<td>0.2</td>" in html
