"""The Python API does what the CLI does: a run, a scored folder and the board, as values."""

from __future__ import annotations

import shutil

import pytest
from kit_leaderboard import TEST_IDS, build_results, means

import deblurbench


@pytest.fixture
def proj(tmp_path_factory, tmp_path, monkeypatch):
    dst = tmp_path / "proj"
    shutil.copytree(build_results(tmp_path_factory.getbasetemp()), dst, symlinks=True)
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(dst))
    monkeypatch.chdir(dst)
    return dst


def test_the_board_is_a_dataframe_per_board_with_the_stored_means(proj):
    boards = deblurbench.board()
    t = boards[("synthetic-defocus", "test", "defocus")].set_index("method")
    ref = means(proj)
    assert set(t.index) == {"identity", "box-sharpen"}
    for m in ("identity", "box-sharpen"):
        assert t.loc[m, "psnr"] == pytest.approx(ref[(m, "psnr")], rel=1e-12)


def test_a_folder_of_restored_images_is_scored_like_the_measured_run(proj, tmp_path):
    up = tmp_path / "up"
    up.mkdir()
    for i in TEST_IDS:
        shutil.copy(proj / "outputs/box-sharpen/synthetic-defocus/test" / f"{i}.png", up)
    res = deblurbench.score_folder(up, "synthetic-defocus", "test", "api-method",
                                   metrics=["psnr", "ssim", "mae"])
    assert res["n_images"] == len(TEST_IDS)
    ref = means(proj)
    assert res["means"]["psnr"] == pytest.approx(ref[("box-sharpen", "psnr")], rel=1e-12)
    assert "api-method" in set(deblurbench.board()[("synthetic-defocus", "test",
                                                    "defocus")]["method"])


def test_a_method_runs_on_a_split_and_returns_its_record(proj):
    shutil.rmtree(proj / "outputs/identity/synthetic-defocus/test")
    rec = deblurbench.run_method("identity", "synthetic-defocus", "test")
    out = proj / "outputs/identity/synthetic-defocus/test"
    assert rec["status"] == "ok" and sorted(p.stem for p in out.glob("*.png")) == TEST_IDS
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        deblurbench.nope  # noqa: B018
