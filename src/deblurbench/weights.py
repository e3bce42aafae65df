"""Weight files, shared by metrics and methods: where each is looked for, whether it is there,
and importing or downloading checked copies into place.

Nothing is downloaded while scoring or running. On a machine with internet, pyiqa, torchvision,
CLIP, timm and diffusers fetch files on first use into the same places, as ``deblurbench weights
download`` does on request; offline, a user copies them in with ``deblurbench weights import
DIR``. A metric whose files are missing is unavailable; a method's pretrained part whose files
are missing falls back to random init, and its run says so (``weights`` in ``run.json``).

Places (``$TORCH_HOME`` defaults to ``~/.cache/torch``): pyiqa files in ``$TORCH_HOME/hub/pyiqa``,
torchvision backbones in ``$TORCH_HOME/hub/checkpoints``, CLIP models in ``$TORCH_HOME/hub/clip``;
Hugging Face hub files (timm backbones, Stable Diffusion, CLIP, BLIP...) in the HF hub cache
(``$HF_HUB_CACHE``, default ``$HF_HOME/hub``) in huggingface_hub's own layout, so that the
libraries find them offline (:func:`place_hf`).

Who needs what (:func:`all_needs`): ``metric:<name>`` from ``deblurbench.metrics.weights``,
``method:<name>/<id>`` from each method card's ``pretrained`` list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

Needs = dict[str, tuple["WeightFile", ...]]


@dataclass(frozen=True)
class WeightFile:
    name: str  # file name (or, for kind "hf", "repo_id/filename")
    kind: str  # pyiqa | torchvision | clip | hf
    url: str
    sha256: str | None = None  # full digest where the publisher gives it
    min_bytes: int = 1_000  # smaller is an error page or a truncated copy

    @property
    def hf_ids(self) -> tuple[str, str]:
        """(repo_id, filename) of a hub file: ``owner/repo/path/in/repo``."""
        owner, repo, fname = self.name.split("/", 2)
        return f"{owner}/{repo}", fname

    @property
    def flat_name(self) -> str:
        """A hub file's name in an import folder without subfolders: ``/`` -> ``--``
        (``timm--vit_base_patch8_224.augreg2_in21k_ft_in1k--model.safetensors``); hub repo
        names cannot contain ``--``, so it is unambiguous."""
        return self.name.replace("/", "--")

    def folder(self) -> Path:
        if self.kind == "hf":
            # read at call time: tests and users set HF_HUB_CACHE after import
            from huggingface_hub import constants
            from huggingface_hub.file_download import repo_folder_name

            return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=self.hf_ids[0],
                                                                   repo_type="model")
        import torch.hub

        hub = Path(torch.hub.get_dir())
        return hub / {"pyiqa": "pyiqa", "torchvision": "checkpoints", "clip": "clip"}[self.kind]

    def path(self) -> Path | None:
        """Where the file is when present, else None."""
        if self.kind == "hf":
            from huggingface_hub import try_to_load_from_cache

            got = try_to_load_from_cache(*self.hf_ids)
            return Path(got) if isinstance(got, str) else None
        p = self.folder() / self.name
        return p if p.is_file() else None

    def expected_prefix(self) -> str | None:
        """torchvision/pyiqa convention: ``name-<first 8 hex of sha256>.ext``."""
        stem = self.name.rsplit(".", 1)[0]
        tail = stem.rsplit("-", 1)[-1] if "-" in stem else ""
        return tail if len(tail) == 8 and all(c in "0123456789abcdef" for c in tail) else None


def _where(w: WeightFile) -> str:
    if w.kind != "hf":
        return f"{w.name} in {w.folder().resolve()} (from {w.url})"
    return (f"{w.name} in the Hugging Face cache {w.folder().resolve()} (from {w.url}; to "
            f"import it, name it DIR/{w.name} or DIR/{w.flat_name})")


def status(needs: Needs | None = None) -> list[dict]:
    """One row per (owner, file): where it is looked for and whether it is there. A metric
    with packaged parameters has a row for the package file, which it uses when present."""
    from deblurbench.metrics.classical_models import PACKAGED

    needs = all_needs() if needs is None else needs
    rows = []
    for owner, files in needs.items():
        metric = owner.removeprefix("metric:")
        for w in files:
            p = w.path()
            rows.append({"metric": metric, "file": w.name, "kind": w.kind,
                         "looked_in": str(w.folder().resolve()), "present": p is not None,
                         "url": w.url})
        if metric in PACKAGED:
            m = PACKAGED[metric]
            folder = m.folder()
            rows.append({"metric": metric, "file": f"{m.relpath} ({m.dist} {m.version})",
                         "kind": "package",
                         "looked_in": str(folder) if folder else f"{m.module} (not installed)",
                         "present": m.path() is not None,
                         "url": f"https://pypi.org/project/{m.dist}/{m.version}/"})
    return rows


class WeightImportError(ValueError):
    """A user-provided file that does not match what a metric needs."""


def check_file(w: WeightFile, path: Path) -> None:
    """Refuse a copy by size, by HTML content, or by the digest its name or URL carries."""
    size = path.stat().st_size
    if size < w.min_bytes:
        raise WeightImportError(f"{path}: {size} bytes, too small for {w.name} "
                                f"(at least {w.min_bytes}); truncated or an error page?")
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise WeightImportError(f"{path}: is an HTML page, not {w.name} (a failed download?)")
    if w.name.endswith(".safetensors"):
        _check_safetensors(w, path, size)
    prefix = w.expected_prefix()
    if w.sha256 or prefix:
        digest = sha256_file(path)
        want = w.sha256 or prefix
        if not digest.startswith(want):
            raise WeightImportError(f"{path}: sha256 {digest[:16]}... does not match {w.name} "
                                    f"(expected {want[:16]}...)")


#: safetensors' own limit on the header length
SAFETENSORS_MAX_HEADER = 100_000_000


def _check_safetensors(w: WeightFile, path: Path, size: int) -> None:
    """The format's frame, without loading a tensor: an 8-byte little-endian header length, a
    JSON header, and tensor data that ends exactly where the file does (catches a cut copy)."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if not 2 <= n <= min(size - 8, SAFETENSORS_MAX_HEADER):
            raise WeightImportError(f"{path}: not a safetensors file for {w.name} (header length "
                                    f"{n} in a {size}-byte file)")
        try:
            header = json.loads(fh.read(n))
            ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise WeightImportError(f"{path}: not a safetensors file for {w.name} (header: "
                                    f"{exc})") from None
    if max(ends, default=0) != size - 8 - n:
        raise WeightImportError(f"{path}: tensors of {w.name} end at byte "
                                f"{8 + n + max(ends, default=0)}, the file has {size} "
                                f"(truncated or padded)")


