"""Builds the runtime's C spawn helper (``pkspawn.c``) once per source version, or says why not.

The helper does the per-pod process set-up without forking the Python daemon
(see the C file's header for why that matters). It is built from source on
the node, the way a DKMS module is, rather than shipped as a binary: at
daemon start, ``ensure`` compiles ``pkspawn.c`` with the system C compiler
into ``<dir>/pkspawn-<hash of the source>`` unless that file is already
there (a new version of the source gets a new name; a half-written build is
never used, the compiler writes a temporary name that is then renamed). With
no compiler, or a failed build, the runtime logs the reason once and makes
every process with the Python fork path in ``spawn.py``, which does the same
steps more slowly.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pkspawn.c")


def binary_path(directory: str) -> str:
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return os.path.join(directory, f"pkspawn-{digest}")


def ensure(directory: str, compiler: str | None = None) -> tuple[str | None, str]:
    """(path of a built helper, "") or (None, the reason there is none)."""
    try:
        path = binary_path(directory)
    except OSError as e:
        return None, f"the helper's source is missing ({e})"
    if os.access(path, os.X_OK):
        return path, ""
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler (install gcc)"
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    # static where the C library allows it (Debian's libc6-dev ships libc.a): no dynamic loader and
    # relocations at each of the two execs per pod (~0.5 ms each here); dynamic otherwise
    for flags in (["-static"], []):
        try:
            done = subprocess.run([cc, "-O2", *flags, "-o", tmp, SOURCE], capture_output=True, text=True,
                                  timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{cc} failed: {e}"
        if done.returncode == 0:
            os.replace(tmp, path)
            return path, ""
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return None, f"{cc} failed: {done.stderr.strip()[-500:]}"
