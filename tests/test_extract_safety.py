"""Safe extraction: every hostile archive is refused before a byte is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from deblurbench.datasets.extract import UnsafeArchiveError, inspect, safe_extract


def _zip(path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _assert_nothing_written(dest):
    assert not dest.exists()
    if dest.parent.exists():
        assert not any(p.name.startswith(f".{dest.name}") for p in dest.parent.iterdir())


def test_good_zip_extracts_every_file_with_its_bytes(tmp_path):
    arc = _zip(tmp_path / "ok.zip", {"RealDOF/source/0001.png": b"a" * 10,
                                     "RealDOF/target/0001.png": b"b" * 20})
    written = safe_extract(arc, tmp_path / "raw")
    assert sorted(p.relative_to(tmp_path / "raw").as_posix() for p in written) == [
        "RealDOF/source/0001.png", "RealDOF/target/0001.png"]
    assert (tmp_path / "raw/RealDOF/target/0001.png").read_bytes() == b"b" * 20


@pytest.mark.parametrize("name", ["../evil.png", "RealDOF/../../evil.png", "a\\..\\..\\evil.png"])
def test_zip_entry_escaping_the_target_is_refused(tmp_path, name):
    arc = _zip(tmp_path / "bad.zip", {"ok.png": b"x", name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match=r"bad\.zip: entry .* escapes the target"):
        safe_extract(arc, tmp_path / "out" / "raw")
    _assert_nothing_written(tmp_path / "out" / "raw")
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out/evil.png").exists()


@pytest.mark.parametrize("name", ["/etc/evil.png", "C:/evil.png", "\\\\server\\evil.png"])
def test_absolute_entry_is_refused(tmp_path, name):
    arc = _zip(tmp_path / "abs.zip", {name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match="is an absolute path"):
        safe_extract(arc, tmp_path / "raw")
    _assert_nothing_written(tmp_path / "raw")


def test_zip_symlink_is_refused(tmp_path):
    arc = _zip(tmp_path / "link.zip", {"a.png": b"x"}, {"RealDOF/source": "/etc"})
    with pytest.raises(UnsafeArchiveError, match="'RealDOF/source' is a symbolic link"):
        safe_extract(arc, tmp_path / "raw")
    _assert_nothing_written(tmp_path / "raw")


def test_tar_symlink_hardlink_and_device_are_refused(tmp_path):
    for kind, label in ((tarfile.SYMTYPE, "symbolic link"), (tarfile.LNKTYPE, "hard link"),
                        (tarfile.CHRTYPE, "not a regular file")):
        arc = tmp_path / f"x{kind!r}.tar.gz"
        with tarfile.open(arc, "w:gz") as tf:
            info = tarfile.TarInfo("SDD/test/gt/0001.png")
            info.type = kind
            info.linkname = "/etc/passwd"
            tf.addfile(info)
        with pytest.raises(UnsafeArchiveError, match=label):
            safe_extract(arc, tmp_path / "raw")
        _assert_nothing_written(tmp_path / "raw")


def test_tar_escaping_entry_is_refused_and_good_tar_extracts(tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        info = tarfile.TarInfo("../../evil.png")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(UnsafeArchiveError, match="escapes the target"):
        safe_extract(bad, tmp_path / "raw")
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tf:
        info = tarfile.TarInfo("SDD/test/gt/0001.png")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    safe_extract(good, tmp_path / "raw")
    assert (tmp_path / "raw/SDD/test/gt/0001.png").read_bytes() == b"hello"


def test_zip_bomb_is_detected_before_writing(tmp_path):
    # 30 MB of zeros deflate to ~30 kB: over a 10 MB limit and a ratio of ~1000.
    arc = _zip(tmp_path / "bomb.zip", {"a.png": b"x", "big.png": bytes(30_000_000)})
    assert arc.stat().st_size < 100_000
    with pytest.raises(UnsafeArchiveError, match=r"unpacks to 30000001 bytes, over the limit "
                                                 r"of 10000000"):
        safe_extract(arc, tmp_path / "raw", max_bytes=10_000_000)
    _assert_nothing_written(tmp_path / "raw")
    # Under the size limit, the compression ratio still gives it away.
    with pytest.raises(UnsafeArchiveError, match="compression ratio of .* over the limit of 100"):
        inspect(arc, max_bytes=10**12, max_ratio=100)


def test_target_folder_is_never_extracted_over(tmp_path):
    arc = _zip(tmp_path / "ok.zip", {"a.png": b"x"})
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "keep.png").write_bytes(b"mine")
    with pytest.raises(UnsafeArchiveError, match="already exists"):
        safe_extract(arc, tmp_path / "raw")
    assert (tmp_path / "raw/keep.png").read_bytes() == b"mine"


def test_html_page_saved_as_zip_is_refused_with_its_name(tmp_path):
    fake = tmp_path / "DPDD.zip"
    fake.write_bytes(b"<!DOCTYPE html><html>Google Drive - virus scan warning</html>")
    with pytest.raises(UnsafeArchiveError, match=r"DPDD\.zip: not a zip or tar archive"):
        safe_extract(fake, tmp_path / "raw")


def test_macos_resource_forks_are_skipped(tmp_path):
    arc = _zip(tmp_path / "mac.zip", {"PixelDP/test_c/source/a.png": b"x",
                                      "__MACOSX/PixelDP/._a.png": b"junk"})
    safe_extract(arc, tmp_path / "raw")
    assert [p.name for p in (tmp_path / "raw").rglob("*") if p.is_file()] == ["a.png"]
