"""`deblurbench review --no-launch`: the FiftyOne dataset's slices, fields, masks, heatmaps, tags
and saved views, read back through FiftyOne's Python API in a separate process (its own
MongoDB under a temp folder, shut down with the process).

Every test that starts FiftyOne lives in this file: FiftyOne's database service attaches to any
FiftyOne MongoDB already running on the machine, whatever its database folder, so two such tests
on two pytest-xdist workers would write into each other's database (``--dist loadfile`` keeps a
file's tests on one worker, one after another)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import cli
from kit_leaderboard import TEST_IDS, build_results, db
from realdata_kit import build_sdd, write_card, zip_folder

from deblurbench.annotate.pba import load_npz
from deblurbench.io import read_image

READ_BACK = r"""
import json, sys
import fiftyone as fo
import numpy as np
from deblurbench.io import read_image
ds = fo.load_dataset("deblurbench-synthetic-defocus-test")
out = {"slices": sorted(ds.group_slices), "groups": len(ds), "info": ds.info,
       "mask_targets": {k: {str(i): v for i, v in t.items()} for k, t in ds.mask_targets.items()},
       "views": ds.list_saved_views(), "persistent": ds.persistent}
fields = {}
for sl in ds.group_slices:
    v = ds.select_group_slices([sl])
    fields[sl] = sorted(v.get_field_schema())
    out.setdefault("samples", {})[sl] = {}
    for s in v:
        d = {"tags": s.tags, "filepath": s.filepath}
        for f in ("psnr", "ssim", "mae", "psnr_gain", "misalignment_px"):
            if s.has_field(f):
                d[f] = s[f]
        if s.has_field("pba") and s["pba"] is not None:
            d["pba_mask"] = np.unique(read_image(s["pba"].mask_path)[..., 0] * 255).round().tolist()
            d["pba_path"] = s["pba"].mask_path
        if s.has_field("error") and s["error"] is not None:
            d["error_path"] = s["error"].map_path
            d["error_range"] = list(s["error"].range)
        if s.has_field("blur_map") and s["blur_map"] is not None:
            d["blur_path"] = s["blur_map"].map_path
        out["samples"][sl][s["image_id"]] = d
