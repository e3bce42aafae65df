"""One rule for the device and the configuration of every run, and one atomic write for every
file the engine stores."""

from __future__ import annotations

import pytest
import torch

from deblurbench.devices import pick_config, pick_device
from deblurbench.paths import atomic_file


def test_auto_picks_the_gpu_when_there_is_one_and_a_missing_or_unknown_device_is_refused():
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available here"):
            pick_device("cuda:0")


@pytest.mark.parametrize(("needs_gpu", "on_gpu", "small", "want"), [
    (True, False, None, (True, "small")),   # CPU: the small params
    (True, True, None, (False, "paper")),   # GPU: the paper's
    (False, False, False, (False, "paper")),  # asked for, and possible on a CPU
    (True, True, True, (True, "small")),
])
def test_the_configuration_follows_the_device_unless_asked(needs_gpu, on_gpu, small, want):
    assert pick_config("m", needs_gpu, on_gpu, small) == want


def test_a_paper_configuration_that_needs_a_gpu_is_refused_on_a_cpu():
    with pytest.raises(ValueError, match="method 'mbsd' needs a GPU for its paper configuration"):
        pick_config("mbsd", True, False, False)


def test_an_atomic_write_replaces_the_file_whole_or_leaves_the_old_one(tmp_path):
    path = tmp_path / "sub" / "run.json"
    with atomic_file(path) as tmp:
        tmp.write_text("first")
    assert path.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "first"  # the old file, untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.json"]  # no temp file left
    with atomic_file(tmp_path / "a.png", ".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path  # an encoder sees its type
        tmp.write_bytes(b"x")
