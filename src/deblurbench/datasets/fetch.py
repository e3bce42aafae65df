"""`deblurbench datasets fetch NAME [--from PATH]`: download, verify and unpack a data set.

Flow: card urls (official first, then mirrors) -> ``datasets/<name>/downloads/<archive>.part``
(resumed with an HTTP Range request on a rerun or retry) -> size limit -> sha256 against the
card or the lock file (recorded on first download) -> safe extraction into a hidden folder ->
renamed to ``datasets/<name>/raw``. A url whose card entry has a ``manual`` note (Sync.com,
Google Drive, Baidu, OneDrive) is never scripted: the error lists those steps and the
``--from PATH`` import that follows them. Only a ``.part`` file (explicitly partial, kept for
resuming) can be left behind by a failure; ``raw`` is never half-written.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from deblurbench.datasets.card import DatasetCard
from deblurbench.datasets.extract import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RATIO,
    archive_kind,
    safe_extract,
)
from deblurbench.datasets.lock import ChecksumError, record_new, sha256_file, verify
from deblurbench.paths import dataset_dir

MARKER = ".deblurbench-fetch.json"
USER_AGENT = "deblurbench-fetch/0.1 (+https://github.com/; data set download)"
DEFAULT_MAX_DOWNLOAD = 100 * 1024**3


class ManualStepError(ValueError):
    """A link a script cannot follow (login wall, confirmation page, share page)."""


class DownloadError(ValueError):
    """A download that failed; a ``.part`` file may remain for the next run to resume."""


@dataclass(frozen=True)
class Limits:
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD
    max_unpacked_bytes: int = DEFAULT_MAX_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO


@dataclass(frozen=True)
class FetchResult:
    dataset: str
    raw: Path
    source: str
    archive: str | None
    sha256: str | None
    verified: str  # card | lock | recorded | folder | already
    files: int


# --------------------------------------------------------------------------------- download


def download(url: str, dest: Path, max_bytes: int = DEFAULT_MAX_DOWNLOAD,
             expected_size: int | None = None, retries: int = 2, timeout: float = 60.0,
             manual_hint: str = "") -> tuple[str, int]:
    """Download ``url`` to ``dest`` with resume; returns (sha256, size).

    The bytes go to ``dest.part`` (and ``dest.part.json`` keeps the url and the server's
    validator, so a resume never splices two different files); ``dest`` appears only complete.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    attempt = 0
    while True:
        try:
            _download_once(url, part, meta, max_bytes, expected_size, timeout, manual_hint)
            break
        except (TimeoutError, DownloadError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code < 500 and exc.code != 429:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            if attempt >= retries:
                have = part.stat().st_size if part.exists() else 0
                if not have:  # nothing to resume: leave nothing behind
                    part.unlink(missing_ok=True)
                    meta.unlink(missing_ok=True)
                    _rmdir_if_empty(dest.parent)
                    _rmdir_if_empty(dest.parent.parent)
                    raise DownloadError(f"{url}: download failed ({_reason(exc)})") from None
                raise DownloadError(f"{url}: download interrupted ({_reason(exc)}); kept {have} "
                                    f"bytes in {part}: rerun to resume") from None
            attempt += 1
            time.sleep(min(0.2 * 2**attempt, 5.0))
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        meta.unlink(missing_ok=True)
        raise DownloadError(f"{url}: got {size} bytes, the card lists {expected_size}")
    digest = sha256_file(part)
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    return digest, size


def _rmdir_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc) or type(exc).__name__


