"""Checksum lock file: ``datasets/checksums.lock.json``, one sha256 per downloaded archive.

No public checksum exists for any of the defocus data sets, so the first download of an archive
records its sha256 and size here (commit the file); every later download or import of the same
archive must match, or it is refused. A checksum on the card, when there is one, wins.

Layout: ``{"<dataset>": {"<archive>": {"sha256", "size_bytes", "source", "recorded"}}}``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

from deblurbench.paths import atomic_file, datasets_dir

LOCK_NAME = "checksums.lock.json"


class ChecksumError(ValueError):
    """An archive whose sha256 differs from the card's or the lock file's."""


def lock_path() -> Path:
    return datasets_dir() / LOCK_NAME


def read_lock(path: Path | None = None) -> dict:
    path = path or lock_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ChecksumError(f"{path}: not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise ChecksumError(f"{path}: expected a mapping of data set -> archive -> record")
    return data


def locked(dataset: str, archive: str, path: Path | None = None) -> dict | None:
    """The recorded entry of one archive, or None."""
    return read_lock(path).get(dataset, {}).get(archive)


def record(dataset: str, archive: str, sha256: str, size_bytes: int, source: str,
           path: Path | None = None) -> None:
    """Add (never silently replace) an archive's checksum; written atomically."""
    path = path or lock_path()
    data = read_lock(path)
    old = data.get(dataset, {}).get(archive)
    if old and old["sha256"] != sha256:
        raise ChecksumError(f"{path}: {dataset}/{archive} is locked to sha256 {old['sha256']}, "
                            f"refusing to overwrite it with {sha256}")
    data.setdefault(dataset, {})[archive] = {
        "sha256": sha256, "size_bytes": int(size_bytes), "source": source,
        "recorded": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with atomic_file(path) as tmp, open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


def verify(dataset: str, archive: str, sha256: str, source: str,
           card_sha256: str | None = None, path: Path | None = None) -> str:
    """Check a finished file against the card, then the lock; writes nothing.

    Returns how it was verified: ``card``, ``lock``, or ``recorded`` (first seen: the caller
    locks it with :func:`record_new` once the archive has unpacked safely, so a bomb or a cut
    download never becomes the locked checksum).
    """
    if card_sha256:
        if card_sha256.lower() != sha256:
            raise ChecksumError(f"{source}: sha256 {sha256} does not match the card's "
                                f"{card_sha256.lower()} for {dataset}/{archive}")
        return "card"
    entry = locked(dataset, archive, path)
    if entry is None:
        return "recorded"
    if entry["sha256"] != sha256:
        raise ChecksumError(
            f"{source}: sha256 {sha256} does not match {entry['sha256']} recorded in "
            f"{path or lock_path()} for {dataset}/{archive} on {entry.get('recorded')} "
            f"(a changed or corrupted archive; delete that entry only if you trust the new one)")
    return "lock"


def record_new(dataset: str, archive: str, sha256: str, size_bytes: int, source: str,
               path: Path | None = None) -> bool:
    """Lock a verified archive's checksum unless one is locked already; True if written.

    The one place a first-seen checksum is recorded; fetch calls it only after the archive has
    unpacked safely. Card-verified archives are locked too, so they stay checked should the
    card's checksum be dropped."""
    if locked(dataset, archive, path) is not None:
        return False
    record(dataset, archive, sha256, size_bytes, source, path)
    return True


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
