"""Training through accelerate: checkpoints keyed by config and data, exact resume, time limits."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import cli
from methods_kit import build_project, copy_dummy, two_ranks

from deblurbench.methods.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from deblurbench.methods.runner import run_method
from deblurbench.methods.train import train_method

D = "synthetic-defocus"


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    root = build_project(tmp_path_factory.mktemp("train") / "proj")
    copy_dummy(root / "plugins", "dummy")
    copy_dummy(root / "plugins", "dummy-b")
    return root


@pytest.fixture(autouse=True)
def env(proj, monkeypatch):
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(proj))
    monkeypatch.setenv("DEBLURBENCH_METHOD_PATH", str(proj / "plugins"))
    monkeypatch.delenv("DUMMY_CRASH_AT_STEP", raising=False)
    monkeypatch.chdir(proj)


def weights(name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(checkpoint_path(name, D, "small"))["state"]["net"]


def test_run_before_training_says_what_to_do():
    with pytest.raises(CheckpointError, match="methods train dummy-b --dataset synthetic-defocus"):
        run_method("dummy-b", D, "test")


def test_interrupted_training_resumes_to_the_same_weights(monkeypatch):
    straight = train_method("dummy", D, force=True)
    assert straight["status"] == "finished" and straight["step"] == 6
    w_straight = weights("dummy")
    monkeypatch.setenv("DUMMY_CRASH_AT_STEP", "6")
    crashed = train_method("dummy-b", D, force=True)
    assert crashed["status"] == "failed"
    assert "crashed in training at step 6" in crashed["error"] and "crash requested" in crashed["error"]
    ckpt = load_checkpoint(checkpoint_path("dummy-b", D, "small"))
    assert ckpt["step"] == 4 and not ckpt["finished"]  # checkpoint_every: 2
    with pytest.raises(CheckpointError, match="training stopped at step 4 of 6"):
        run_method("dummy-b", D, "test")
    monkeypatch.delenv("DUMMY_CRASH_AT_STEP")
    resumed = train_method("dummy-b", D)
    assert resumed["status"] == "finished" and resumed["resumed_from"] == 4
    w_resumed = weights("dummy-b")
    assert w_resumed.keys() == w_straight.keys()
    for k in w_straight:  # same data per step, same RNG, same optimizer state: same bits
        assert torch.equal(w_straight[k], w_resumed[k]), k
    # and training did change the weights, so the equality above means something
    fresh = load_checkpoint(checkpoint_path("dummy", D, "small"))["history"]
    assert fresh[0]["loss"] != fresh[-1]["loss"]


def test_time_limit_stops_resumably_and_a_rerun_finishes():
    rec = train_method("dummy", D, force=True, max_seconds=1e-6)
    assert rec["status"] == "interrupted" and rec["step"] == 1
    assert "rerun the same command to resume" in rec["error"]
    assert load_checkpoint(checkpoint_path("dummy", D, "small"))["step"] == 1
    done = train_method("dummy", D)
    assert done["status"] == "finished" and done["resumed_from"] == 1 and done["step"] == 6
    again = train_method("dummy", D)
    assert again["status"] == "finished" and "already trained" in again["note"]


def test_checkpoint_of_other_settings_is_refused(proj):
    assert train_method("dummy", D)["status"] == "finished"
    with pytest.raises(CheckpointError, match="seed: checkpoint has 0, this run 1"):
        train_method("dummy", D, seed=1)
    copy_dummy(proj / "plugins", "dummy", lr=0.02)  # same name, different params
    try:
        with pytest.raises(CheckpointError, match="does not match this run.*params"):
            run_method("dummy", D, "test")
        with pytest.raises(CheckpointError, match="made with other settings.*--force"):
            train_method("dummy", D)
    finally:
        copy_dummy(proj / "plugins", "dummy", lr=0.01)


def test_retrain_stale_resumes_a_stopped_run_and_retrains_a_finished_one():
    """The DVC stage's mode: it runs only after a stop (resume) or an input change (retrain)."""
    assert train_method("dummy", D, force=True, max_seconds=1e-6)["status"] == "interrupted"
    resumed = train_method("dummy", D, retrain_stale=True)
    assert resumed["status"] == "finished" and resumed["resumed_from"] == 1
    again = train_method("dummy", D, retrain_stale=True)
    assert again["status"] == "finished" and again["resumed_from"] is None
    assert again["step"] == 6 and "note" not in again  # trained anew, not "already trained"
    kept = train_method("dummy", D)
    assert kept.get("note") == "already trained; pass --force to retrain"


