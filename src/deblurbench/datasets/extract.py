"""Safe archive extraction (zip, tar, tar.gz/bz2/xz): check everything, then write.

Every entry is checked before a single byte is written: names that are absolute or climb out
of the target (``../``, drive letters, backslash tricks), links, devices, encrypted entries, and
an unpacked total over ``max_bytes`` or a compression ratio over ``max_ratio`` (zip bombs) are
refused with the archive, the entry and the reason. Writing goes to a hidden sibling folder that
is renamed into place only when complete, and each entry is stopped if it inflates past the size
its header declared, so a lying header cannot fill the disk either.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

#: Defaults: DPDD unpacked is tens of GB; PNG barely compresses, so real ratios are near 1.
DEFAULT_MAX_BYTES = 200 * 1024**3
DEFAULT_MAX_RATIO = 100.0
DEFAULT_MAX_ENTRIES = 200_000
_SKIP = re.compile(r"(^|/)(__MACOSX|\.DS_Store$)")


class UnsafeArchiveError(ValueError):
    """An archive refused before extraction; the message names the archive and the entry."""


@dataclass(frozen=True)
class Entry:
    name: str  # normalised relative POSIX path
    size: int
    is_dir: bool
    member: object  # ZipInfo or TarInfo


def archive_kind(path: Path) -> str:
    """``zip`` or ``tar`` from the file's magic bytes (extensions lie, mirrors rename)."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    raise UnsafeArchiveError(f"{path}: not a zip or tar archive (an HTML page saved by a "
                             f"browser or a truncated download?)")


def _normalise(archive: Path, raw_name: str) -> str | None:
    name = raw_name.replace("\\", "/")
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: entry {raw_name!r} has a NUL byte in its name")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: entry {raw_name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: entry {raw_name!r} escapes the target folder "
                                 f"('..' in its path)")
    if not parts or _SKIP.search("/".join(parts)):
        return None
    return "/".join(parts)


def _zip_entries(path: Path) -> list[Entry]:
    out = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{path}: entry {info.filename!r} is a symbolic link "
                                         f"(links are refused)")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(f"{path}: entry {info.filename!r} is not a regular "
                                         f"file or folder (mode {oct(mode)})")
            if info.flag_bits & 0x1:
                raise UnsafeArchiveError(f"{path}: entry {info.filename!r} is encrypted")
            name = _normalise(path, info.filename)
            if name is not None:
                out.append(Entry(name, int(info.file_size), info.is_dir(), info))
    return out


def _tar_entries(path: Path) -> list[Entry]:
    out = []
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            if m.issym() or m.islnk():
                raise UnsafeArchiveError(f"{path}: entry {m.name!r} is a "
                                         f"{'symbolic' if m.issym() else 'hard'} link to "
                                         f"{m.linkname!r} (links are refused)")
            if not (m.isreg() or m.isdir()):
                raise UnsafeArchiveError(f"{path}: entry {m.name!r} is not a regular file or "
                                         f"folder (device, fifo or special entry)")
            name = _normalise(path, m.name)
            if name is not None:
                out.append(Entry(name, int(m.size), m.isdir(), m))
    return out


def inspect(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES,
            max_ratio: float = DEFAULT_MAX_RATIO,
            max_entries: int = DEFAULT_MAX_ENTRIES) -> list[Entry]:
    """Every entry of the archive, checked; raises :class:`UnsafeArchiveError` on any doubt."""
    path = Path(path)
    if not path.is_file():
        raise UnsafeArchiveError(f"{path}: archive not found")
    kind = archive_kind(path)
    try:
        entries = _zip_entries(path) if kind == "zip" else _tar_entries(path)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchiveError(f"{path}: corrupt {kind} archive ({exc})") from None
    if len(entries) > max_entries:
        raise UnsafeArchiveError(f"{path}: {len(entries)} entries exceed the limit of "
                                 f"{max_entries}")
    seen: dict[str, str] = {}
    for e in entries:
        key = e.name.lower()
        if key in seen and not e.is_dir and seen[key] != e.name:
            raise UnsafeArchiveError(f"{path}: entries {seen[key]!r} and {e.name!r} differ only "
                                     f"in case")
        seen[key] = e.name
    total = sum(e.size for e in entries)
    if total > max_bytes:
        raise UnsafeArchiveError(f"{path}: unpacks to {total} bytes, over the limit of "
                                 f"{max_bytes} bytes (zip bomb, or raise the limit)")
    packed = max(path.stat().st_size, 1)
    if total / packed > max_ratio:
        raise UnsafeArchiveError(f"{path}: unpacks to {total} bytes from {packed}, a "
                                 f"compression ratio of {total / packed:.0f} over the limit of "
                                 f"{max_ratio:.0f} (zip bomb?)")
    return entries


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: float = DEFAULT_MAX_RATIO,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> list[Path]:
    """Extract into ``dest`` (which must not exist) atomically; returns the files written."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise UnsafeArchiveError(f"{dest}: target folder already exists; not extracting over it")
    entries = inspect(archive, max_bytes, max_ratio, max_entries)
    total = sum(e.size for e in entries)
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if total > free:
        raise UnsafeArchiveError(f"{archive}: needs {total} bytes, only {free} free under "
                                 f"{dest.parent}")
    partial = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    written: list[Path] = []
    try:
        root = partial.resolve()
        with _open(archive) as opened, tqdm(total=total, unit="B", unit_scale=True,
                                           desc=f"extract {archive.name}") as bar:
            for e in entries:
                target = (partial / e.name).resolve()
                if root not in target.parents and target != root:
                    raise UnsafeArchiveError(f"{archive}: entry {e.name!r} resolves outside "
                                             f"the target folder")
                if e.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_entry(archive, opened, e, target, bar)
                written.append(dest / e.name)
        os.replace(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return written


class _open:
    """Context manager giving an open ZipFile or TarFile."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: zipfile.ZipFile | tarfile.TarFile | None = None

    def __enter__(self):
        kind = archive_kind(self.path)
        self.handle = zipfile.ZipFile(self.path) if kind == "zip" else tarfile.open(self.path)
        return self.handle

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()


def _copy_entry(archive: Path, opened, e: Entry, target: Path, bar: tqdm) -> None:
    if isinstance(opened, zipfile.ZipFile):
        src = opened.open(e.member)  # type: ignore[arg-type]
    else:
        src = opened.extractfile(e.member)  # type: ignore[arg-type]
        if src is None:
            raise UnsafeArchiveError(f"{archive}: entry {e.name!r} has no data")
    n = 0
    try:
        with src, open(target, "wb") as dst:
            while block := src.read(1 << 20):
                n += len(block)
                if n > e.size:
                    raise UnsafeArchiveError(f"{archive}: entry {e.name!r} inflates past its "
                                             f"declared {e.size} bytes (zip bomb?)")
                dst.write(block)
                bar.update(len(block))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, UnsafeArchiveError):
            raise
        raise UnsafeArchiveError(f"{archive}: entry {e.name!r} is corrupt ({exc})") from None
    if n != e.size:
        raise UnsafeArchiveError(f"{archive}: entry {e.name!r} holds {n} bytes, its header "
                                 f"declares {e.size} (truncated archive?)")
