"""The runner: failures named by image and isolated, tiling, padding, extras, cost figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from methods_kit import PLUGINS, build_project, write_plugin

from deblurbench.io import read_image
from deblurbench.methods.runner import run_method
from deblurbench.tiling import pad_to_multiple, restore_tiled, tile_starts
from deblurbench.paths import run_dir

D, S = "synthetic-defocus", "test"


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    root = build_project(tmp_path_factory.mktemp("runner") / "proj")
    plugins = root / "plugins"
    modes = {
        "crash": "raise RuntimeError('boom')",
        "nan": "return batch * float('nan')",
        "shape": "return batch[..., :-1]",
        "numpy": "return batch.cpu().numpy()",
        "range": "return batch * 3",
        "slow": "time.sleep(5); return batch",
    }
    for mode, body in modes.items():
        # fails on the second image only, so the first image's output would have been written
        write_plugin(plugins, f"bad-{mode}", f"""
class M(Method):
    calls = 0
    def restore(self, batch):
        M.calls += 1
        if M.calls >= 3:  # call 1: the untimed FLOP-count pass; 2: coffee-00; 3: coffee-01
            {body}
        return batch
""")
    write_plugin(plugins, "gamma", """
class M(Method):
    def restore(self, batch):
        return batch ** 0.8
""", kind="classical")
    write_plugin(plugins, "mult8", """
class M(Method):
    def restore(self, batch):
        assert batch.shape[-1] % 8 == 0 and batch.shape[-2] % 8 == 0, tuple(batch.shape)
        return batch ** 0.8
""", kind="classical", pad_multiple=8)
    write_plugin(plugins, "uses-views", """
class M(Method):
    seen = []
    def restore(self, batch, left, right):
        M.seen.append((left - right).abs().max().item())
        return batch
