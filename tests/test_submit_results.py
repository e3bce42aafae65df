"""`deblurbench submit results`: valid uploads are scored like measured runs; every invalid one
is refused with its reasons and leaves the database and outputs unchanged."""

from __future__ import annotations

import hashlib
import shutil
import stat
import zipfile

import duckdb
import numpy as np
import pytest
from conftest import cli
from kit_leaderboard import TEST_IDS, build_results, db

from deblurbench.io import read_image, write_png


@pytest.fixture
def proj(tmp_path_factory, tmp_path):
    """A private copy of the shared tiny results project (submissions change it)."""
    src = build_results(tmp_path_factory.getbasetemp())
    dst = tmp_path / "proj"
    shutil.copytree(src, dst, symlinks=True)
    return dst


def outputs_of(proj, method="box-sharpen"):
    return proj / "outputs" / method / "synthetic-defocus" / "test"


def good_folder(proj, tmp_path):
    d = tmp_path / "upload"
    d.mkdir()
    for i in TEST_IDS:
        shutil.copy(outputs_of(proj) / f"{i}.png", d / f"{i}.png")
    return d


def fingerprint(proj):
    h = hashlib.sha256(db(proj).read_bytes()).hexdigest()
    outs = sorted(p.name for p in (proj / "outputs").iterdir())
    return h, outs


def submit(proj, path, method="my-method", *extra, check=False):
    return cli("submit", "results", str(path), "--dataset", "synthetic-defocus", "--split", "test",
               "--method", method, *extra, cwd=proj, check=check)