def _download_once(url: str, part: Path, meta: Path, max_bytes: int,
                   expected_size: int | None, timeout: float, manual_hint: str) -> None:
    offset = part.stat().st_size if part.exists() else 0
    state = json.loads(meta.read_text()) if meta.exists() and offset else {}
    if offset and state.get("url") != url:
        offset = 0  # a part from another url: never splice
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state.get("validator"):
            headers["If-Range"] = state["validator"]
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset and expected_size == offset:
            return  # already complete
        if exc.code == 416:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: server refused to resume at byte {offset}; "
                                f"restarting") from None
        raise
    with resp:
        ctype = resp.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
            raise ManualStepError(_html_message(url, manual_hint))
        if resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(f"{url}: server resumed at byte {start}, expected {offset}")
            mode = "ab"
        else:
            offset, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        if total is not None and total > max_bytes:
            raise ManualStepError(f"{url}: {total} bytes exceed the download limit of "
                                  f"{max_bytes} bytes (raise --max-download-gb if you mean it)")
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        meta.write_text(json.dumps({"url": url, "validator": validator}))
        received = offset
        with open(part, mode) as fh, tqdm(total=total, initial=offset, unit="B",
                                          unit_scale=True, desc=part.name[:-5]) as bar:
            first = True
            while True:
                block = resp.read(1 << 20)
                if not block:
                    break
                if first and offset == 0 and block.lstrip()[:15].lower().startswith(
                        (b"<!doctype html", b"<html")):
                    raise ManualStepError(_html_message(url, manual_hint))
                first = False
                received += len(block)
                if received > max_bytes:
                    fh.close()
                    part.unlink(missing_ok=True)
                    raise ManualStepError(f"{url}: more than {max_bytes} bytes, over the "
                                          f"download limit; removed {part}")
                fh.write(block)
                bar.update(len(block))
        if total is not None and received < total:
            raise DownloadError(f"connection closed after {received} of {total} bytes")


def _content_range_start(value: str) -> int:
    # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def _html_message(url: str, hint: str) -> str:
    host = urllib.parse.urlparse(url).netloc
    what = ("Google Drive asks to confirm large downloads" if "google" in host
            else "the server answered with a web page (a confirmation or login page)")
    return (f"{url}: {what}, not the archive. Open the link in a browser, save the file, then "
            f"run `deblurbench datasets fetch <name> --from <file>`." + (f" {hint}" if hint else ""))


# ------------------------------------------------------------------------------------ fetch


def fetch(name: str, from_path: str | Path | None = None, limits: Limits = Limits(),
          force: bool = False, retries: int = 2, timeout: float = 60.0) -> FetchResult:
    """Bring data set ``name`` into ``datasets/<name>/raw``; see the module docstring."""
    from deblurbench.datasets.manifest import get_card

    card = get_card(name)
    if card.source != "download":
        raise ManualStepError(f"{name}: source is {card.source!r}, nothing to fetch (use "
                              f"`deblurbench synth` for embedded data sets)")
    root = dataset_dir(name)
    raw = root / "raw"
    if raw.exists() and not force:
        marker = raw / MARKER
        if marker.exists():
            info = json.loads(marker.read_text())
            return FetchResult(name, raw, info.get("source", ""), info.get("archive"),
                               info.get("sha256"), "already", int(info.get("files", 0)))
        raise ManualStepError(f"{raw}: already exists but was not made by fetch; move it away "
                              f"or pass --force to replace it")
    if from_path is not None:
        return _import(card, Path(from_path).expanduser(), raw, limits)
    return _download_card(card, root, raw, limits, retries, timeout)


def _download_card(card: DatasetCard, root: Path, raw: Path, limits: Limits, retries: int,
                   timeout: float) -> FetchResult:
    auto = [u for u in card.urls if u.archive and not u.manual]
    errors: list[str] = []
    for u in auto:
        archive = root / "downloads" / u.archive
        try:
            if archive.exists():
                digest, size = sha256_file(archive), archive.stat().st_size
            else:
                digest, size = download(u.url, archive, limits.max_download_bytes,
                                        u.size_bytes, retries, timeout)
            how = _verify(card.name, u.archive, digest, u.url, u.sha256, archive)
        except (ManualStepError, DownloadError) as exc:
            errors.append(str(exc))
            continue
        files = _install_archive(archive, raw, limits)
        record_new(card.name, u.archive, digest, size, u.url)  # only once it unpacked safely
        return _finish(card.name, raw, u.url, u.archive, digest, how, files)
    raise ManualStepError(_no_source_message(card, errors))


