"""Resource limits through cgroups, behind one small seam for v1 and v2.

A pod gets a cgroup ``<root>/pod<uid>`` and each container a child
``<root>/pod<uid>/<container-id>`` (kubelet's ``kubepods/pod<uid>/<id>``
shape; ``root`` defaults to ``pocketkube/<node>`` so several nodes on one
machine keep apart). Limits are written before the container's process is
moved in, so the process never runs unlimited.

* cgroup v1 (what this machine class has): one hierarchy per controller
  (``memory``, ``cpu``, ``pids``); memory limit in ``memory.limit_in_bytes``,
  CPU limit as a CFS quota (``cpu.cfs_quota_us`` per ``cpu.cfs_period_us``),
  an OOM kill shows in ``memory.oom_control`` (``oom_kill N``). Tested end
  to end.
* cgroup v2: one unified tree, ``memory.max``, ``cpu.max`` (``quota period``),
  ``memory.events`` (``oom_kill N``), controllers enabled through
  ``cgroup.subtree_control``. Written to the same seam and unit-tested on a
  fake tree; untested on a real v2 host (the README says so).

A new pause or container process moves *itself* in before it execs, by
writing "0" (the writer) into the files ``join_files`` names. On v1 that file
is each controller's ``tasks``, not ``cgroup.procs``: moving a whole process
(``cgroup.procs``, or any PID other than the writer's) takes the kernel's
global threadgroup lock for writing, and its first taking after a quiet
spell waits out an RCU grace period — measured here 7-15 ms for the first
controller, every pod, all of it start-up latency — while a thread moving
itself through ``tasks`` skips that lock (0.3 ms for three controllers). The
helper and the forked children are single-threaded when they do it, so
moving the thread moves the process.

``detect()`` picks the version from the mounts; every method takes paths
relative to the mount root, so tests point ``mount`` at a temporary tree.
"""
from __future__ import annotations

import errno
import os
import time

CPU_PERIOD_US = 100_000


class CgroupError(Exception):
    pass


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _rmdir(path: str) -> None:
    """rmdir, retrying briefly: a cgroup is busy for a moment after its last process exits."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.01)


def _oom_kills(text: str) -> int:
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == "oom_kill":
            return int(v or 0)
    return 0


class CgroupsV1:
    version = 1
    CONTROLLERS = ("memory", "cpu", "pids")

    def __init__(self, mount: str = "/sys/fs/cgroup", root: str = "pocketkube"):
        self.mount = mount
        self.root = root.strip("/")

    def _dirs(self, rel: str) -> list[str]:
        return [os.path.join(self.mount, c, self.root, rel) for c in self.CONTROLLERS
                if os.path.isdir(os.path.join(self.mount, c))]

    def create(self, rel: str, memory_bytes: int | None = None, cpu_millis: int | None = None) -> None:
        for d in self._dirs(rel):
            os.makedirs(d, exist_ok=True)
        mem = os.path.join(self.mount, "memory", self.root, rel)
        if memory_bytes and os.path.isdir(mem):
            _write(os.path.join(mem, "memory.limit_in_bytes"), str(memory_bytes))
        cpu = os.path.join(self.mount, "cpu", self.root, rel)
        if cpu_millis and os.path.isdir(cpu):
            _write(os.path.join(cpu, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(os.path.join(cpu, "cpu.cfs_quota_us"), str(max(1000, cpu_millis * CPU_PERIOD_US // 1000)))

    def add_process(self, rel: str, pid: int) -> None:
        for d in self._dirs(rel):
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def join_files(self, rel: str) -> list[str]:
        """Each controller's ``tasks``: a new process writes "0" there to move itself (see the module doc)."""
        return [os.path.join(d, "tasks") for d in self._dirs(rel)]

    def oom_killed(self, rel: str) -> bool:
        return _oom_kills(_read(os.path.join(self.mount, "memory", self.root, rel, "memory.oom_control"))) > 0

    def pids(self, rel: str) -> list[int]:
        out: set[int] = set()
        for d in self._dirs(rel):
            for root, _dirs, files in os.walk(d):
                if "cgroup.procs" in files:
                    out.update(int(x) for x in _read(os.path.join(root, "cgroup.procs")).split() if x.isdigit())
        return sorted(out)

    def remove(self, rel: str) -> None:
        for d in self._dirs(rel):
            # children first (a pod's container cgroups)
            for root, dirs, _files in sorted(os.walk(d, topdown=False), key=lambda t: -len(t[0])):
                for sub in dirs:
                    _rmdir(os.path.join(root, sub))
            _rmdir(d)

    def list(self) -> list[str]:
        """Relative paths of the pod cgroups under the root (for garbage collection)."""
        base = os.path.join(self.mount, "memory", self.root)
        try:
            return sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n)))
        except OSError:
            return []


