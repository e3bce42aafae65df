"""params.yaml's training lists: an extra training set must belong to a method the pipeline
trains, and a cross row may test on a data set a method was trained on only as an extra."""

from __future__ import annotations

import pytest
import yaml

from deblurbench.config import ConfigError, load_params


MOTION = {"name": "synthetic-motion", "kind": "motion-mixed", "source": "synthetic-defocus",
          "kernel_size": 15}


def _write(tmp_path, train: dict, cross: list[dict], copies: list[dict] | None = None):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"datasets": ["synthetic-defocus"],
                                 "copies": [MOTION] if copies is None else copies,
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
                                          r"not under train\.datasets or train\.extra"):
        load_params(p)


def test_train_datasets_default_to_every_data_set_and_must_be_among_them(tmp_path):
    p = _write(tmp_path, {}, [])
    assert load_params(p).train.datasets == ["synthetic-defocus"]
    p = _write(tmp_path, {"datasets": ["synthetic-motion"]}, [])
    with pytest.raises(ConfigError, match=r"train\.datasets lists synthetic-motion, which "
                                          r"datasets does not"):
        load_params(p)


def test_trained_methods_are_scored_only_where_they_trained_and_cross_rows_elsewhere(tmp_path):
    """A data set without ground truth (synthetic-target) gets the untrained methods directly
    and the trained ones only through their cross rows."""
    from deblurbench.config import pipeline_runs

    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({
        "datasets": ["synthetic-defocus", "synthetic-target"],
        "train": {"methods": ["bd-diff"], "datasets": ["synthetic-defocus"]},
        "run": {"methods": ["identity"], "splits": ["test"],
                "cross": [{"method": "bd-diff", "trained_on": "synthetic-defocus",
                           "dataset": "synthetic-target"}]}}))
    assert sorted(pipeline_runs(load_params(p))) == [
        ("bd-diff", "synthetic-defocus", "test"),
        ("bd-diff~synthetic-defocus", "synthetic-target", "test"),
        ("identity", "synthetic-defocus", "test"),
        ("identity", "synthetic-target", "test")]


def test_an_extra_training_set_must_be_a_data_set_or_a_copy_the_pipeline_makes(tmp_path):
    extra = {"extra": [{"method": "deblurdiff", "dataset": "synthetic-motion"}]}
    assert load_params(_write(tmp_path, extra, [])).copies[0].kernel_size == 15
    with pytest.raises(ConfigError, match=r"train\.extra\[0\]\.dataset 'synthetic-motion' is "
                                          r"neither under datasets nor made by copies"):
        load_params(_write(tmp_path, extra, [], copies=[]))


def test_a_copy_blurs_a_prepared_data_set_under_a_name_of_its_own(tmp_path):
    copy = MOTION | {"settings": 1}
    with pytest.raises(ConfigError, match="settings"):
        load_params(_write(tmp_path, {}, [], copies=[copy]))
    with pytest.raises(ConfigError, match=r"copies\[0\]\.source 'realdof' is not under "
                                          r"datasets"):
        load_params(_write(tmp_path, {}, [], copies=[MOTION | {"source": "realdof"}]))
    with pytest.raises(ConfigError, match=r"copies\[1\]\.name 'synthetic-motion' is already a "
                                          r"data set"):
        load_params(_write(tmp_path, {}, [], copies=[MOTION, MOTION]))
    with pytest.raises(ConfigError, match=r"copies\[0\]\.name 'synthetic-defocus' is already"):
        load_params(_write(tmp_path, {}, [], copies=[MOTION | {"name": "synthetic-defocus"}]))
