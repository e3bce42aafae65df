"""Contract v2: multi-file plugins, training-only inputs, stages with schedulers and EMA that
resume exactly, validation that picks the checkpoint, and runs that carry their identity."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from methods_kit import build_project

from deblurbench.methods.checkpoint import checkpoint_path, load_checkpoint
from deblurbench.methods.runner import run_method
from deblurbench.methods.train import train_method

D = "synthetic-defocus"

CARD = {"version": "1.0", "kind": "learned", "trainable": True,
        "params": {"width": 4, "lr": 0.02, "train_steps": 6, "batch_size": 2, "crop_size": 32,
                   "checkpoint_every": 2, "validate_every": 2, "select": "best",
                   "stages": [{"name": "warm-up", "steps": 2, "lr_scale": 0.1},
                              {"name": "main", "steps": 4, "lr_scale": 1.0}]}}

NET = '''
import torch

class Net(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.a = torch.nn.Conv2d(3, width, 3, padding=1)
        self.b = torch.nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))
'''

LOSS = '''
def l1(a, b):
    return (a - b).abs().mean()
'''

PLUGIN = '''
import os
import torch
from deblurbench.methods.base import Method
from deblurbench.nn import EMA
from .net import Net
from .loss import l1


class Staged(Method):
    """Two stages, a cosine schedule, an EMA and noise from torch's RNG: all must resume."""
    seen_train, seen_restore, stages = set(), set(), []

    def __init__(self, params, device="cpu"):
        super().__init__(params, device)
        self.net = Net(int(params["width"])).to(device)
        self.ema = EMA(self.net, 0.9)

    def restore(self, batch, **extras):
        Staged.seen_restore |= set(extras)
        with self.ema.swapped(self.net):
            return self.net(batch).clamp(0, 1)

    def train(self, loader, params, callbacks):
        opt = torch.optim.SGD(self.net.parameters(), lr=float(params["lr"]), momentum=0.9)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=callbacks.max_steps)
        callbacks.track(opt, sched)
        callbacks.track_state("ema", self.ema)
        crash_at = int(os.environ.get("STAGED_CRASH_AT", "0"))
        for batch in loader:
            if callbacks.global_step + 1 == crash_at:
                raise RuntimeError("crash requested")
            Staged.seen_train |= set(batch)
            Staged.stages.append(callbacks.stage.name)
            for g in opt.param_groups:
                g["lr"] = sched.get_last_lr()[0] * callbacks.stage.get("lr_scale")
            x = batch["blurry"] + 0.01 * torch.randn_like(batch["blurry"])
            loss = l1(self.net(x), batch["sharp"])
            opt.zero_grad()
            callbacks.backward(loss)
            opt.step()
            sched.step()
            self.ema.update(self.net)
            if not callbacks.step({"l1": loss.item(), "map_mean": batch["blur_map"].mean().item()}):
                break

    def state_dict(self):
        return {"net": self.net.state_dict(), "ema": self.ema.state_dict()}

    def load_state_dict(self, state):
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
'''


def write_staged(folder, name: str, **card) -> None:
    """A plugin of three Python files whose entry imports the other two relatively."""
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    full = {"name": name, "title": name, "entry": "plugin:Staged",
            "train_inputs": ["blur_map"]} | CARD | card
    (d / "method.yaml").write_text(yaml.safe_dump(full))
    (d / "plugin.py").write_text(PLUGIN)
    (d / "net.py").write_text(NET)
    (d / "loss.py").write_text(LOSS)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    root = build_project(tmp_path_factory.mktemp("contract") / "proj")
    for name in ("staged", "staged-b", "staged-c"):
        write_staged(root / "plugins", name)
    return root


@pytest.fixture(autouse=True)
def env(proj, monkeypatch):
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(proj))
    monkeypatch.setenv("DEBLURBENCH_METHOD_PATH", str(proj / "plugins"))
    monkeypatch.delenv("STAGED_CRASH_AT", raising=False)
    monkeypatch.chdir(proj)


def plugin_class(name: str):
    from deblurbench.methods.registry import get_card, load_class

    return load_class(get_card(name))


def test_a_three_file_plugin_trains_in_named_stages_and_runs(proj):
    rec = train_method("staged", D, force=True)
    assert rec["status"] == "finished", rec["error"]
    cls = plugin_class("staged")
    assert cls.stages == ["warm-up", "warm-up", "main", "main", "main", "main"]
    hist = load_checkpoint(checkpoint_path("staged", D, "small"))["history"]
    assert [h["step"] for h in hist] == [1, 2, 3, 4, 5, 6]
    assert set(hist[0]) == {"step", "l1", "map_mean"} and hist[0]["map_mean"] > 0
    out = run_method("staged", D, "test")
    assert out["status"] == "ok", out["error"]
    assert sorted((proj / "outputs/staged" / D / "test").glob("*.png"))


def test_the_true_blur_map_reaches_train_but_never_restore():
    train_method("staged", D)
    run_method("staged", D, "test")
    cls = plugin_class("staged")
    assert "blur_map" in cls.seen_train and "sharp" in cls.seen_train
    assert cls.seen_restore == set()


def test_a_resumed_multi_stage_run_with_scheduler_and_ema_matches_an_uninterrupted_one(
        monkeypatch):
    straight = train_method("staged-b", D, force=True)
    assert straight["status"] == "finished"
    monkeypatch.setenv("STAGED_CRASH_AT", "5")
    assert train_method("staged-c", D, force=True)["status"] == "failed"
    monkeypatch.delenv("STAGED_CRASH_AT")
    resumed = train_method("staged-c", D)
    assert resumed["status"] == "finished" and resumed["resumed_from"] == 4
    a = load_checkpoint(checkpoint_path("staged-b", D, "small"))
    b = load_checkpoint(checkpoint_path("staged-c", D, "small"))
    for part in ("net",):
        for k, v in a["state"][part].items():
            assert torch.equal(v, b["state"][part][k]), k
    for k, v in a["state"]["ema"]["shadow"].items():
        assert torch.equal(v, b["state"]["ema"]["shadow"][k]), k
    assert a["state"]["ema"]["num_updates"] == b["state"]["ema"]["num_updates"] == 6
    assert a["val_history"] == b["val_history"] and a["best"] == b["best"]
    # training moved the weights, so equality means the resume was exact
    assert a["history"][0]["l1"] != a["history"][-1]["l1"]


def test_validation_scores_the_val_split_and_the_run_uses_the_best_state():
    train_method("staged", D, force=True)
    ckpt = load_checkpoint(checkpoint_path("staged", D, "small"))
    vals = [v["psnr"] for v in ckpt["val_history"]]
    assert [v["step"] for v in ckpt["val_history"]] == [2, 4, 6]
    assert ckpt["best"]["value"] == max(vals) and ckpt["best"]["step"] in (2, 4, 6)
    rec = run_method("staged", D, "test")
    assert rec["checkpoint"]["step"] == ckpt["best"]["step"]
    assert "best validation psnr" in rec["checkpoint"]["selected"]
    assert len(rec["checkpoint"]["sha256"]) == 64


def test_the_test_split_can_never_choose_a_checkpoint(proj):
    write_staged(proj / "plugins", "peeks", params=CARD["params"] | {"val_split": "test"})
    with pytest.raises(ValueError, match="test split is never used to choose"):
        train_method("peeks", D, force=True)


def test_train_on_one_data_set_and_test_on_another_is_its_own_run_and_row(proj):
    other = "sd-other"
    card = yaml.safe_load((proj / "datasets" / f"{D}.yaml").read_text())
    (proj / "datasets" / f"{other}.yaml").write_text(yaml.safe_dump(card | {"name": other}))
    shutil.copytree(proj / "datasets" / D / "raw", proj / "datasets" / other / "raw",
                    dirs_exist_ok=True)
    from deblurbench.datasets.manifest import prepare

    prepare(other)
    train_method("staged", D)
    rec = run_method("staged", other, "test", trained_on=D)
    assert rec["status"] == "ok" and rec["trained_on"] == D
    assert (proj / "outputs" / f"staged~{D}" / other / "test" / "run.json").is_file()
    from deblurbench.metrics.scorer import score_run

    db = proj / "results.duckdb"
    res = score_run(f"staged~{D}", other, "test", db, ["psnr"])
    assert res["status"] == "ok"
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT method, base_method, trained_on, config, checkpoint FROM runs"
                          ).fetchone()
    assert row[:4] == (f"staged~{D}", "staged", D, "small")
    assert json.loads(row[4])["dataset"] == D


def test_scoring_reads_only_the_run_record_and_imports_no_method_code(proj):
    """A run folder with a record and images scores with no plugin of that name anywhere."""
    from deblurbench.io import read_image, write_png
    from deblurbench.metrics.scorer import score_run
    from deblurbench.runs import read_record

    rec = run_method("identity", D, "test")
    src = proj / "outputs/identity" / D / "test"
    dst = proj / "outputs/ghost" / D / "test"
    shutil.copytree(src, dst, dirs_exist_ok=True)
    record = read_record(dst)
    record.method = "ghost"
    record.method_card = record.method_card | {"name": "ghost", "label": "no code here"}
    record.write(dst)
    for p in dst.glob("*.png"):
        write_png(p, np.clip(read_image(p) * 0.5, 0, 1), bits=16)
    res = score_run("ghost", D, "test", proj / "ghost.duckdb", ["psnr"])
    assert res["status"] == "ok" and res["means"]["psnr"] < 20
    assert rec["status"] == "ok"
    code = textwrap.dedent("""
        import sys
        import deblurbench.metrics.scorer, deblurbench.submit.results, deblurbench.runs
        bad = sorted(m for m in sys.modules if m.startswith("deblurbench.methods"))
        print(bad)
        assert not bad, bad
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hits = [p for p in (REPO / "src/deblurbench/metrics").rglob("*.py")
            if "deblurbench.methods" in p.read_text()]
    assert hits == []


PRETRAINED = '''
import torch
from deblurbench.methods.base import Method


