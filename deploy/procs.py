"""Starting the cluster's processes detached, and stopping them again by PID file.

Each component runs in a session of its own (``start_new_session``), with
stdin from /dev/null and stdout+stderr appended to ``DIR/logs/<name>.log``,
so it outlives the `pocketkube up` that started it and a terminal closing
does not touch it. Its PID goes to ``DIR/run/<name>.pid``. Components in
a node namespace are started through ``ip netns exec`` (proxy, agent, DNS) or
``nsenter --net`` (the kubelet: ``ip netns exec`` remounts /sys, which hides
the cgroup hierarchies the runtime puts pods in); both exec the program,
so the recorded PID is the component's own.

Stopping: SIGTERM, wait, SIGKILL, and only for a PID whose command line
still mentions the data directory (``System.alive``). The kubelet's runtime
daemon is not started here (the kubelet starts it) but is stopped here:
first every pod sandbox is removed through the runtime socket, which kills
pause and container processes and removes their cgroups, then the daemon
gets SIGTERM by the PID it wrote, then anything still in the cluster's
cgroup tree is killed and the tree removed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable

from deploy.state import Layout
from deploy.system import System

CGROUP_MOUNT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "cpu", "pids", "cpuacct")
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spawn(argv: list[str], log_path: str, cwd: str = PROJECT_ROOT) -> subprocess.Popen:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=cwd)


def write_pid(path: str, pid: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, path)


def read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_gone(sys: System, pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sys.alive(pid, marker):
            return True
        time.sleep(0.05)
    return not sys.alive(pid, marker)


def stop_pid(sys: System, pid: int | None, marker: str, grace: float = 10.0) -> bool:
    """SIGTERM then SIGKILL one of our processes. True if it was running."""
    if not sys.alive(pid, marker):
        return False
    sys.kill(pid, signal.SIGTERM)
    if not wait_gone(sys, pid, marker, grace):
        sys.kill(pid, signal.SIGKILL)
        wait_gone(sys, pid, marker, 5.0)
    return True


def stop_component(sys: System, layout: Layout, name: str, grace: float = 10.0) -> bool:
    path = layout.pidfile(name)
    was = stop_pid(sys, read_pid(path), layout.marker, grace)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return was


def stop_runtime(sys: System, layout: Layout, socket_path: str, pid_path: str,
                 sandbox_remover: Callable[[str], tuple[int, list[str]]]) -> tuple[list[str], list[str]]:
    """Every sandbox removed through a node's runtime (``kubelet.main.remove_all_sandboxes``), then the runtime
    daemon stopped by its PID file; (what was done, errors)."""
    done, errors = [], []
    n, errs = sandbox_remover(socket_path)
    errors += errs
    if n:
        done.append(f"{n} pod sandbox(es)")
    if stop_pid(sys, read_pid(pid_path), layout.marker, grace=10.0):
        done.append("runtime")
    return done, errors


def cgroup_bases(root: str, mount: str = CGROUP_MOUNT) -> list[str]:
    root = root.strip("/")
    return [os.path.join(mount, c, root) for c in V1_CONTROLLERS] + [os.path.join(mount, "unified", root),
                                                                     os.path.join(mount, root)]


def cgroup_tree_exists(root: str, mount: str = CGROUP_MOUNT) -> bool:
    return any(os.path.isdir(b) for b in cgroup_bases(root, mount))


def kill_cgroup_tree(root: str, mount: str = CGROUP_MOUNT,
                     killer: Callable[[int, int], None] | None = None) -> tuple[bool, list[str]]:
    """Kill every process in the cgroups under ``root`` and remove the directories (v1 and v2).

    Returns (anything was there, errors). The shared parent (``pocketkube``)
    goes too when this leaves it empty; other clusters' trees keep it alive.
    """
    def kill(pid: int, sig: int) -> None:
        try:
            (killer or os.kill)(pid, sig)
        except ProcessLookupError:
            pass

    errors, found = [], False
    for base in cgroup_bases(root, mount):
        if not os.path.isdir(base):
            continue
        found = True
        for _ in range(5):
            pids = set()
            for d, _dirs, files in os.walk(base):
                if "cgroup.procs" in files:
                    try:
                        with open(os.path.join(d, "cgroup.procs")) as f:
                            pids.update(int(x) for x in f.read().split() if x.isdigit())
                    except OSError:
                        pass
            for pid in pids:
                kill(pid, signal.SIGKILL)
            if not pids:
                break
            time.sleep(0.2)
        for d, _dirs, _files in sorted(os.walk(base), key=lambda t: -len(t[0])):
            for _ in range(25):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            if os.path.isdir(d):
                errors.append(f"cannot remove cgroup {d}")
        parent = os.path.dirname(base)
        if os.path.basename(parent) == "pocketkube":
            try:
                os.rmdir(parent)
            except OSError:
                pass
    return found, errors


def stop_components(sys: System, layout: Layout, names: list[str], grace: float = 10.0) -> list[str]:
    """SIGTERM all of ``names`` at once, wait for them together, SIGKILL the stragglers; remove PID files."""
    pids = {}
    for name in names:
        pid = read_pid(layout.pidfile(name))
        if sys.alive(pid, layout.marker):
            pids[name] = pid
            sys.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline and any(sys.alive(p, layout.marker) for p in pids.values()):
        time.sleep(0.05)
    for name, pid in pids.items():
        if sys.alive(pid, layout.marker):
            sys.kill(pid, signal.SIGKILL)
            wait_gone(sys, pid, layout.marker, 5.0)
    for name in names:
        try:
            os.unlink(layout.pidfile(name))
        except FileNotFoundError:
            pass
    return [n for n in names if n in pids]


def safe_rmtree(path: str) -> list[str]:
    """``rm -rf`` that never crosses into another filesystem (a mount left under the data dir).

    Returns the paths it left alone."""
    try:
        root_dev = os.lstat(path).st_dev
    except FileNotFoundError:
        return []
    skipped = []
    for d, dirs, files in os.walk(path, topdown=True):
        keep = []
        for sub in dirs:
            p = os.path.join(d, sub)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if st.st_dev != root_dev:
                skipped.append(p)
            else:
                keep.append(sub)
        dirs[:] = keep
    skipped_set = set(skipped)
    for d, dirs, files in os.walk(path, topdown=False):
        if any(d == s or d.startswith(s + os.sep) for s in skipped_set):
            continue
        for f in files:
            try:
                os.unlink(os.path.join(d, f))
            except FileNotFoundError:
                pass
        for sub in dirs:
            p = os.path.join(d, sub)
            if p in skipped_set:
                continue
            if os.path.islink(p):
                os.unlink(p)
                continue
            try:
                os.rmdir(p)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass
    return skipped