def _verify(dataset: str, archive_name: str, digest: str, source: str, card_sha: str | None,
            path: Path) -> str:
    try:
        return verify(dataset, archive_name, digest, source, card_sha)
    except ChecksumError:
        path.unlink(missing_ok=True)  # a bad download is useless; a rerun fetches afresh
        raise


def _no_source_message(card: DatasetCard, errors: list[str]) -> str:
    lines = [f"{card.name}: no url could be downloaded by script."]
    lines += [f"tried: {e}" for e in errors]
    manual = [u for u in card.urls if u.manual]
    if manual:
        lines.append("manual steps (then `deblurbench datasets fetch "
                     f"{card.name} --from <file or folder>`):")
        for u in manual:
            lines.append(f"{u.kind} {u.url}" + (f" [{u.archive}]" if u.archive else "")
                         + f": {' '.join(u.manual.split())}")
    return "\n".join(lines)


def _install_archive(archive: Path, raw: Path, limits: Limits) -> int:
    incoming = raw.parent / ".raw.incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    written = safe_extract(archive, incoming, limits.max_unpacked_bytes, limits.max_ratio)
    _swap(incoming, raw)
    return len(written)


def _swap(incoming: Path, raw: Path) -> None:
    """Replace ``raw`` by ``incoming`` with renames only; the old copy goes only at the end."""
    old = raw.parent / ".raw.old"
    shutil.rmtree(old, ignore_errors=True)
    if raw.exists() or raw.is_symlink():
        os.replace(raw, old)
    os.replace(incoming, raw)
    shutil.rmtree(old, ignore_errors=True)


def _finish(name: str, raw: Path, source: str, archive: str | None, digest: str | None,
            how: str, files: int) -> FetchResult:
    (raw / MARKER).write_text(json.dumps({"source": source, "archive": archive,
                                          "sha256": digest, "verified": how, "files": files},
                                         indent=2))
    return FetchResult(name, raw, source, archive, digest, how, files)


def _import(card: DatasetCard, src: Path, raw: Path, limits: Limits) -> FetchResult:
    if src.is_dir():
        incoming = raw.parent / ".raw.incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        n = _copy_tree(src, incoming)
        _swap(incoming, raw)
        return _finish(card.name, raw, str(src.resolve()), None, None, "folder", n)
    if not src.is_file():
        raise ManualStepError(f"{src}: no such file or folder")
    archive_kind(src)  # refuse a saved HTML page early, with the file's name
    url = next((u for u in card.urls if u.archive == src.name), None)
    digest = sha256_file(src)
    how = verify(card.name, src.name, digest, str(src.resolve()), url.sha256 if url else None)
    files = _install_archive(src, raw, limits)
    record_new(card.name, src.name, digest, src.stat().st_size, str(src.resolve()))
    return _finish(card.name, raw, str(src.resolve()), src.name, digest, how, files)


def _copy_tree(src: Path, dest: Path) -> int:
    """Hard-link (same file system) or copy every regular file; links are refused."""
    files = [p for p in sorted(src.rglob("*"))]
    for p in files:
        if p.is_symlink():
            raise ManualStepError(f"{p}: symbolic link inside the imported folder (refused; "
                                  f"copy the real files)")
    n = 0
    try:
        for p in tqdm(files, desc=f"import {src.name}", unit="file"):
            target = dest / p.relative_to(src)
            if p.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(p, target)
            except OSError:
                shutil.copy2(p, target)
            n += 1
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return n


def limits_from(real, max_download_gb: float | None = None,
                max_unpacked_gb: float | None = None) -> Limits:
    """:class:`Limits` from ``params.yaml``'s ``real`` section, with command-line overrides."""
    gb = 1024**3
    return Limits(int((max_download_gb or real.max_download_gb) * gb),
                  int((max_unpacked_gb or real.max_unpacked_gb) * gb), real.max_ratio)
