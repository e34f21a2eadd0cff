"""Run the stock kubectl binaries the machine image ships, per docs/design.md."""
from __future__ import annotations

import os
import shutil
import subprocess

from tests.conftest import need


def kubectl_binary(minor: int) -> str:
    disp = shutil.which("kubectl")
    need(disp is not None, "kubectl is not on PATH")
    path = os.path.join(os.path.dirname(os.path.realpath(disp)), f"kubectl.1.{minor}")
    need(os.path.exists(path), f"kubectl 1.{minor} is not installed beside the dispatcher ({path})")
    return path


class Kubectl:
    def __init__(self, minor: int, server: str, cache_dir: str, token: str | None = None):
        self.bin = kubectl_binary(minor)
        self.server = server
        self.cache_dir = cache_dir
        self.token = token

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [self.bin, f"--server={self.server}", f"--cache-dir={self.cache_dir}"]
        if self.token:
            cmd.append(f"--token={self.token}")
        cmd += list(args)
        env = dict(os.environ, KUBECONFIG="/dev/null", HOME=self.cache_dir)
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p
