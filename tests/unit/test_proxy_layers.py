"""Layer rule (docs/design.md style 11): the proxy and the controllers import only api, client and themselves."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT = {"api", "apiserver", "client", "pkctl", "scheduler", "controllers", "kubelet", "proxy", "addons", "deploy"}


@pytest.mark.parametrize("package", ["proxy", "controllers"])
def test_component_imports_only_client_and_api(package):
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
                if top in PROJECT and top not in ("api", "client", package):
                    bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert bad == []