def rows(proj, sql, args=()):
    con = duckdb.connect(str(db(proj)), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()
    finally:
        con.close()


def test_valid_folder_and_zip_are_scored_like_the_measured_run(proj, tmp_path):
    card = tmp_path / "card.yaml"
    card.write_text("name: my-method\npaper: https://example.org/paper\n"
                    "description: box sharpening, uploaded\nsubmitter: A. Tester\n")
    submit(proj, good_folder(proj, tmp_path), "my-method", "--card", str(card), check=True)
    zpath = tmp_path / "up.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in TEST_IDS:
            zf.write(outputs_of(proj) / f"{i}.png", f"{i}.png")
    submit(proj, zpath, "my-zip", check=True)
    measured = dict(((i, m), v) for i, m, v in rows(
        proj, "SELECT image_id, metric, value FROM scores WHERE region = 'all' AND run_id = "
              "'box-sharpen/synthetic-defocus/test/defocus'"))
    for name in ("my-method", "my-zip"):
        got = dict(((i, m), v) for i, m, v in rows(
            proj, "SELECT image_id, metric, value FROM scores WHERE region = 'all' AND run_id = ?",
            [f"{name}/synthetic-defocus/test/defocus"]))
        assert got.keys() == measured.keys() and len(got) == len(TEST_IDS) * 3
        for k, v in measured.items():  # same images, same specs: the same numbers
            assert got[k] == pytest.approx(v, rel=1e-12)
        specs = {r[0] for r in rows(proj, "SELECT DISTINCT spec_id FROM scores WHERE run_id = ?",
                                    [f"{name}/synthetic-defocus/test/defocus"])}
        assert specs == {r[0] for r in rows(proj, "SELECT DISTINCT spec_id FROM scores WHERE "
                                            "run_id LIKE 'box-sharpen/%'")}
    src, card_json = rows(proj, "SELECT source, card FROM methods WHERE method = 'my-method'")[0]
    assert src == "submitted" and "https://example.org/paper" in card_json
    assert "A. Tester" in card_json
    assert rows(proj, "SELECT source FROM methods WHERE method = 'my-zip'")[0][0] == "submitted"
    assert (outputs_of(proj, "my-zip") / "coffee-00.png").exists()
    # resubmitting replaces, never duplicates
    submit(proj, zpath, "my-zip", check=True)
    assert rows(proj, "SELECT count(*) FROM scores WHERE run_id LIKE 'my-zip/%' AND "
                      "region = 'all'")[0][0] == len(TEST_IDS) * 3


def _zip(tmp_path, members: dict[str, bytes], name="bad.zip", links=()):
    z = tmp_path / name
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
        for n, target in links:
            info = zipfile.ZipInfo(n)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return z


CASES = {
    "missing": "coffee-01.png: missing",
    "extra": "notes.txt: not a .png file",
    "unknown-id": "zebra.png: extra file, no image 'zebra'",
    "nested": "sub/: nested folder",
    "wrong-size": "expected the blurry input's",
    "truncated": "coffee-01.png: unreadable or corrupt image",
    "symlink": "link.png: symbolic link",
    "upper-case-extension": "coffee-00.PNG: not a .png file",
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_folder_is_refused_and_changes_nothing(proj, tmp_path, case):
    d = good_folder(proj, tmp_path)
    if case == "missing":
        (d / "coffee-01.png").unlink()
    elif case == "extra":
        (d / "notes.txt").write_text("hi")
    elif case == "unknown-id":
        shutil.copy(d / "coffee-00.png", d / "zebra.png")
    elif case == "nested":
        (d / "sub").mkdir()
    elif case == "wrong-size":
        write_png(d / "coffee-00.png", np.zeros((10, 12, 3)), bits=16)
    elif case == "truncated":
        data = (d / "coffee-01.png").read_bytes()
        (d / "coffee-01.png").write_bytes(data[: len(data) // 2])
    elif case == "symlink":
        (d / "link.png").symlink_to(d / "coffee-00.png")
    elif case == "upper-case-extension":
        shutil.copy(d / "coffee-00.png", d / "coffee-00.PNG")
    before = fingerprint(proj)
    proc = submit(proj, d)
    assert proc.returncode == 2
    assert CASES[case] in proc.stderr, proc.stderr
    assert fingerprint(proj) == before


def test_every_problem_is_reported_at_once(proj, tmp_path):
    d = good_folder(proj, tmp_path)
    (d / "coffee-01.png").unlink()
    (d / "extra.png").write_bytes(b"not a png")
    write_png(d / "coffee-00.png", np.zeros((10, 12, 3)), bits=8)
    before = fingerprint(proj)
    proc = submit(proj, d)
    assert "3 problem(s)" in proc.stderr
    for msg in ("coffee-01.png: missing", "extra.png: extra file", "coffee-00.png: 12x10"):
        assert msg in proc.stderr
    assert fingerprint(proj) == before


def test_unsafe_archives_are_refused_before_extraction(proj, tmp_path, monkeypatch):
    good = {f"{i}.png": (outputs_of(proj) / f"{i}.png").read_bytes() for i in TEST_IDS}
    cases = {
        "../evil.png": ("slip.zip", good | {"../evil.png": b"x"}, ()),
        "/abs.png": ("abs.zip", good | {"/abs.png": b"x"}, ()),
        "symbolic link": ("link.zip", good, [("coffee-02.png", "/etc/passwd")]),
        "decompression bomb": ("bomb.zip", good | {"zeros.png": bytes(50 << 20)}, ()),
        "present more than once": ("dup.zip", None, ()),
        "nested folder": ("nest.zip", {f"d/{k}": v for k, v in good.items()}, ()),
    }
    before = fingerprint(proj)
    for expect, (name, members, links) in cases.items():
        if members is None:
            z = tmp_path / name
            with zipfile.ZipFile(z, "w") as zf, pytest.warns(UserWarning):
                for k, v in good.items():
                    zf.writestr(k, v)
                zf.writestr("coffee-00.png", good["coffee-00.png"])
        else:
            z = _zip(tmp_path, members, name, links)
        proc = submit(proj, z)
        assert proc.returncode == 2 and expect in proc.stderr, (expect, proc.stderr)
        assert not (tmp_path / "evil.png").exists() and not (proj / "evil.png").exists()
    big = _zip(tmp_path, good, "big.zip")
    proc = cli("submit", "results", str(big), "--dataset", "synthetic-defocus", "--method", "m",
               cwd=proj, env={"DEBLURBENCH_MAX_UPLOAD_BYTES": "1000"}, check=False)
    assert proc.returncode == 2 and "over the upload limit of 1000" in proc.stderr
    assert fingerprint(proj) == before


def test_names_that_clash_or_bad_cards_are_refused(proj, tmp_path):
    d = good_folder(proj, tmp_path)
    before = fingerprint(proj)
    proc = submit(proj, d, "box-sharpen")
    assert proc.returncode == 2 and "a method plugin of that name exists" in proc.stderr
    card = tmp_path / "c.yaml"
    card.write_text("name: other\n")
    proc = submit(proj, d, "my-method", "--card", str(card))
    assert "card name 'other' differs from --method 'my-method'" in proc.stderr
    card.write_text("name: my-method\nwebsite: x\n")
    proc = submit(proj, d, "my-method", "--card", str(card))
    assert "unknown key 'website'" in proc.stderr
    assert fingerprint(proj) == before
    assert read_image(d / "coffee-00.png").shape[2] == 3  # the upload itself is untouched


def test_the_projects_own_run_folder_is_accepted_with_its_record_kept(proj, tmp_path):
    import json

    run = outputs_of(proj)
    assert (run / "run.json").exists()  # what made `submit results` refuse it before
    original = json.loads((run / "run.json").read_text())
    submit(proj, run, "box-mine", check=True)
    measured = dict(rows(proj, "SELECT image_id || metric, value FROM scores WHERE region = "
                               "'all' AND run_id = 'box-sharpen/synthetic-defocus/test/defocus'"))
    got = dict(rows(proj, "SELECT image_id || metric, value FROM scores WHERE region = 'all' "
                          "AND run_id = 'box-mine/synthetic-defocus/test/defocus'"))
    assert got == pytest.approx(measured, rel=1e-12) and len(got) == len(TEST_IDS) * 3
    rec = json.loads((outputs_of(proj, "box-mine") / "run.json").read_text())
    assert rec["source"] == "submitted" and rec["card"]["from_run"] == "box-sharpen"
    assert rec["device"] == original["device"] and rec["params"] == original["params"]
    assert rec["method_card"]["label"].endswith("(submitted from run box-sharpen)")


@pytest.mark.parametrize(("case", "reason"), [
    ("foreign", "notes.txt: not a .png file"),
    ("other-split", "run.json: a run on synthetic-defocus/val, not synthetic-defocus/test"),
    ("failed", "run.json: the run's status is 'failed', not 'ok'"),
    ("garbage", "run.json: not a run record of this project"),
])
def test_a_run_folder_with_foreign_files_or_a_bad_record_is_refused_whole(proj, tmp_path, case,
                                                                           reason):
    import json

    d = tmp_path / "run"
    shutil.copytree(outputs_of(proj), d)
    rec = json.loads((d / "run.json").read_text())
    if case == "foreign":
        (d / "notes.txt").write_text("hello")
        (d / f"{TEST_IDS[0]}.png").unlink()
    elif case == "other-split":
        (d / "run.json").write_text(json.dumps(rec | {"split": "val"}))
    elif case == "failed":
        (d / "run.json").write_text(json.dumps(rec | {"status": "failed"}))
    else:
        (d / "run.json").write_text("[1, 2]")
    before = fingerprint(proj)
    out = submit(proj, d, "box-mine")
    assert out.returncode != 0
    assert reason in out.stderr
    if case == "foreign":  # the full report: every problem at once
        assert f"{TEST_IDS[0]}.png: missing" in out.stderr
    assert fingerprint(proj) == before