""", inputs=["blurry", "left", "right"])
    return root


@pytest.fixture(autouse=True)
def env(proj, monkeypatch):
    monkeypatch.setenv("DEBLURBENCH_ROOT", str(proj))
    monkeypatch.setenv("DEBLURBENCH_METHOD_PATH", f"{proj / 'plugins'}:{PLUGINS}")
    monkeypatch.chdir(proj)


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("mode, words", [
    ("crash", "crashed on image 'coffee-01': RuntimeError: boom"),
    ("nan", "on image 'coffee-01': output holds"),
    ("shape", "on image 'coffee-01': output shape"),
    ("numpy", "on image 'coffee-01': restore returned ndarray, expected a tensor"),
    ("range", "on image 'coffee-01': output range"),
])
def test_bad_output_fails_the_run_with_the_image_and_touches_nothing_else(mode, words):
    good = run_method("identity", D, S)
    assert good["status"] == "ok"
    before = snapshot(run_dir("identity", D, S))
    rec = run_method(f"bad-{mode}", D, S)
    assert rec["status"] == "failed"
    assert words in rec["error"] and f"bad-{mode}" in rec["error"]
    folder = run_dir(f"bad-{mode}", D, S)
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]  # no half-run images
    assert json.loads((folder / "run.json").read_text())["status"] == "failed"
    assert snapshot(run_dir("identity", D, S)) == before
    assert not folder.with_name(folder.name + ".partial").exists()


def test_a_slow_image_times_out_with_its_id():
    rec = run_method("bad-slow", D, S, timeout=0.5)
    assert rec["status"] == "failed"
    assert "image 'coffee-01'" in rec["error"] and "time limit of 0.5 s" in rec["error"]


def test_tile_starts_cover_the_image_and_end_at_the_edge():
    assert tile_starts(100, 40, 8) == [0, 32, 60]
    assert tile_starts(30, 40, 8) == [0]
    for n, t, o in [(257, 64, 16), (64, 64, 8), (65, 64, 8)]:
        s = tile_starts(n, t, o)
        covered = np.zeros(n, bool)
        for a in s:
            covered[a:a + t] = True
        assert covered.all() and s[-1] + t == n


def test_tiled_equals_untiled_for_a_pointwise_function():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 70, 97, generator=g)
    fn = lambda b: b ** 0.8 + 0.1 * torch.sin(5 * b)
    tiled = restore_tiled(fn, x, {}, tile=32, overlap=8, batch_size=3)
    torch.testing.assert_close(tiled, fn(x), atol=1e-6, rtol=0)
    # a non-pointwise function does differ, so the comparison above can fail
    blur = lambda b: torch.nn.functional.avg_pool2d(b, 5, 1, 2)
    assert (restore_tiled(blur, x, {}, 32, 8) - blur(x)).abs().max() > 1e-3


def test_runner_tiling_matches_untiled_run_and_is_recorded():
    whole = run_method("gamma", D, S)
    a = {i: read_image(run_dir("gamma", D, S) / f"{i}.png") for i in whole["images"]}
    tiled = run_method("gamma", D, S, tile_size=24, tile_overlap=6)
    assert tiled["tiling"] == {"size": 24, "overlap": 6, "pad_multiple": 1}
    assert all(v["tiles"] > 1 for v in tiled["images"].values())
    for i in tiled["images"]:
        b = read_image(run_dir("gamma", D, S) / f"{i}.png")
        assert np.abs(a[i] - b).max() <= 1 / 65535 + 1e-7


def test_padding_to_a_multiple_is_cropped_back():
    x = torch.rand(1, 3, 42, 64)
    xp, h, w = pad_to_multiple(x, 8)
    assert xp.shape[-2:] == (48, 64) and (h, w) == (42, 64)
    assert torch.equal(xp[..., :42, :], x)
    rec = run_method("mult8", D, S)
    assert rec["status"] == "ok", rec["error"]
    row = next(iter(rec["images"]))
    out = read_image(run_dir("mult8", D, S) / f"{row}.png")
    src = read_image(f"datasets/{D}/raw/test/blurry/{row}.png")
    assert out.shape == src.shape
    assert np.abs(out - src ** 0.8).max() < 2e-4


def test_a_test_time_input_the_data_set_lacks_fails_with_the_image_named(proj):
    with pytest.raises(ValueError, match="needs input 'left'.*coffee-00"):
        run_method("uses-views", D, S)


def test_cost_identity_is_free_and_a_conv_net_is_counted_exactly(proj):
    ident = run_method("identity", D, S)["cost"]
    assert ident["params"] == 0 and ident["flops_per_mp"] == 0
    assert ident["peak_gpu_mb"] is None
    assert 10 < ident["peak_rss_mb"] < 64_000
    assert ident["latency_ms_per_mp"] > 0
    from deblurbench.methods.train import train_method

    assert train_method("dummy", D)["status"] == "finished"
    cost = run_method("dummy", D, S)["cost"]
    c = 4  # channels: conv3x3 3->4 and 4->3 with biases
    assert cost["params"] == (3 * c * 9 + c) + (c * 3 * 9 + 3) == 223
    # torch counts 2 FLOPs per multiply-add of each convolution, per output pixel
    assert cost["flops_per_mp"] == pytest.approx(2 * (3 * c * 9 + c * 3 * 9) * 1e6)
    rec = json.loads((run_dir("dummy", D, S) / "run.json").read_text())
    assert set(rec["cost"]) == {"params", "trainable_params", "flops_per_mp", "flops_how",
                                "latency_ms_per_mp", "peak_rss_mb", "peak_gpu_mb"}
    assert rec["cost"]["trainable_params"] == 223
    assert rec["cost"]["flops_how"] == "one full restore of the first image"
    assert rec["checkpoint"]["step"] == 6 and rec["config"] == "small"


def test_a_method_that_may_run_untrained_records_no_checkpoint():
    rec = run_method("unsharp-mask", D, S)  # needs_training: false, never trained here
    assert rec["status"] == "ok" and rec["checkpoint"] is None
    assert rec["params"]["sigma"] == 2.0 and rec["params"]["amount"] == 1.0
