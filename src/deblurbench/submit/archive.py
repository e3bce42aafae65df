"""Safe intake of an uploaded folder or zip: everything is checked before anything is written.

Refused, each with the member named: paths that leave the target (zip-slip: absolute, ``..``,
drive letters, backslashes), symbolic links and other non-regular files, nested folders,
duplicate names, encrypted members, archives or folders over the upload limit, and
decompression bombs (a member that claims more than the per-upload limit or compresses more
than ``MAX_RATIO`` times). While extracting, a member that yields more bytes than its header
declared is cut off and refused.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_RATIO = 200  # PNG is already deflated: real outputs compress ~1x, bombs 1000x and more
MAX_FILES = 100_000


def max_upload_bytes() -> int:
    """Upload limit (archive size, and total extracted size): $DEBLURBENCH_MAX_UPLOAD_BYTES."""
    return int(os.environ.get("DEBLURBENCH_MAX_UPLOAD_BYTES", str(4 * 1024**3)))


class UploadError(ValueError):
    """An upload refused as a whole; ``problems`` lists every reason found."""

    def __init__(self, where: str | Path, problems: list[str]):
        self.where = str(where)
        self.problems = problems
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"{where}: submission refused, {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class Entry:
    name: str  # file name inside the upload (no folder)
    size: int


def _bad_name(name: str) -> str | None:
    if "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "is a Windows path (backslash or drive letter)"
    p = PurePosixPath(name)
    if p.is_absolute():
        return "is an absolute path (zip-slip)"
    if ".." in p.parts:
        return "leaves the upload folder via '..' (zip-slip)"
    return None


def inspect_zip(path: Path) -> tuple[list[Entry], list[str]]:
    """The safe members of a zip and every problem found; unreadable or oversized archives
    raise UploadError at once (nothing of them is read)."""
    limit = max_upload_bytes()
    size = path.stat().st_size
    if size > limit:
        raise UploadError(path, [f"archive is {size} bytes, over the upload limit of {limit}"])
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadError(path, [f"not a readable zip archive ({exc})"]) from None
    problems: list[str] = []
    entries: list[Entry] = []
    seen: set[str] = set()
    total = 0
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            raise UploadError(path, [f"{len(infos)} members, over the limit of {MAX_FILES}"])
        for info in infos:
            name = info.filename
            mode = info.external_attr >> 16
            bad = _bad_name(name)
            if bad:
                problems.append(f"{name}: {bad}")
                continue
            if stat.S_ISLNK(mode):
                problems.append(f"{name}: symbolic link (links are refused)")
                continue
            if info.is_dir() or "/" in name.rstrip("/"):
                problems.append(f"{name}: nested folder (put the images at the top level)")
                continue
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type bits (many zippers)
                problems.append(f"{name}: not a regular file")
                continue
            if info.flag_bits & 0x1:
                problems.append(f"{name}: encrypted member")
                continue
            if name in seen:
                problems.append(f"{name}: present more than once in the archive")
                continue
            seen.add(name)
            total += info.file_size
            if info.file_size > limit:
                problems.append(f"{name}: expands to {info.file_size} bytes, over the limit "
                                f"of {limit} (decompression bomb?)")
            elif info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(
                    info.compress_size, 1):
                problems.append(f"{name}: compression ratio "
                                f"{info.file_size / max(info.compress_size, 1):.0f}x over "
                                f"{MAX_RATIO}x (decompression bomb?)")
            entries.append(Entry(name, info.file_size))
    if total > limit:
        problems.append(f"members expand to {total} bytes in all, over the upload limit of "
                        f"{limit} (decompression bomb?)")
    return entries, problems


def extract_zip(path: Path, entries: list[Entry], dest: Path) -> None:
    """Extract checked members into ``dest`` (which must exist), never past declared sizes."""
    problems = []
    with zipfile.ZipFile(path) as zf:
        for e in entries:
            target = dest / e.name
            written = 0
            with zf.open(e.name) as src, open(target, "xb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > e.size:
                        break
                    out.write(chunk)
            if written > e.size:
                target.unlink()
                problems.append(f"{e.name}: yields more bytes than its header declares "
                                f"({e.size}); refused")
    if problems:
        raise UploadError(path, problems)


def inspect_folder(path: Path) -> tuple[list[Entry], list[str]]:
    """The regular files of a flat folder, and every link, sub-folder or oversize found."""
    limit = max_upload_bytes()
    problems: list[str] = []
    entries: list[Entry] = []
    total = 0
    with os.scandir(path) as it:
        for de in sorted(it, key=lambda d: d.name):
            if de.is_symlink():
                problems.append(f"{de.name}: symbolic link (links are refused)")
            elif de.is_dir(follow_symlinks=False):
                problems.append(f"{de.name}/: nested folder (put the images at the top level)")
            elif not de.is_file(follow_symlinks=False):
                problems.append(f"{de.name}: not a regular file")
            else:
                st = de.stat(follow_symlinks=False)
                if st.st_nlink > 1:
                    problems.append(f"{de.name}: hard link (links are refused)")
                    continue
                total += st.st_size
                entries.append(Entry(de.name, st.st_size))
            if len(entries) > MAX_FILES:
                raise UploadError(path, [f"over {MAX_FILES} files"])
    if total > limit:
        problems.append(f"files hold {total} bytes, over the upload limit of {limit}")
    return entries, problems