class WithBackbone(Method):
    def __init__(self, params, device="cpu"):
        super().__init__(params, device)
        self.conv = torch.nn.Conv2d(3, 3, 1)
        files = self.pretrained("backbone")
        if files is not None:
            self.conv.load_state_dict(torch.load(next(iter(files.values())), weights_only=True))

    def restore(self, batch):
        return self.conv(batch).clamp(0, 1)
'''


def test_a_pretrained_part_is_random_init_until_imported_and_the_run_says_which(
        proj, tmp_path, monkeypatch):
    import hashlib

    from conftest import cli

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = tmp_path / "w.pth"
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 0.5)
        conv.bias.zero_()
    torch.save(conv.state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    name = f"backbone-{digest[:8]}.pth"
    d = proj / "plugins" / "with-backbone"
    d.mkdir(parents=True, exist_ok=True)
    (d / "method.yaml").write_text(yaml.safe_dump({
        "name": "with-backbone", "version": "1.0", "title": "t", "kind": "learned",
        "entry": "m:WithBackbone", "pretrained": [{"id": "backbone", "title": "a 1x1 conv",
        "files": [{"name": name, "kind": "torchvision", "url": "https://example.org/" + name,
                   "sha256": digest, "min_bytes": 10}]}]}))
    (d / "m.py").write_text(PRETRAINED)
    first = run_method("with-backbone", D, "test")
    assert first["weights"][0]["status"] == "random init"
    assert name in first["weights"][0]["reason"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / name).write_bytes(b"x" * 100)
    refused = cli("weights", "import", str(bad), cwd=proj, check=False)
    assert refused.returncode != 0 and "does not match" in refused.stderr
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(weights, good / name)
    cli("weights", "import", str(good), cwd=proj)
    second = run_method("with-backbone", D, "test")
    assert second["weights"][0]["status"] == "loaded"
    assert second["weights"][0]["sha256"][name] == digest[:16]
    out = (proj / "outputs/with-backbone" / D / "test")
    from deblurbench.io import read_image

    blurry = read_image(proj / "datasets" / D / "raw/test/blurry/coffee-00.png")
    np.testing.assert_allclose(read_image(out / "coffee-00.png"), blurry * 0.5, atol=2e-5)


def test_unpaired_blurry_images_come_beside_each_batch(proj):
    write_staged(proj / "plugins", "unpaired",
                 params=CARD["params"] | {"unpaired_split": "val", "validate_every": 0})
    rec = train_method("unpaired", D, force=True)
    assert rec["status"] == "finished"
    assert "unpaired_blurry" in plugin_class("unpaired").seen_train
    assert rec["unpaired"] == {"dataset": D, "split": "val", "images": 1, "pairs": 2,
                               "held_out_of_training_split": False}


def test_a_held_out_share_of_the_training_split_is_the_unpaired_domain_and_never_a_pair(proj):
    import zlib

    from deblurbench.datasets.manifest import load_manifest

    ids = sorted(load_manifest(D, "train")["image_id"])
    u = sorted(zlib.crc32(f"0:{i}".encode()) / 2 ** 32 for i in ids)
    frac = (u[0] + u[1]) / 2  # exactly one of the two training images falls below
    params = CARD["params"] | {"unpaired_split": "train", "validate_every": 0}
    write_staged(proj / "plugins", "heldout", params=params | {"unpaired_fraction": frac})
    rec = train_method("heldout", D, force=True)
    assert rec["unpaired"] == {"dataset": D, "split": "train", "images": 1, "pairs": 1,
                               "held_out_of_training_split": True}
    write_staged(proj / "plugins", "heldout0", params=params)  # no fraction: would overlap
    with pytest.raises(ValueError, match=r"set unpaired_fraction in \(0, 1\)"):
        train_method("heldout0", D, force=True)


def test_the_unpaired_images_may_come_from_another_data_set(proj):
    from deblurbench.annotate.synth_dataset import make_from_dataset

    make_from_dataset("motion", D, "other-domain", seed=1, kernel_size=9)
    write_staged(proj / "plugins", "crossdomain",
                 params=CARD["params"] | {"unpaired_dataset": "other-domain",
                                          "unpaired_split": "test", "validate_every": 0})
    rec = train_method("crossdomain", D, force=True)
    assert rec["unpaired"] == {"dataset": "other-domain", "split": "test", "images": 2,
                               "pairs": 2, "held_out_of_training_split": False}
