"""Keep httpx's command-line client out of every component process (a memory trim, measured).

httpx's package ``__init__`` imports ``httpx._main`` (the ``httpx`` command)
whenever click and rich are installed, and they are here (uvicorn and
typer pull them in). That drags rich, pygments and click into every process
that talks to the API server: about 105 extra modules and 5.9 MB of RSS per
process, measured with httpx 0.29 on Python 3.11 (``import httpx``: 30.0 MB
with it, 24.1 MB without, from a 13.6 MB bare interpreter). A 3-node
``pocketkube up`` runs 12 such processes (controller-manager, scheduler,
DNS, and a kubelet, proxy and network agent per node), so it is ~70 MB of
the cluster's idle PSS, none of it ever used.

``install()`` registers a stand-in for ``httpx._main`` before httpx is first
imported; httpx then binds ``httpx.main`` to the stand-in, whose ``main``
loads the real CLI on first call, so nothing is lost. It changes nothing
once httpx is imported (then the real module is already there), and
``client/__init__`` calls it, so every component gets it by importing the
client before httpx. ``tests/unit/test_httpx_nocli.py`` compares the two
paths: the same requests work, and the CLI still resolves.
"""
from __future__ import annotations

import importlib
import sys
import types

NAME = "httpx._main"


def _real_main(*args, **kwargs):
    sys.modules.pop(NAME, None)
    real = importlib.import_module(NAME)
    return real.main(*args, **kwargs)


def install() -> bool:
    """Stand in for httpx's CLI module unless httpx (or its CLI) is imported already. True if installed."""
    if "httpx" in sys.modules or NAME in sys.modules:
        return False
    stub = types.ModuleType(NAME, "stand-in for httpx's command line (client.httpx_nocli); loads it on call")
    stub.main = _real_main
    sys.modules[NAME] = stub
    return True
