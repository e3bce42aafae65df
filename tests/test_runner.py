"""The method runner: contract checks, per-image validation, and failed runs named by image."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import cli

from deblurbench.io import read_image

BAD_METHODS = {
    "nan-out": "return batch * float('nan')",
    "wrong-shape": "return batch[:, :, :-1]",
    "crashes": "raise RuntimeError('boom')",
    "too-bright": "return batch + 0.5",
}


def write_plugin(folder, name, body, entry="m:M"):
    d = folder / name
    d.mkdir(parents=True)
    (d / "method.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        version: "0.1"
        title: test plugin {name}
        entry: {entry}
        kind: baseline
        """))
    (d / "m.py").write_text(textwrap.dedent(f"""\
        from deblurbench.methods.base import Method
        class M(Method):
            def restore(self, batch):
                {body}
        """))
    return d


def test_identity_reproduces_the_blurry_images_exactly(prepared):
    cli("methods", "run", "identity", "--dataset", "synthetic-defocus", "--split", "test",
        cwd=prepared)
    out = prepared / "outputs/identity/synthetic-defocus/test"
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "ok" and sorted(rec["images"]) == ["coffee-00", "coffee-01"]
    assert all(v["seconds"] >= 0 and v["megapixels"] > 0 for v in rec["images"].values())
    blurry = read_image(prepared / "datasets/synthetic-defocus/raw/test/blurry/coffee-00.png")
    assert (read_image(out / "coffee-00.png") == blurry).all()  # 16-bit in, 16-bit out


@pytest.mark.parametrize("name,message", [
    ("nan-out", "method 'nan-out' on image 'coffee-00': output holds"),
    ("wrong-shape", "method 'wrong-shape' on image 'coffee-00': output shape"),
    ("crashes", "method 'crashes' crashed on image 'coffee-00': RuntimeError: boom"),
    ("too-bright", "method 'too-bright' on image 'coffee-00': output range"),
])
def test_a_bad_method_fails_its_run_with_the_image_id(prepared, tmp_path, name, message):
    plugins = tmp_path / "plugins"
    write_plugin(plugins, name, BAD_METHODS[name])
    env = {"DEBLURBENCH_METHOD_PATH": str(plugins)}
    proc = cli("methods", "run", name, "--dataset", "synthetic-defocus", cwd=prepared, env=env,
               check=False)
    assert proc.returncode == 1 and message in proc.stderr
    rec = json.loads((prepared / f"outputs/{name}/synthetic-defocus/test/run.json").read_text())
    assert rec["status"] == "failed" and message in rec["error"]
    assert not list((prepared / f"outputs/{name}/synthetic-defocus/test").glob("*.png"))
    # With --allow-failure the pipeline goes on; identity's outputs are untouched by all this.
    proc = cli("methods", "run", name, "--dataset", "synthetic-defocus", "--allow-failure",
               cwd=prepared, env=env, check=False)
    assert proc.returncode == 0


def test_unknown_method_suggests_close_names(prepared):
    proc = cli("methods", "run", "unsharp", "--dataset", "synthetic-defocus", cwd=prepared,
               check=False)
    assert proc.returncode == 2
    assert "unknown method 'unsharp'; did you mean 'unsharp-mask'?" in proc.stderr


def test_method_yaml_errors_name_the_file_and_key(project, tmp_path):
    plugins = tmp_path / "plugins"
    d = write_plugin(plugins, "oops", "return batch")
    (d / "method.yaml").write_text((d / "method.yaml").read_text() + "colour: red\n")
    proc = cli("methods", "list", cwd=project, env={"DEBLURBENCH_METHOD_PATH": str(plugins)},
               check=False)
    assert proc.returncode == 2
    assert "oops/method.yaml: unknown key 'colour'" in proc.stderr
    (d / "method.yaml").write_text((d / "method.yaml").read_text().replace("colour: red\n", "")
                                   .replace("entry: m:M", "entry: missing:M"))
    proc = cli("methods", "list", cwd=project, env={"DEBLURBENCH_METHOD_PATH": str(plugins)},
               check=False)
    assert "entry module missing.py not found" in proc.stderr


def test_methods_list_shows_the_built_in_methods(project):
    out = cli("methods", "list", cwd=project).stdout
    assert "identity" in out and "unsharp-mask" in out