class CgroupsV2:
    version = 2

    def __init__(self, mount: str = "/sys/fs/cgroup", root: str = "pocketkube"):
        self.mount = mount
        self.root = root.strip("/")

    def _dir(self, rel: str) -> str:
        return os.path.join(self.mount, self.root, rel)

    def _enable_controllers(self, path: str) -> None:
        """Enable memory, cpu and pids in every ancestor's subtree_control, from the mount down."""
        parts = os.path.relpath(path, self.mount).split(os.sep)
        cur = self.mount
        for part in parts:
            ctl = os.path.join(cur, "cgroup.subtree_control")
            if os.path.exists(ctl):
                have = set(_read(ctl).split())
                want = [c for c in ("memory", "cpu", "pids") if c not in have]
                if want:
                    try:
                        _write(ctl, " ".join("+" + c for c in want))
                    except OSError as e:
                        raise CgroupError(f"cannot enable {want} in {ctl}: {e}") from e
            cur = os.path.join(cur, part)

    def create(self, rel: str, memory_bytes: int | None = None, cpu_millis: int | None = None) -> None:
        d = self._dir(rel)
        os.makedirs(d, exist_ok=True)
        self._enable_controllers(d)
        if memory_bytes:
            _write(os.path.join(d, "memory.max"), str(memory_bytes))
        if cpu_millis:
            _write(os.path.join(d, "cpu.max"), f"{max(1000, cpu_millis * CPU_PERIOD_US // 1000)} {CPU_PERIOD_US}")

    def add_process(self, rel: str, pid: int) -> None:
        _write(os.path.join(self._dir(rel), "cgroup.procs"), str(pid))

    def join_files(self, rel: str) -> list[str]:
        """``cgroup.procs``: a new process writes "0" there to move itself."""
        return [os.path.join(self._dir(rel), "cgroup.procs")]

    def oom_killed(self, rel: str) -> bool:
        return _oom_kills(_read(os.path.join(self._dir(rel), "memory.events"))) > 0

    def pids(self, rel: str) -> list[int]:
        out: set[int] = set()
        for root, _dirs, files in os.walk(self._dir(rel)):
            if "cgroup.procs" in files:
                out.update(int(x) for x in _read(os.path.join(root, "cgroup.procs")).split() if x.isdigit())
        return sorted(out)

    def remove(self, rel: str) -> None:
        d = self._dir(rel)
        for root, dirs, _files in sorted(os.walk(d, topdown=False), key=lambda t: -len(t[0])):
            for sub in dirs:
                _rmdir(os.path.join(root, sub))
        _rmdir(d)

    def list(self) -> list[str]:
        base = os.path.join(self.mount, self.root)
        try:
            return sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n)))
        except OSError:
            return []


class NoCgroups:
    """No usable cgroup mount: limits are not enforced (logged once by the runtime)."""
    version = 0

    def create(self, rel: str, memory_bytes: int | None = None, cpu_millis: int | None = None) -> None:
        pass

    def add_process(self, rel: str, pid: int) -> None:
        pass

    def join_files(self, rel: str) -> list[str]:
        return []

    def oom_killed(self, rel: str) -> bool:
        return False

    def pids(self, rel: str) -> list[int]:
        return []

    def remove(self, rel: str) -> None:
        pass

    def list(self) -> list[str]:
        return []


def detect(root: str = "pocketkube", mount: str = "/sys/fs/cgroup"):
    if os.path.isdir(os.path.join(mount, "memory")) and os.path.exists(os.path.join(mount, "memory", "cgroup.procs")):
        return CgroupsV1(mount, root)
    if os.path.exists(os.path.join(mount, "cgroup.controllers")):
        return CgroupsV2(mount, root)
    return NoCgroups()
