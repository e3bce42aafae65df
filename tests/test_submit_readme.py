"""The README's worked submission example, run command by command in a tiny project, and the
refusals of `deblurbench submit method`."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import duckdb
import yaml
from conftest import BIN, REPO, cli


def readme_example() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Submitting results or a method", 1)[1]
    block = re.search(r"Worked example.*?```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_worked_example_runs(prepared):
    shutil.copytree(REPO / "examples", prepared / "examples")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "DEBLURBENCH_ROOT": str(prepared)}
    commands = readme_example()
    assert commands[0].startswith("deblurbench submit method")
    for line in commands:
        proc = subprocess.run(shlex.split(line), cwd=prepared, capture_output=True, text=True,
                              env=env, timeout=600, check=False)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    assert params["run"]["methods"][-1] == "box-sharpen"  # the next `dvc repro` runs it
    assert (prepared / "methods/box-sharpen/method.yaml").exists()
    con = duckdb.connect(str(prepared / "leaderboard/results.duckdb"), read_only=True)
    src = dict(con.execute("SELECT method, source FROM methods").fetchall())
    a = con.execute("SELECT image_id, metric, value FROM scores WHERE region = 'all' AND run_id "
                    "= 'box-sharpen/synthetic-defocus/test/defocus' ORDER BY ALL").fetchall()
    b = con.execute("SELECT image_id, metric, value FROM scores WHERE region = 'all' AND run_id "
                    "= 'my-deblurrer/synthetic-defocus/test/defocus' ORDER BY ALL").fetchall()
    card = con.execute("SELECT card FROM methods WHERE method = 'my-deblurrer'").fetchone()[0]
    con.close()
    assert src["box-sharpen"] == "measured" and src["my-deblurrer"] == "submitted"
    assert len(a) == 2 * 3 and a == b  # the zipped outputs of box-sharpen score the same
    assert "https://example.org/my-deblurrer-paper" in card
    assert "my-deblurrer" in proc.stdout  # `leaderboard --print` lists the submission


def test_submit_method_refusals_change_nothing(project, tmp_path):
    before = (project / "params.yaml").read_text()
    bad = tmp_path / "m" / "broken"
    bad.mkdir(parents=True)
    (bad / "method.yaml").write_text("name: broken\nversion: '1'\ntitle: t\nentry: b:B\n"
                                     "kind: classical\n")
    (bad / "b.py").write_text("from deblurbench.methods.base import Method\n"
                              "class B(Method):\n    def restore(self, x, **e):\n"
                              "        return x[:, :, :-1]\n")
    proc = cli("submit", "method", str(bad), cwd=project, check=False)
    assert proc.returncode == 2
    assert "output shape" in proc.stderr
    (bad / "method.yaml").write_text("name: broken\nversion: '1'\ntitle: t\nentry: b:B\n"
                                     "kind: magic\n")
    proc = cli("submit", "method", str(bad), cwd=project, check=False)
    assert proc.returncode == 2 and "kind" in proc.stderr
    proc = cli("submit", "method", str(project / "methods" / "identity"), cwd=project,
               check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (project / "params.yaml").read_text() == before
    assert not (project / "methods" / "broken").exists()


def test_submit_method_tries_the_code_through_the_runner_with_its_padding(project, tmp_path):
    """A method that needs sizes in multiples of 16 is padded by the runner (as in `methods
    run`), so its trial on the odd-sized tiny images passes; without pad_multiple it fails."""
    folder = tmp_path / "m" / "needs16"
    folder.mkdir(parents=True)
    code = ("from deblurbench.methods.base import Method\n"
            "class N(Method):\n    def restore(self, x, **e):\n"
            "        h, w = x.shape[-2:]\n"
            "        if h % 16 or w % 16:\n"
            "            raise ValueError(f'{h}x{w} is not a multiple of 16')\n"
            "        return x\n")
    (folder / "n.py").write_text(code)
    card = "name: needs16\nversion: '1'\ntitle: t\nentry: n:N\nkind: classical\n"
    (folder / "method.yaml").write_text(card)
    proc = cli("submit", "method", str(folder), cwd=project, check=False)
    assert proc.returncode == 2 and "is not a multiple of 16" in proc.stderr
    assert not (project / "methods" / "needs16").exists()
    (folder / "method.yaml").write_text(card + "pad_multiple: 16\n")
    cli("submit", "method", str(folder), cwd=project)
    assert (project / "methods" / "needs16" / "n.py").read_text() == code
    assert "needs16" in (project / "params.yaml").read_text()
