"""params.yaml's training lists: an extra training set must belong to a method the pipeline
trains, and a cross row may test on a data set a method was trained on only as an extra."""

from __future__ import annotations

import pytest
import yaml

from deblurbench.config import ConfigError, load_params


def _write(tmp_path, train: dict, cross: list[dict]):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"datasets": ["synthetic-defocus"],
                                 "train": {"methods": ["deblurdiff"]} | train,
                                 "run": {"methods": ["identity"], "cross": cross}}))
    return p


def test_a_cross_row_may_test_a_method_trained_on_an_extra_set(tmp_path):
    p = _write(tmp_path, {"extra": [{"method": "deblurdiff", "dataset": "synthetic-motion"}]},
               [{"method": "deblurdiff", "trained_on": "synthetic-motion",
                 "dataset": "synthetic-defocus"}])
    params = load_params(p)
    assert [(e.method, e.dataset) for e in params.train.extra] == [("deblurdiff",
                                                                    "synthetic-motion")]
    assert params.run.cross[0].trained_on == "synthetic-motion"


def test_an_extra_set_of_a_method_not_trained_is_refused_with_the_entry_named(tmp_path):
    p = _write(tmp_path, {"extra": [{"method": "mbsd", "dataset": "synthetic-motion"}]}, [])
    with pytest.raises(ConfigError, match=r"train\.extra\[0\]\.method 'mbsd' is not under "
                                          r"train\.methods"):
        load_params(p)


def test_a_cross_row_trained_on_a_set_nobody_trains_on_is_refused(tmp_path):
    p = _write(tmp_path, {"extra": []},
               [{"method": "deblurdiff", "trained_on": "synthetic-motion",
                 "dataset": "synthetic-defocus"}])
    with pytest.raises(ConfigError, match=r"run\.cross\[0\]\.trained_on 'synthetic-motion' is "
                                          r"not under datasets or train\.extra"):
        load_params(p)
