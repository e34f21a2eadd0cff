"""Layer rule (docs/design.md style 11): the proxy and the controllers import only api, client, nodeutil and
themselves; nodeutil imports only api."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT = {"api", "apiserver", "client", "nodeutil", "pkctl", "scheduler", "controllers", "kubelet", "proxy", "addons",
           "deploy"}


def _bad_imports(package: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in PROJECT and top not in (*allowed, package):
                    bad.append(f"{path.relative_to(ROOT)}: {name}")
    return bad


@pytest.mark.parametrize("package", ["proxy", "controllers"])
def test_component_imports_only_client_and_api(package):
    assert _bad_imports(package, ("api", "client", "nodeutil")) == []


def test_nodeutil_imports_only_api():
    assert _bad_imports("nodeutil", ("api",)) == []
