"""`pocketkube supervise --data-dir DIR`: keep every process `up` started running (the role systemd plays for k3s).

`up` starts this detached, after the cluster is up, and records its PID in
DIR/run/supervisor.pid; `down` stops it first, so it never races the
teardown. It reads what to keep running from DIR/run/commands.json (process
key -> command line, written by `up` and `node add`/`node remove`) and, every
``--interval`` seconds, checks each key's PID file (a PID counts only while
its command line names the data directory, ``System.alive``). One that is
gone is started again with the same command line, the same log file and a
new PID file, after a back-off: 1 s, doubling up to 30 s, back to 1 s once
the process had stayed up 60 s (systemd's ``RestartSec`` with
``StartLimitInterval`` in spirit; kubelet's CrashLoopBackOff in numbers).
Each exit and restart is a line in DIR/logs/supervisor.log; the counts go
to DIR/run/restarts.json, which `pocketkube status` shows.

It is level-triggered like the components: the desired state is the file,
the observed state the PID files, and one pass converges them, so a
supervisor that is itself restarted (`up` on a partly running cluster)
picks up where the last one stopped. Processes it starts run in sessions of
their own, exactly as `up` starts them, so they outlive it; it only reaps
the ones it started.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from deploy import procs
from deploy.state import DEFAULT_DATA_DIR, Layout
from deploy.system import RealSystem, System

INITIAL = 1.0
MAXIMUM = 30.0
RESET_AFTER = 60.0


@dataclass
class BackOff:
    """Per-key restart delays, on an injected clock (seconds, monotonic)."""

    initial: float = INITIAL
    maximum: float = MAXIMUM
    reset_after: float = RESET_AFTER
    delay: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    next_start: dict[str, float] = field(default_factory=dict)

    def seen_running(self, key: str, now: float) -> None:
        self.started.setdefault(key, now)
        self.next_start.pop(key, None)

    def exited(self, key: str, now: float) -> float:
        """Record an exit seen at ``now``; returns the time the next start is allowed."""
        if key in self.next_start:
            return self.next_start[key]
        since = self.started.pop(key, None)
        if since is not None and now - since >= self.reset_after:
            self.delay.pop(key, None)
        d = self.delay.get(key, self.initial)
        self.delay[key] = min(d * 2, self.maximum)
        self.next_start[key] = now + d
        return now + d

    def due(self, key: str, now: float) -> bool:
        return key in self.next_start and now >= self.next_start[key]

    def started_now(self, key: str, now: float) -> None:
        self.next_start.pop(key, None)
        self.started[key] = now

    def forget(self, key: str) -> None:
        for d in (self.delay, self.started, self.next_start):
            d.pop(key, None)


def read_json(path: str, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path: str, doc) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_commands(lay: Layout) -> dict[str, list[str]]:
    doc = read_json(lay.commands, {})
    return {k: list(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def write_commands(lay: Layout, commands: dict[str, list[str]]) -> None:
    write_json(lay.commands, commands)


def read_restarts(lay: Layout) -> dict[str, int]:
    doc = read_json(lay.restarts, {})
    return {k: int(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


class Supervisor:
    """One pass = ``tick()``; the clock, the spawner and the System are injected (unit tests fake all three)."""

    def __init__(self, sys_: System, lay: Layout, clock: Callable[[], float] = time.monotonic,
                 spawner: Callable[[list[str], str], object] | None = None, backoff: BackOff | None = None,
                 logger: Callable[[str], None] | None = None):
        self.sys = sys_
        self.lay = lay
        self.clock = clock
        self.spawner = spawner or (lambda argv, log: procs.spawn(argv, log))
        self.backoff = backoff or BackOff()
        self.logger = logger or self._log_to_file
        self.children: list = []
        self.restarts = read_restarts(lay)

    def _log_to_file(self, msg: str) -> None:
        os.makedirs(os.path.dirname(self.lay.log("supervisor")), exist_ok=True)
        with open(self.lay.log("supervisor"), "a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {msg}\n")

    def tick(self) -> list[str]:
        """Converge once; returns the keys started in this pass."""
        self.children = [c for c in self.children if c.poll() is None]      # reap what exited
        now = self.clock()
        commands = read_commands(self.lay)
        for key in list(self.backoff.started) + list(self.backoff.next_start):
            if key not in commands:
                self.backoff.forget(key)
        started = []
        for key, argv in commands.items():
            pid = procs.read_pid(self.lay.pidfile(key))
            if self.sys.alive(pid, self.lay.marker):
                self.backoff.seen_running(key, now)
                continue
            if key not in self.backoff.next_start:
                at = self.backoff.exited(key, now)
                self.logger(f"{key} (pid {pid or '-'}) is not running; restarting in {at - now:.0f}s")
            if self.backoff.due(key, now):
                p = self.spawner(argv, self.lay.log(key))
                procs.write_pid(self.lay.pidfile(key), p.pid)
                self.children.append(p)
                self.backoff.started_now(key, now)
                self.restarts[key] = self.restarts.get(key, 0) + 1
                write_json(self.lay.restarts, self.restarts)
                self.logger(f"restarted {key}: pid {p.pid} (restart {self.restarts[key]})")
                started.append(key)
        return started


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube supervise", description=(
        "Restart any process of the local cluster that exits, with back-off (started by `pocketkube up`)."))
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"the cluster's data directory (default {DEFAULT_DATA_DIR})")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between checks (default 0.5)")
    return p


def supervisor_command(lay: Layout, python: str = sys.executable) -> list[str]:
    return [python, "-m", "deploy.cli", "supervise", "--data-dir", lay.data_dir + "/"]


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    lay = Layout(args.data_dir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sup = Supervisor(RealSystem(), lay)
    sup.logger(f"supervisor started (pid {os.getpid()})")
    while not stop.is_set():
        try:
            sup.tick()
        except Exception as e:  # noqa: BLE001 - a bad pass is logged; the next one tries again
            sup.logger(f"supervisor pass failed: {type(e).__name__}: {e}")
        stop.wait(args.interval)
    sup.logger("supervisor stopped (the processes keep running)")


if __name__ == "__main__":
    main()