def _key(name: str, needs: Needs) -> str | None:
    """``name`` as a key of ``needs``: as given, or a metric's bare name."""
    return name if name in needs else (f"metric:{name}" if f"metric:{name}" in needs else None)


@dataclass(frozen=True)
class Pretrained:
    """A pretrained part a method card names (``pretrained:``): its files with their digests."""

    id: str  # e.g. sd2-base
    title: str
    files: list[WeightFile] = field(default_factory=list)
    required: bool = False  # True: the method refuses to run without it; else random init
    # "published": every file carries the publisher's sha256 and a copy must match it;
    # "recorded": the publisher's digests are not known to the project (a Hugging Face
    # snapshot's LFS digests, offline), so a file is checked by size and format only and the
    # run records the sha256 of what it loaded. The card says which, so nobody mistakes one
    # for the other.
    digests: str = "published"

    def missing(self) -> list[WeightFile]:
        return [w for w in self.files if w.path() is None]


def resolve(part: Pretrained) -> tuple[dict[str, Path] | None, dict]:
    """The part's files (name -> path) when all are present and pass the checks, else None;
    and the record a run keeps: which weights it used, or that it used random init and why."""
    gone = part.missing()
    if gone:
        return None, {"id": part.id, "title": part.title, "status": "random init",
                      "reason": "weights missing: " + "; ".join(_where(w) for w in gone)
                      + "; copy them in with `deblurbench weights import DIR`"}
    paths = {}
    for w in part.files:
        p = w.path()
        assert p is not None
        check_file(w, p)
        paths[w.name] = p
    digests = {w.name: sha256_file(paths[w.name])[:16] for w in part.files}
    return paths, {"id": part.id, "title": part.title, "status": "loaded", "sha256": digests}


