"""The engine's layers import one way: data sets below blur annotation (``annotate`` reads
manifests; ``datasets`` never reads annotations; the quality report, which reads both, sits
above them). Checked on the source, function-level imports included."""

from __future__ import annotations

import ast

from conftest import REPO

SRC = REPO / "src" / "deblurbench"


def imports(package: str) -> dict[str, set[str]]:
    """module path -> the deblurbench modules it imports, anywhere in the file."""
    out = {}
    for path in sorted((SRC / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[str(path.relative_to(SRC))] = {n for n in names if n.startswith("deblurbench")}
    return out


def test_datasets_never_import_annotate():
    bad = {m: sorted(n for n in names if n.startswith("deblurbench.annotate"))
           for m, names in imports("datasets").items()}
    assert not {m: n for m, n in bad.items() if n}


def test_annotate_reads_datasets_so_the_arrow_has_one_direction():
    used = set().union(*imports("annotate").values())
    assert any(n.startswith("deblurbench.datasets") for n in used)
