"""`datasets fetch`: resumable download from a real local HTTP server, checksum lock, limits,
manual steps and `--from` imports. Archives are tiny RealDOF copies in the real layout."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import cli
from realdata_kit import Server, build_realdof, write_card, zip_folder

from deblurbench.datasets.fetch import DownloadError, Limits, ManualStepError, download, fetch
from deblurbench.datasets.lock import ChecksumError, lock_path


@pytest.fixture
def archive(tmp_path):
    build_realdof(tmp_path / "src", 2)
    return zip_folder(tmp_path / "src", tmp_path / "www" / "RealDOF.zip")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cut_connection_leaves_a_part_and_a_rerun_resumes_with_a_range_request(project,
                                                                              archive):
    size = archive.stat().st_size
    with Server(archive.parent) as srv:
        write_card(project, "realdof", {"test": 2}, srv.url("RealDOF.zip"), "RealDOF.zip")
        srv.cut["RealDOF.zip"] = 1000
        with pytest.raises(ManualStepError, match=r"interrupted .* kept 1000 bytes in .*"
                                                  r"RealDOF\.zip\.part: rerun to resume"):
            fetch("realdof", retries=0)
        part = project / "datasets/realdof/downloads/RealDOF.zip.part"
        assert part.stat().st_size == 1000
        assert not (project / "datasets/realdof/raw").exists()
        res = fetch("realdof", retries=0)
        assert srv.requests[-1][1].get("Range") == "bytes=1000-"
        assert srv.requests[-1][1].get("If-Range")  # the server's ETag: never splice two files
    got = project / "datasets/realdof/downloads/RealDOF.zip"
    assert got.read_bytes() == archive.read_bytes() and not part.exists()
    assert res.sha256 == _sha(archive) and res.verified == "recorded" and res.files == 4
    lock = json.loads(lock_path().read_text())
    assert lock["realdof"]["RealDOF.zip"]["sha256"] == _sha(archive)
    assert lock["realdof"]["RealDOF.zip"]["size_bytes"] == size
    assert sorted(p.name for p in (project / "datasets/realdof/raw/RealDOF/source").iterdir()) \
        == ["0000.png", "0001.png"]


def test_retry_resumes_within_one_call(project, archive):
    with Server(archive.parent) as srv:
        srv.cut["RealDOF.zip"] = 777
        digest, size = download(srv.url("RealDOF.zip"), project / "dl" / "a.zip", retries=1)
        ranges = [h.get("Range") for _, h in srv.requests]
    assert ranges == [None, "bytes=777-"]
    assert (digest, size) == (_sha(archive), archive.stat().st_size)


def test_server_without_range_support_restarts_cleanly(project, archive):
    with Server(archive.parent, ranges=False) as srv:
        srv.cut["RealDOF.zip"] = 500
        digest, _ = download(srv.url("RealDOF.zip"), project / "dl" / "a.zip", retries=1)
    assert digest == _sha(archive)


def test_checksum_mismatch_against_the_lock_is_refused_and_keeps_the_old_data(project, archive,
                                                                            tmp_path):
    with Server(archive.parent) as srv:
        write_card(project, "realdof", {"test": 2}, srv.url("RealDOF.zip"), "RealDOF.zip")
        fetch("realdof")
        before = sorted(p.name for p in (project / "datasets/realdof/raw").rglob("*.png"))
        # The server now serves a different archive under the same name.
        build_realdof(tmp_path / "src2", 3)
        zip_folder(tmp_path / "src2", archive)
        (project / "datasets/realdof/downloads/RealDOF.zip").unlink()
        with pytest.raises(ChecksumError, match=r"does not match .* recorded in .*checksums"
                                                r"\.lock\.json for realdof/RealDOF\.zip"):
            fetch("realdof", force=True)
    assert sorted(p.name for p in (project / "datasets/realdof/raw").rglob("*.png")) == before
    assert not (project / "datasets/realdof/downloads/RealDOF.zip").exists()
    proc = cli("datasets", "fetch", "realdof", "--from", str(archive), "--force", cwd=project,
               check=False)
    assert proc.returncode == 2 and "does not match" in proc.stderr


def test_card_checksum_mismatch_is_refused(project, archive):
    with Server(archive.parent) as srv:
        card = write_card(project, "realdof", {"test": 2}, srv.url("RealDOF.zip"), "RealDOF.zip")
        card["urls"][0]["sha256"] = "0" * 64
        import yaml

        (project / "datasets/realdof.yaml").write_text(yaml.safe_dump(card))
        with pytest.raises(ChecksumError, match="does not match the card's 0000"):
            fetch("realdof")
    assert not (project / "datasets/realdof/raw").exists()


def test_html_confirmation_page_asks_for_a_manual_step(project, archive):
    with Server(archive.parent) as srv:
        srv.html.add("RealDOF.zip")
        write_card(project, "realdof", {"test": 2}, srv.url("RealDOF.zip"), "RealDOF.zip")
        proc = cli("datasets", "fetch", "realdof", cwd=project, check=False)
    assert proc.returncode == 2
    assert "answered with a web page" in proc.stderr and "--from" in proc.stderr
    assert not (project / "datasets/realdof/raw").exists()
    assert not list((project / "datasets/realdof").rglob("*.part"))


def test_manual_only_card_lists_every_step(project):
    write_card(project, "dpdd", {"test": 1}, None, None, urls=[
        {"url": "https://ln2.sync.com/dl/x", "kind": "official", "archive": "dd_dp_dataset_canon.zip",
         "manual": "Sync.com share page: press Download.", "confirmed_from": "README"}])
    proc = cli("datasets", "fetch", "dpdd", cwd=project, check=False)
    assert proc.returncode == 2
    assert "no url could be downloaded by script" in proc.stderr
    assert "https://ln2.sync.com/dl/x [dd_dp_dataset_canon.zip]: Sync.com share page" in proc.stderr
    assert "datasets fetch dpdd --from" in proc.stderr


def test_download_size_limit(project, archive):
    with Server(archive.parent) as srv:
        with pytest.raises(ManualStepError, match="exceed the download limit of 100 bytes"):
            download(srv.url("RealDOF.zip"), project / "dl" / "a.zip", max_bytes=100)
        with pytest.raises(DownloadError, match="HTTP 404"):
            download(srv.url("nosuch.zip"), project / "dl" / "b.zip")
    assert not (project / "dl" / "a.zip").exists()


def test_from_archive_and_from_folder(project, archive, tmp_path):
    write_card(project, "realdof", {"test": 2}, "http://127.0.0.1:9/RealDOF.zip", "RealDOF.zip")
    out = cli("datasets", "fetch", "realdof", "--from", str(archive), cwd=project).stdout
    assert f"sha256 {_sha(archive)}: recorded" in out
    again = cli("datasets", "fetch", "realdof", cwd=project).stdout  # already there: no network
    assert "already" in again
    # A folder import hard-links or copies, refusing links inside it.
    cli("datasets", "fetch", "realdof", "--from", str(tmp_path / "src"), "--force", cwd=project)
    got = project / "datasets/realdof/raw/RealDOF/target/0001.png"
    assert got.read_bytes() == (tmp_path / "src/RealDOF/target/0001.png").read_bytes()
    (tmp_path / "src/RealDOF/link.png").symlink_to(tmp_path / "src/RealDOF/target/0001.png")
    proc = cli("datasets", "fetch", "realdof", "--from", str(tmp_path / "src"), "--force",
               cwd=project, check=False)
    assert proc.returncode == 2 and "link.png: symbolic link" in proc.stderr
    assert got.exists() and not (project / "datasets/realdof/.raw.incoming").exists()


def test_zip_bomb_download_is_refused_and_raw_is_not_created(project, tmp_path):
    import zipfile

    bomb = tmp_path / "www" / "RealDOF.zip"
    bomb.parent.mkdir()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("RealDOF/source/0000.png", bytes(5_000_000))
    with Server(bomb.parent) as srv:
        write_card(project, "realdof", {"test": 1}, srv.url("RealDOF.zip"), "RealDOF.zip")
        with pytest.raises(ValueError, match="compression ratio"):
            fetch("realdof", limits=Limits(max_ratio=100))
    assert not (project / "datasets/realdof/raw").exists()
    assert not (project / "datasets/realdof/.raw.incoming").exists()
    # ...and its checksum is not locked, so the real archive is still accepted afterwards
    assert not lock_path().exists() or "realdof" not in json.loads(lock_path().read_text())
    build_realdof(tmp_path / "src", 1)
    zip_folder(tmp_path / "src", bomb)
    (project / "datasets/realdof/downloads/RealDOF.zip").unlink()
    with Server(bomb.parent):  # same port is not needed: the card's url is rewritten
        pass
    with Server(bomb.parent) as srv:
        write_card(project, "realdof", {"test": 1}, srv.url("RealDOF.zip"), "RealDOF.zip")
        res = fetch("realdof")
    assert res.verified == "recorded" and res.files == 2
    assert json.loads(lock_path().read_text())["realdof"]["RealDOF.zip"]["sha256"] == _sha(bomb)
