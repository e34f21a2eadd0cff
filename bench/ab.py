#!/usr/bin/env python3
"""Before/after: one benchmark against an older commit and this tree, interleaved, in the same run.

A refactoring issue is done when its benchmarks did not get worse, and on a shared,
noisy machine only a comparison made in the same run means anything. This runs
one benchmark script alternately from a temporary git worktree at ``--base`` and
from this tree (each side with its own code on PYTHONPATH and its own copy of the
script), ``--rounds`` times, then reports for every numeric figure of the
benchmark's JSON line the median of each side and the ratio after/before.

Usage: python3 bench/ab.py --base a94e83d [--rounds 3] -- bench/apiserver_bench.py --duration 5
Prints progress on stderr and one JSON line on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from common import log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON value, keyed by their dotted path (list items by index)."""
    out: dict[str, float] = {}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[key] = float(v)
        else:
            out.update(flatten(v, key))
    return out


def run_side(tree: str, script: str, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.run([sys.executable, os.path.join(tree, script), *args], cwd=tree, env=env,
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ab: {script} in {tree} exited {proc.returncode}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"ab: {script} in {tree} printed no JSON line")
    return json.loads(lines[-1])


def compare(before: list[dict], after: list[dict]) -> dict[str, dict]:
    """Median of each side per figure and the ratio after/before (figures both sides report)."""
    fb = [flatten(r) for r in before]
    fa = [flatten(r) for r in after]
    out: dict[str, dict] = {}
    for key in fb[0]:
        xs = [f[key] for f in fb if key in f]
        ys = [f[key] for f in fa if key in f]
        if not xs or not ys:
            continue
        b, a = statistics.median(xs), statistics.median(ys)
        out[key] = {"before": b, "after": a, "ratio": round(a / b, 3) if b else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="the commit to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="runs per side, interleaved (default 3)")
    ap.add_argument("script", help="benchmark script, relative to the repository root")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    ns = ap.parse_args()
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    base = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", ns.base], check=True,
                          capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="pk-ab-")
    tree = os.path.join(tmp, base)
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", tree, base], check=True)
    before: list[dict] = []
    after: list[dict] = []
    try:
        for i in range(ns.rounds):
            log(f"ab: round {i + 1}/{ns.rounds}: before ({base})")
            before.append(run_side(tree, ns.script, args))
            log(f"ab: round {i + 1}/{ns.rounds}: after ({head})")
            after.append(run_side(ROOT, ns.script, args))
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], check=False)
        os.rmdir(tmp)
    print(json.dumps({"benchmark": ns.script, "args": args, "base": base, "head": head, "rounds": ns.rounds,
                      "figures": compare(before, after), "before_runs": before, "after_runs": after}))


if __name__ == "__main__":
    main()