out["fields"] = fields
w = ds.load_saved_view("worst 20 by PSNR gain over identity")
out["worst"] = [(s["method"], s["image_id"], s["psnr_gain"]) for s in w]
out["misaligned"] = len(ds.load_saved_view("largest misalignment"))
print("JSON" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    root = build_results(tmp_path_factory.getbasetemp())
    fo_dir = tmp_path_factory.mktemp("fiftyone")
    env = {"FIFTYONE_DATABASE_DIR": str(fo_dir / "db"), "FIFTYONE_DATABASE_VALIDATION": "false",
           "FIFTYONE_DO_NOT_TRACK": "true"}
    first = cli("review", "--dataset", "synthetic-defocus", "--no-launch", "--worst-k", "1",
                cwd=root, env=env)
    cli("review", "--dataset", "synthetic-defocus", "--no-launch", "--worst-k", "1", cwd=root,
        env=env)  # rebuild
    proc = subprocess.run([sys.executable, "-c", READ_BACK], capture_output=True, text=True,
                          env=__import__("os").environ | {"DEBLURBENCH_ROOT": str(root), **env},
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.split("JSON", 1)[1])
    return root, data, first.stdout, fo_dir


def test_slices_groups_and_rebuild_is_idempotent(review):
    root, data, stdout, _ = review
    assert data["slices"] == sorted(["blurry", "sharp", "identity", "box-sharpen"])
    assert data["groups"] == len(TEST_IDS)  # built twice, still one group per pair
    assert data["persistent"] is True
    for sl in data["slices"]:
        assert sorted(data["samples"][sl]) == TEST_IDS
    assert "2 groups" in stdout


def test_per_sample_scores_equal_the_database(review):
    root, data, _, _ = review
    con = duckdb.connect(str(db(root)), read_only=True)
    vals = con.execute("SELECT r.method, s.image_id, s.metric, s.value FROM scores s JOIN runs r "
                       "USING (run_id) WHERE s.region = 'all'").fetchall()
    con.close()
    for method, image_id, metric, value in vals:
        assert data["samples"][method][image_id][metric] == pytest.approx(value, rel=1e-12)
    for i in TEST_IDS:
        gain = data["samples"]["box-sharpen"][i]["psnr_gain"]
        expect = (data["samples"]["box-sharpen"][i]["psnr"]
                  - data["samples"]["identity"][i]["psnr"])
        assert gain == pytest.approx(expect)
        assert data["samples"]["identity"][i]["psnr_gain"] == pytest.approx(0.0)


def test_masks_and_heatmaps_hold_the_right_pixels(review):
    root, data, _, _ = review
    assert data["mask_targets"]["pba"] == {"1": "slight", "2": "mild", "3": "moderate",
                                           "4": "severe"}
    err_range = data["info"]["error_range"]
    for i in TEST_IDS:
        blurry = data["samples"]["blurry"][i]
        levels = load_npz(root / "annotate/pba/synthetic-defocus" / f"{i}.npz").pixel_maps()[0]
        mask = np.rint(read_image(blurry["pba_path"])[..., 0] * 255).astype(int)
        assert np.array_equal(mask, levels.astype(int) + 1)
        bm = np.load(root / "datasets/synthetic-defocus/raw/test/blur_map" / f"{i}.npy")
        heat = read_image(blurry["blur_path"])[..., 0]
        assert np.allclose(heat, np.clip(bm / data["info"]["blur_map_range_px"], 0, 1),
                           atol=1 / 255)
        assert "misalignment_px" in data["fields"]["blurry"]
        assert blurry.get("misalignment_px") is None  # synthetic: not measured, not invented
        out = data["samples"]["box-sharpen"][i]
        sharp = read_image(root / "datasets/synthetic-defocus/raw/test/sharp" / f"{i}.png")
        err = np.abs(read_image(out["filepath"]) - sharp).mean(axis=2)
        heat = read_image(out["error_path"])[..., 0]
        assert np.allclose(heat, np.clip(err / err_range, 0, 1), atol=1 / 255 + 1e-6)
        assert out["error_range"] == [0, 255]


def test_worst_tags_and_saved_views(review):
    root, data, _, _ = review
    assert data["views"] == ["worst 20 by PSNR gain over identity", "largest misalignment"]
    gains = [(m, i, data["samples"][m][i]["psnr_gain"]) for m in ("box-sharpen",)
             for i in TEST_IDS]
    assert [tuple(x) for x in data["worst"]] == sorted(gains, key=lambda g: g[2])
    assert data["misaligned"] == 0
    # worst-k with k=1: exactly the lowest-gain output of each method is tagged
    worst_box = min(TEST_IDS, key=lambda i: data["samples"]["box-sharpen"][i]["psnr_gain"])
    assert [i for i in TEST_IDS if "worst-psnr-gain" in
            data["samples"]["box-sharpen"][i]["tags"]] == [worst_box]
    assert sum("worst-psnr-gain" in data["samples"]["identity"][i]["tags"]
               for i in TEST_IDS) == 1
    assert all(not data["samples"]["blurry"][i]["tags"] for i in TEST_IDS)


def test_the_database_service_is_shut_down(review):
    _, _, _, fo_dir = review
    deadline = time.time() + 20
    while time.time() < deadline:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True,
                            check=False).stdout
        if str(fo_dir) not in ps:
            break
        time.sleep(0.5)
    assert str(fo_dir) not in ps, "a mongod for the test database is still running"