def all_needs() -> Needs:
    """Every weight file the project knows: metrics' and method cards' (lazy, no torch)."""
    from deblurbench.methods.registry import discover
    from deblurbench.metrics.weights import _needs as metric_needs

    needs: Needs = metric_needs()
    for name, card in discover().items():
        for part in card.pretrained:
            needs[f"method:{name}/{part.id}"] = tuple(part.files)
    return needs


def _import_candidates(src: Path, needs: Needs) -> dict[str, tuple[WeightFile, Path]]:
    """Known files under ``src``: pyiqa/torchvision/CLIP files by exact name in any subfolder;
    a hub file as ``<repo_id>/<filename>`` below ``src`` (any depth) or as its ``flat_name``."""
    known = {w.name: w for files in needs.values() for w in files}  # hub names hold a "/"
    hub = [w for w in known.values() if w.kind == "hf"]
    found: dict[str, tuple[WeightFile, Path]] = {}
    for p in sorted(src.rglob("*")):
        rel = "/" + p.relative_to(src).as_posix()
        w = next((h for h in hub if rel.endswith("/" + h.name) or p.name == h.flat_name),
                 known.get(p.name))
        if w is not None and p.is_file():
            found[w.name] = (w, p)
    return found


def import_dir(src: str | Path, needs: Needs | None = None) -> list[tuple[str, Path]]:
    """Copy every known weight file found in ``src`` into place, after checks.

    Files are matched by exact name in any subfolder; a Hugging Face hub file by its
    ``repo_id/filename`` path (``src/timm/vit_base_patch8_224.augreg2_in21k_ft_in1k/
    model.safetensors``) or its flat name (``timm--vit_base_patch8_224.augreg2_in21k_ft_in1k
    --model.safetensors``), and placed into the HF cache by :func:`place_hf`. All files are
    checked before any is copied; returns [(name, destination)]. Unknown files are ignored.
    """
    needs = all_needs() if needs is None else needs
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a folder")
    found = _import_candidates(src, needs)
    if not found:
        names = [w.name for files in needs.values() for w in files]
        raise WeightImportError(f"{src}: holds none of the known weight files "
                                f"({', '.join(sorted(set(names)))})")
    for w, p in found.values():
        check_file(w, p)
    done = []
    for name, (w, p) in sorted(found.items()):
        if w.kind == "hf":
            done.append((name, place_hf(w, p)))
            continue
        dest = w.folder() / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        shutil.copyfile(p, tmp)
        tmp.replace(dest)
        done.append((name, dest))
    return done


def local_revision(sha256: str) -> str:
    """The snapshot name of an imported hub file: the first 40 hex digits of its sha256.

    The hub commit it came from is unknown offline; a 40-hex name is what huggingface_hub takes
    for a commit hash, and deriving it from the content makes a re-import land in place. It is
    never a real hub commit: online, huggingface_hub repoints ``refs/main`` to the real one
    (and finds the blob in place: it names LFS blobs by their sha256 too)."""
    return sha256[:40]