def test_cli_train_then_run(proj):
    out = cli("methods", "train", "dummy", "--dataset", D, "--force", cwd=proj,
              env={"DEBLURBENCH_METHOD_PATH": str(proj / "plugins")})
    assert "step 6" in out.stdout and "small.pt" in out.stdout
    out = cli("methods", "run", "dummy", "--dataset", D, cwd=proj,
              env={"DEBLURBENCH_METHOD_PATH": str(proj / "plugins")})
    assert "2 images, ok" in out.stdout and "223 params" in out.stdout
    bad = cli("methods", "train", "identity", "--dataset", D, cwd=proj, check=False)
    assert bad.returncode == 2 and "not trainable" in bad.stderr


def test_two_processes_train_one_model_through_accelerate(proj):
    """The multi-GPU path, on CPUs: two ranks (torch.distributed, gloo) under one Accelerator;
    `accelerate launch --multi_gpu` starts the same thing on GPUs."""
    two_ranks(proj, "methods", "train", "dummy-b", "--dataset", D, "--force", "--device", "cpu",
              env={"DEBLURBENCH_METHOD_PATH": str(proj / "plugins")})
    rec = json.loads(checkpoint_path("dummy-b", D, "small").with_suffix(".json").read_text())
    assert rec["num_processes"] == 2 and rec["status"] == "finished" and rec["step"] == 6
    assert run_method("dummy-b", D, "test")["status"] == "ok"  # the checkpoint is usable


def test_two_processes_share_a_run_and_write_what_one_process_writes(proj):
    assert train_method("dummy", D)["status"] == "finished"
    one = run_method("dummy", D, "test", device="cpu")
    out = proj / "outputs/dummy" / D / "test"
    single = {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}
    two_ranks(proj, "methods", "run", "dummy", "--dataset", D, "--device", "cpu",
              env={"DEBLURBENCH_METHOD_PATH": str(proj / "plugins")})
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "ok" and rec["processes"] == 2
    assert sorted(rec["images"]) == sorted(one["images"]) and len(single) == 2
    assert {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))} == single
    assert not list(out.parent.glob("*.partial")) and not list(out.glob(".rank-*"))


def test_a_run_fails_when_any_rank_failed_and_keeps_the_worst_peaks():
    from deblurbench.methods.runner import merge_rank_records

    ok = {"status": "ok", "error": None, "started": "a", "finished": "c",
          "images": {"x": {"seconds": 1.0, "megapixels": 1.0, "tiles": 1}},
          "cost": {"params": 5, "flops_per_mp": 2.0, "latency_ms_per_mp": 1000.0,
                   "peak_rss_mb": 10.0, "peak_gpu_mb": None}}
    other = ok | {"images": {"y": {"seconds": 3.0, "megapixels": 1.0, "tiles": 1}},
                  "started": "b", "finished": "d",
                  "cost": ok["cost"] | {"latency_ms_per_mp": 3000.0, "peak_rss_mb": 30.0}}
    merged = merge_rank_records([ok, other])
    assert merged["status"] == "ok" and sorted(merged["images"]) == ["x", "y"]
    assert merged["cost"]["latency_ms_per_mp"] == pytest.approx(2000.0)
    assert merged["cost"]["peak_rss_mb"] == 30.0 and merged["cost"]["peak_gpu_mb"] is None
    assert (merged["started"], merged["finished"]) == ("a", "d")
    bad = other | {"status": "failed", "error": "method 'm' failed on image 'y': boom"}
    failed = merge_rank_records([ok, bad])
    assert failed["status"] == "failed" and "image 'y'" in failed["error"]
    assert failed["cost"] is None
