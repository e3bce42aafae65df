"""Hugging Face hub weight files (MANIQA's timm backbone) imported or mirrored offline into the
HF hub cache, in huggingface_hub's own layout, so that its offline lookup finds them."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import huggingface_hub
import pytest
from conftest import cli
from realdata_kit import Server

from deblurbench.metrics import weights

VIT = weights.REQUIRED["maniqa"][1]
REPO, FNAME = "timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", "model.safetensors"


def safetensors_bytes(n: int = 512) -> bytes:
    """A valid safetensors file (one float32 tensor of ``n`` values), framed by hand: 8-byte
    little-endian header length, JSON header, data. Over ``min_bytes`` for n >= 250."""
    data = struct.pack(f"<{n}f", *range(n))
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "w": {"dtype": "F32", "shape": [n], "data_offsets": [0, len(data)]}})
    return struct.pack("<Q", len(header)) + header.encode() + data


def test_the_hand_framed_file_is_what_the_safetensors_package_reads(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    (tmp_path / "f.safetensors").write_bytes(safetensors_bytes(300))
    assert st.load_file(tmp_path / "f.safetensors")["w"].tolist() == list(range(300))


@pytest.mark.parametrize("layout", ["nested", "flat"])
def test_import_places_the_file_where_huggingface_hub_finds_it_offline(hf_cache, tmp_path,
                                                                       layout):
    body = safetensors_bytes()
    src = tmp_path / "provided"
    given = src / (f"{REPO}/{FNAME}" if layout == "nested"
                   else "timm--vit_base_patch8_224.augreg2_in21k_ft_in1k--model.safetensors")
    given.parent.mkdir(parents=True)
    given.write_bytes(body)
    assert VIT in weights.missing("maniqa")

    done = weights.import_dir(src)

    rev = hashlib.sha256(body).hexdigest()[:40]
    repo = hf_cache / "models--timm--vit_base_patch8_224.augreg2_in21k_ft_in1k"
    assert done == [(VIT.name, repo / "snapshots" / rev / FNAME)]
    assert (repo / "refs" / "main").read_text() == rev
    assert (repo / "blobs" / hashlib.sha256(body).hexdigest()).read_bytes() == body
    assert VIT.path() == repo / "snapshots" / rev / FNAME
    assert Path(huggingface_hub.hf_hub_download(REPO, FNAME)).read_bytes() == body
    assert VIT not in weights.missing("maniqa")
    assert not list(hf_cache.rglob("*.partial"))


def test_reimporting_the_same_file_changes_nothing(hf_cache, tmp_path):
    src = tmp_path / "provided" / REPO
    src.mkdir(parents=True)
    (src / FNAME).write_bytes(safetensors_bytes())
    first = weights.import_dir(tmp_path / "provided")
    before = sorted(p.relative_to(hf_cache).as_posix() for p in hf_cache.rglob("*"))
    assert weights.import_dir(tmp_path / "provided") == first
    assert sorted(p.relative_to(hf_cache).as_posix() for p in hf_cache.rglob("*")) == before


@pytest.mark.parametrize(("body", "why"), [
    (safetensors_bytes()[:-100], "end at byte 2156, the file has 2056"),
    (b"\xff" * 3000, "header length"),
    (struct.pack("<Q", 20) + b"{not json at all...}" + b"\0" * 2000, "header"),
])
def test_a_truncated_or_garbage_safetensors_file_is_refused_and_nothing_written(
        hf_cache, tmp_path, body, why):
    src = tmp_path / "provided"
    (src / REPO).mkdir(parents=True)
    (src / REPO / FNAME).write_bytes(body)
    with pytest.raises(weights.WeightImportError, match=why) as err:
        weights.import_dir(src)
    assert str(src / REPO / FNAME) in str(err.value) and VIT.name in str(err.value)
    assert not hf_cache.exists()
    assert VIT in weights.missing("maniqa")


def test_the_missing_reason_names_the_cache_and_both_import_names(hf_cache):
    reason = weights.files_reason("maniqa")
    assert f"{VIT.name} in the Hugging Face cache {hf_cache.resolve()}/models--timm--" in reason
    assert (f"name it DIR/{REPO}/{FNAME} or DIR/timm--vit_base_patch8_224.augreg2_in21k_ft_"
            f"in1k--model.safetensors") in reason


def test_download_from_a_mirror_places_the_file_and_refuses_a_cut_one(hf_cache, tmp_path):
    """`weights download --mirror URL` serves hub files at <URL>/<repo_id>/<filename>."""
    www = tmp_path / "www"
    (www / REPO).mkdir(parents=True)
    (www / REPO / FNAME).write_bytes(safetensors_bytes()[:-4])  # a cut copy on the mirror
    with Server(www) as srv:
        done = dict(weights.download_missing(["maniqa"], mirror=srv.url("")))
        assert "tensors of" in done[VIT.name] and done[VIT.name].startswith("failed:")
        assert list(hf_cache.rglob("*")) == []  # no staged file, no empty repo folder left
        (www / REPO / FNAME).write_bytes(safetensors_bytes())
        done = dict(weights.download_missing(["maniqa"], mirror=srv.url("")))
        assert srv.requests[-1][0] == f"/{REPO}/{FNAME}"
    rev = hashlib.sha256(safetensors_bytes()).hexdigest()[:40]
    assert done[VIT.name] == f"-> {VIT.folder() / 'snapshots' / rev / FNAME}"
    assert Path(huggingface_hub.hf_hub_download(REPO, FNAME)).read_bytes() == safetensors_bytes()
    assert not list(hf_cache.rglob("*.download*"))


def test_download_without_a_mirror_goes_through_the_hub_client_and_reports_offline(hf_cache):
    done = dict(weights.download_missing(["maniqa"]))
    assert done[VIT.name].startswith("failed: LocalEntryNotFoundError")
    assert VIT in weights.missing("maniqa")


def test_cli_weights_import_places_a_hub_file(hf_cache, tmp_path):
    src = tmp_path / "provided"
    (src / REPO).mkdir(parents=True)
    (src / REPO / FNAME).write_bytes(safetensors_bytes())
    out = cli("weights", "import", str(src), cwd=tmp_path).stdout
    assert f"imported {VIT.name} -> {hf_cache}/models--timm--" in out
    assert VIT.path() is not None
