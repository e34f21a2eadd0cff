"""The layer contracts (pyproject.toml's [tool.importlinter]) hold on this tree and catch a bad import.

The second half runs the same contracts on a tiny synthetic tree in a temporary
directory, one module per rule, so a deliberate bad import shows that each
rule fails, names itself and the import, and that an import inside a function
counts; `lint-imports` resolves the root packages from its working directory
first, which is how the synthetic tree stands in for the real one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]

# One clean module per package, importing what its rule allows.
CLEAN_TREE = {
    "api/meta.py": "",
    "client/rest.py": "from api import meta\n",
    "nodeutil/netlink.py": "import api.meta\n",
    "apiserver/main.py": "from api.meta import x\n",
    "scheduler/main.py": "import api.meta\nimport client.rest\nimport nodeutil.netlink\nfrom scheduler import main\n",
    "controllers/main.py": "import client.rest\n",
    "kubelet/main.py": "import nodeutil.netlink\nfrom kubelet.runtime import client\n",
    "kubelet/runtime/__init__.py": "",
    "kubelet/runtime/client.py": "",
    "proxy/main.py": "import client.rest\n",
    "addons/dns/__init__.py": "",
    "addons/dns/main.py": "import client.rest\n",
    "pkctl/main.py": "import client.rest\n",
    "deploy/cli.py": "import deploy.up\n",
    "deploy/up.py": "import api.meta\nimport client.rest\nimport kubelet.main\nimport apiserver.main\nimport addons.dns.main\n",
}


def lint(cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(LINT + ["--no-cache", str(CONFIG)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_tree_keeps_every_layer_contract():
    r = lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def tree(tmp_path):
    roots = tomllib.loads(CONFIG.read_text())["tool"]["importlinter"]["root_packages"]
    for pkg in roots:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for path, text in CLEAN_TREE.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_synthetic_tree_is_clean(tree):
    r = lint(tree)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 5 kept, 0 broken." in r.stdout, r.stdout


@pytest.mark.parametrize("path, text, contract, edge", [
    ("api/bad.py", "import apiserver\n",
     "api imports nothing of the project", "api.bad -> apiserver"),
    ("client/bad.py", "import nodeutil.netlink\n",
     "client and nodeutil import only api", "client.bad -> nodeutil.netlink"),
    ("apiserver/bad.py", "from client import rest\n",
     "apiserver imports only api", "apiserver.bad -> client.rest"),
    # inside a function, as the lazy imports in the tree are
    ("scheduler/bad.py", "def f():\n    import controllers.main\n",
     "each component imports only api, client, nodeutil and itself", "scheduler.bad -> controllers.main (l.2)"),
    ("pkctl/bad.py", "import deploy.cli\n",
     "each component imports only api, client, nodeutil and itself", "pkctl.bad -> deploy.cli"),
    ("deploy/bad.py", "from kubelet.runtime.client import RuntimeClient\n",
     "deploy imports only api, client and the components' entry points", "deploy.bad -> kubelet.runtime.client"),
])
def test_a_bad_import_breaks_its_contract(tree, path, text, contract, edge):
    (tree / path).write_text(text)
    r = lint(tree)
    assert r.returncode != 0
    assert f"{contract} BROKEN" in r.stdout, r.stdout + r.stderr
    assert edge in r.stdout, r.stdout
    assert "Contracts: 4 kept, 1 broken." in r.stdout, r.stdout
