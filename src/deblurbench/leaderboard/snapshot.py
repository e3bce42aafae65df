"""A private, read-only copy of the results database that follows the file as it changes.

DuckDB lets one process write a database file and then refuses every other process, even a
read-only one ("Could not set lock on file"). The leaderboard must keep working while
`deblurbench score` writes, so it never opens the live file: it copies the file (and its
write-ahead log, which holds committed transactions not yet checkpointed) into a snapshot folder
and opens the copy read-only (migrated first to the current schema, so the board reads the
views of ``deblurbench.store.schema`` whatever version wrote the file). DuckDB replays the copied log in memory and ignores a transaction
that was not committed, so the copy shows the last committed state.

A copy is taken again only when the live file's size or modification time changed. A copy that
does not open (a checkpoint caught half-way) is discarded and the previous snapshot is kept;
the next call tries again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from deblurbench.store.db import connect as db_connect


class NoDatabase(FileNotFoundError):
    """The results database does not exist yet."""


@dataclass(frozen=True)
class Snapshot:
    path: Path  # the copy to open read-only
    source: Path  # the live database it was copied from
    stamp: tuple[int, int, int, int]  # (size, mtime_ns) of the file and of its WAL
    taken: float  # time.time() when copied


def _stamp(db: Path) -> tuple[int, int, int, int]:
    st = db.stat()
    wal = Path(str(db) + ".wal")
    ws = wal.stat() if wal.exists() else None
    return (st.st_size, st.st_mtime_ns, ws.st_size if ws else -1, ws.st_mtime_ns if ws else -1)


def default_cache_dir() -> Path:
    return Path(os.environ.get("DEBLURBENCH_SNAPSHOT_DIR",
                               Path(tempfile.gettempdir()) / "deblurbench-snapshots"))


def _folder(db: Path, cache_dir: Path) -> Path:
    key = hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:16]
    return cache_dir / key


_CURRENT: dict[Path, Snapshot] = {}


def snapshot(db: str | Path, cache_dir: str | Path | None = None, attempts: int = 3) -> Snapshot:
    """The newest consistent copy of ``db``; copies only when the live file changed."""
    db = Path(db).resolve()
    if not db.exists():
        raise NoDatabase(f"{db}: no results database yet; run `deblurbench score` first")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = _folder(db, cache)
    prev = _CURRENT.get(db)
    if prev is not None and prev.stamp == _stamp(db) and prev.path.exists():
        return prev
    folder.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(attempts):
        before = _stamp(db)
        target = folder / f"snap-{time.time_ns()}.duckdb"
        try:
            shutil.copyfile(db, target)
            wal = Path(str(db) + ".wal")
            if wal.exists():
                shutil.copyfile(wal, Path(str(target) + ".wal"))
        except FileNotFoundError as exc:  # the WAL was checkpointed away mid-copy
            last_error = exc
            _remove(target)
            continue
        if _stamp(db) != before:  # written while we copied: the copy may be torn
            last_error = RuntimeError("database changed during copy")
            _remove(target)
            time.sleep(0.05 * (attempt + 1))
            continue
        try:  # a torn copy does not open; a whole one is migrated to the schema the board reads
            db_connect(target).close()
        except duckdb.Error as exc:
            last_error = exc
            _remove(target)
            continue
        snap = Snapshot(target, db, before, time.time())
        if prev is not None and prev.path != target:
            _remove(prev.path)
        _CURRENT[db] = snap
        return snap
    if prev is not None and prev.path.exists():
        return prev  # keep showing the last good state
    raise OSError(f"{db}: could not take a consistent snapshot ({last_error})")


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def open_snapshot(db: str | Path, cache_dir: str | Path | None = None
                  ) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the newest snapshot of ``db`` (close it when done)."""
    return db_connect(snapshot(db, cache_dir).path, read_only=True)
