"""`pocketkube install`: install, with apt-get, exactly what `pocketkube up` finds missing on this machine.

The README's main job is ``pip install -e . && pocketkube install &&
pocketkube up``: pip brings the Python side, this step the system tools
(``deploy.prereq.TOOLS``: iproute2, util-linux, iptables, openssl,
conntrack, procps; gcc + libc6-dev for the runtime's spawn helper), and
`up` then only checks. It asks ``deploy.prereq.missing_packages`` what is
missing, so on a machine that has everything it changes nothing and says
so; ``--dry-run`` prints the apt-get command instead of running it. Debian
and Ubuntu only (apt-get); elsewhere it names the tools to install by hand.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from deploy import prereq
from deploy.system import RealSystem, System


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube install", description=(
        "Install (apt-get) the system tools `pocketkube up` needs and this machine lacks."))
    p.add_argument("--dry-run", action="store_true", help="print the apt-get command, run nothing")
    return p


def install_commands(pkgs: list[str]) -> list[list[str]]:
    if not pkgs:
        return []
    return [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs]]


def install(sys_: System, dry_run: bool = False, run=subprocess.run) -> int:
    pkgs = prereq.missing_packages(sys_)
    if not pkgs:
        print("pocketkube install: nothing to do (every tool `pocketkube up` needs is installed)")
        return 0
    cmds = install_commands(pkgs)
    if dry_run:
        for c in cmds:
            print(shlex.join(c))
        return 0
    if sys_.which("apt-get") is None:
        print(f"pocketkube install: no apt-get here; install these packages (or their equivalents) by hand: "
              f"{' '.join(pkgs)}", file=sys.stderr)
        return 1
    if sys_.geteuid() != 0:
        print("pocketkube install: must run as root\n    fix: sudo pocketkube install", file=sys.stderr)
        return 1
    print(f"pocketkube install: apt-get install {' '.join(pkgs)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for c in cmds:
        r = run(c, env=env)
        if r.returncode != 0:
            print(f"pocketkube install: {shlex.join(c)} exited {r.returncode}", file=sys.stderr)
            return 1
    left = prereq.missing_packages(sys_)
    if left:
        print(f"pocketkube install: still missing after apt-get: {' '.join(left)}", file=sys.stderr)
        return 1
    print("pocketkube install: done; now: pocketkube up")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(install(RealSystem(), args.dry_run))


if __name__ == "__main__":
    main()