def test_sdd_scored_against_the_aligned_ground_truth_as_jdrl_does(project, tmp_path):
    """fetch -> prepare -> align -> run -> score --reference aligned: the aligned run is its own
    run id and spec, and undoes the zoom/shift that the original ground truth still carries."""
    counts = {"train": 1, "test": 3}
    build_sdd(tmp_path / "src", counts)
    zip_folder(tmp_path / "src", tmp_path / "SDD.zip")
    write_card(project, "sdd", counts, None, None)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"] = ["sdd"]
    params["train"]["datasets"] = ["sdd"]
    params["score"]["metrics"] = ["psnr", "mae"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    cli("datasets", "fetch", "sdd", "--from", str(tmp_path / "SDD.zip"), cwd=project)
    for verb in ("prepare", "align"):
        cli("datasets", verb, "sdd", cwd=project)
    cli("methods", "run", "identity", "--dataset", "sdd", cwd=project)
    orig = cli("score", "--method", "identity", cwd=project).stdout
    aligned = cli("score", "--method", "identity", "--reference", "aligned", cwd=project).stdout
    assert "identity/sdd/test/defocus: ok (3 images)" in orig
    assert "identity/sdd/test/defocus/aligned: ok (3 images)" in aligned
    with duckdb.connect(str(project / "leaderboard/results.duckdb"), read_only=True) as con:
        q = ("SELECT r.reference, avg(s.value), any_value(s.spec_id) FROM scores s JOIN runs r "
             "USING (run_id) WHERE s.metric = 'psnr' AND s.region = 'all' GROUP BY 1")
        res = {ref: (v, sid) for ref, v, sid in con.execute(q).fetchall()}
        spec = con.execute("SELECT spec FROM metric_specs WHERE spec_id = ?",
                           [res["aligned"][1]]).fetchone()[0]
    assert res["aligned"][0] > res["original"][0] + 1.0  # alignment removes the zoom/shift
    assert res["aligned"][1] != res["original"][1]  # different definitions, never ranked together
    assert "valid mask" in json.loads(spec)["reference"]

    # The FiftyOne review shows the aligned ground truth and ranks pairs by misalignment.
    env = {"FIFTYONE_DATABASE_DIR": str(tmp_path / "fo-db"),
           "FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_DO_NOT_TRACK": "true"}
    cli("review", "--dataset", "sdd", "--no-launch", cwd=project, env=env)
    read_back = (
        "import json, fiftyone as fo\n"
        "ds = fo.load_dataset('deblurbench-sdd-test')\n"
        "al = ds.select_group_slices(['aligned_sharp'])\n"
        "v = ds.load_saved_view('largest misalignment')\n"
        "print('JSON' + json.dumps({'slices': sorted(ds.group_slices),\n"
        "    'aligned': {s['image_id']: s.filepath for s in al},\n"
        "    'view': [(s['image_id'], s['misalignment_px']) for s in v]}))\n")
    proc = subprocess.run([sys.executable, "-c", read_back], capture_output=True, text=True,
                          env=os.environ | {"DEBLURBENCH_ROOT": str(project), **env},
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("JSON", 1)[1])
    assert got["slices"] == ["aligned_sharp", "blurry", "identity", "sharp"]
    stats = pd.read_parquet(next((project / "datasets/sdd/variants").glob("*/stats.parquet")))
    stats = stats[stats["split"] == "test"].set_index("image_id")["total_flow_mean"]
    assert sorted(got["aligned"]) == sorted(stats.index)
    assert all("/variants/" in p for p in got["aligned"].values())
    want = sorted(stats.items(), key=lambda kv: -kv[1])
    assert [i for i, _ in got["view"]] == [i for i, _ in want]
    assert [m for _, m in got["view"]] == pytest.approx([m for _, m in want])


def test_review_sets_fiftyones_quiet_settings_itself_however_it_is_started():
    """Started outside `make` (no FIFTYONE_* variables), the engine still turns off the MongoDB
    version check and usage tracking; a user's own value wins."""
    code = ("from deblurbench.leaderboard.review import fiftyone; fo = fiftyone(); "
            "print(fo.config.database_validation, fo.config.do_not_track)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300, check=True)
    assert out.stdout.split() == ["False", "True"]
    assert "deprecat" not in out.stderr.lower()
    mine = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env | {"FIFTYONE_DO_NOT_TRACK": "false"}, timeout=300, check=True)
    assert mine.stdout.split() == ["False", "False"]
