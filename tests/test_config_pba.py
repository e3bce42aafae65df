"""params.yaml's ``pba`` section is typed when the file is read, like every other section."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from deblurbench.config import ConfigError, PBAParams, PBASection, load_params


def test_the_pba_section_is_a_typed_dataclass_holding_the_paper_definition():
    p = load_params(REPO / "params.yaml")
    assert isinstance(p.pba, PBASection)
    assert p.pba.definition() == PBAParams() and p.pba.pixel_map_patch == 64
    assert p.pba.patch_sizes == (64, 128, 256, 512) and p.pba.ssim_window == 11


@pytest.mark.parametrize(("pba", "message"), [
    ({"reblur_sigmaa": 3.6}, r"params.yaml:pba: unknown key 'reblur_sigmaa'"),
    ({"thresholds": [0.5, 0.3, 0.9]}, r"params.yaml:pba: thresholds"),
    ({"pixel_map_patch": 4}, r"params.yaml:pba: pixel_map_patch: 4 is smaller than the 11-px"),
    ({"border": "wrap"}, r"params.yaml:pba.border: expected one of"),
])
def test_a_bad_pba_value_is_refused_when_params_yaml_is_read(tmp_path, pba, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"pba": pba}))
    with pytest.raises(ConfigError, match=message):
        load_params(path)