def place_hf(w: WeightFile, src: Path, move: bool = False) -> Path:
    """Put a checked copy of hub file ``w`` where huggingface_hub looks for it, in its layout:
    ``<repo folder>/blobs/<sha256>``, ``snapshots/<local_revision>/<filename>`` (a relative
    symlink to the blob, or a copy where links are refused, as huggingface_hub does) and
    ``refs/main`` naming that revision; a repository's later files join the snapshot
    ``refs/main`` already names, as the files of one hub commit do. Each part is written to ``.partial`` and renamed, the
    ref last, so a reader never follows it into a half-written snapshot. Returns the snapshot
    path."""
    digest = sha256_file(src)
    repo = w.folder()
    blob = repo / "blobs" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    if blob.is_file():
        if move:
            src.unlink()
    else:
        tmp = blob.with_name(digest + ".partial")
        if move:
            os.replace(src, tmp)
        else:
            shutil.copyfile(src, tmp)
        tmp.replace(blob)
    ref = repo / "refs" / "main"
    current = ref.read_text().strip() if ref.is_file() else ""
    # one snapshot per repository: a multi-file snapshot (SD's unet/, vae/, ...) must resolve
    # through the one revision refs/main names, so later files join the current snapshot
    rev = current if current and (repo / "snapshots" / current).is_dir() \
        else local_revision(digest)
    pointer = repo / "snapshots" / rev / w.hf_ids[1]
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(pointer.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), tmp)
    except OSError:
        shutil.copyfile(blob, tmp)
    tmp.replace(pointer)
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name("main.partial")
    tmp.write_text(rev)  # no newline: huggingface_hub reads the ref verbatim
    tmp.replace(ref)
    return pointer


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_missing(names: list[str] | None = None, mirror: str | None = None,
                     needs: Needs | None = None) -> list[tuple[str, str]]:
    """Fetch the missing weight files of ``names`` (keys of ``needs``, default all) from their publishers, or
    from ``mirror`` (``<mirror>/<file name>``, a hub file at ``<mirror>/<repo_id>/<filename>``:
    a team's own copy), and put them in place.

    Each file goes through the same checks as ``import_dir`` before it is moved in, so an error
    page or a wrong digest never lands; a failed file is reported and the others go on. Without
    a mirror, hub files go through ``huggingface_hub.hf_hub_download``, the cache's own client.
    Returns [(file, "-> destination" | "failed: reason")].
    """
    # The data set downloader is the project's one resumable, size-limited HTTP client.
    from deblurbench.datasets.fetch import DownloadError, ManualStepError, download

    needs = all_needs() if needs is None else needs
    names = names or list(needs)
    unknown = [m for m in names if _key(m, needs) is None]
    if unknown:
        raise ValueError(f"no weight files are known for {', '.join(unknown)} (known: "
                         f"{', '.join(needs)})")
    todo = {w.name: w for m in names for w in needs[_key(m, needs)] if w.path() is None}
    out: list[tuple[str, str]] = []
    for name, w in sorted(todo.items()):
        if w.kind == "hf" and not mirror:
            out.append((name, _hub_download(w)))
            continue
        url = f"{mirror.rstrip('/')}/{name}" if mirror else w.url
        staged = _staging(w)
        try:
            download(url, staged)
            check_file(w, staged)
        except (DownloadError, ManualStepError, WeightImportError) as exc:
            staged.unlink(missing_ok=True)
            out.append((name, f"failed: {exc}"))
            continue
        if w.kind == "hf":
            dest = place_hf(w, staged, move=True)
        else:
            dest = w.folder() / name
            staged.replace(dest)
        out.append((name, f"-> {dest}"))
    for w in todo.values():
        if w.kind != "hf" or mirror:
            _rmdir_empty(_staging(w).parent, w.folder() if w.kind == "hf" else None)
    return out


def _staging(w: WeightFile) -> Path:
    """Where a download waits for its checks: beside its destination (a rename moves it in),
    named so that no reader takes it for the file; a cut download's ``.part`` resumes there."""
    if w.kind == "hf":
        return w.folder() / "blobs" / f"{w.flat_name}.download"  # as huggingface_hub's .incomplete
    return w.folder() / ".download" / w.name


def _rmdir_empty(*folders: Path | None) -> None:
    for folder in folders:
        try:
            if folder is not None:
                folder.rmdir()  # only when empty: a cut download's .part waits there to resume
        except OSError:
            pass


def _hub_download(w: WeightFile) -> str:
    """``hf_hub_download`` into the HF cache, then the usual checks; a failure is reported."""
    from huggingface_hub import hf_hub_download

    try:
        got = Path(hf_hub_download(*w.hf_ids))
        check_file(w, got)
    except Exception as exc:  # noqa: BLE001 - OSError, hub and HTTP-client errors alike:
        # whatever the hub client raises is one failed file, and the other files go on
        return f"failed: {type(exc).__name__}: {exc}"
    return f"-> {got}"
