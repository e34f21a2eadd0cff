"""How the runtime makes sandboxes, containers and exec sessions: fork + namespaces + exec.

Every process is forked from the runtime daemon, so the runtime is its parent
(or, for containers, its child subreaper) and collects its exit status:

* sandbox ("pause"): fork; the child unshares net, ipc and uts (host mode:
  ipc only; the node's net and hostname are kept), sets the pod's hostname,
  brings ``lo`` up, and execs ``sleep infinity`` renamed ``pause`` — a tiny
  C program holding the namespaces, not a Python interpreter.
* container: fork (A); A moves itself into the pod's cgroup, joins the
  sandbox's net/ipc/uts namespaces with setns (container mode), unshares a
  new mount and pid namespace, forks B (pid 1 of the new pid namespace) and
  exits. B is re-parented to the runtime (PR_SET_CHILD_SUBREAPER), makes its
  mounts private, mounts its own /proc, bind-mounts the pod's /etc/hosts,
  /etc/hostname and /etc/resolv.conf over the image's (or the host's), enters
  the image's root filesystem (an overlay over the imported rootfs, so
  containers never write into the image), and execs the command.
* exec: fork (C); C joins every namespace of the container's pid 1 and its
  root directory, forks D (inside the container's pid namespace) and exits;
  D gets pipes or a pty and execs.

With a built C helper (``pkspawn.c``, see ``kubelet.runtime.pkspawn``) the
runtime does not fork itself for sandboxes and containers: it starts the
helper with posix_spawn (vfork, nothing copied) and the helper does the same
steps — the sandbox helper *is* the pause process; for a container it is A.
The request travels in a memfd, the answer on the same report pipe. The
Python steps below stay as the fallback (no compiler) and for exec sessions.

Failures in a child before exec travel back over a close-on-exec pipe
(``E<message>``), so a bad command or working directory becomes a container
status (``StartError``/exit 128), never a silent hang; A reports B's PID on
the same pipe (``P<pid>``).
"""
from __future__ import annotations

import os
import signal
import shutil
import termios
import fcntl
from dataclasses import dataclass, field
from typing import Generator

from kubelet.runtime import linux
from nodeutil import mounts, netns

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PAUSE = shutil.which("sleep") or "/bin/sleep"


class SpawnError(Exception):
    pass


@dataclass
class SandboxSpec:
    hostname: str
    network: str = "pod"          # pod (own netns, plugged by CNI) | host | none
    cgroup_join: list[str] = field(default_factory=list)   # cgroups.join_files()


@dataclass
class ContainerSpec:
    argv: list[str]
    env: list[str]
    sandbox_pid: int
    cwd: str = ""
    rootfs: str | None = None     # None: the host filesystem
    overlay_dir: str | None = None
    files: list[tuple[str, str]] = field(default_factory=list)   # (host file, path inside)
    cgroup_join: list[str] = field(default_factory=list)   # cgroups.join_files()
    stdin: bool = False


@dataclass
class ExecSpec:
    target_pid: int
    argv: list[str]
    env: list[str]
    cwd: str = "/"
    tty: bool = False
    stdin: bool = False
    cgroup_join: list[str] = field(default_factory=list)   # cgroups.join_files()


def _child_prologue() -> None:
    """What every forked child does first: no Python signal plumbing, default dispositions."""
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _fail(errw: int, msg: str, code: int = 127) -> None:
    try:
        os.write(errw, b"E" + msg.encode(errors="replace")[:4000])
    finally:
        os._exit(code)


def _join_cgroup(files: list[str]) -> None:
    """Move this (single-threaded) process into the cgroups: "0" names the writer (see cgroups.join_files)."""
    for f in files:
        with open(f, "w") as fh:
            fh.write("0")


def _read_report(r: int) -> bytes:
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    return b"".join(chunks)


def _collect(report: bytes, pid: int, fds: list[int | None], what: str) -> int:
    """Wait for the intermediate child; return the PID it reported, or close ``fds`` and raise its error."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # reaped by the daemon's SIGCHLD handler
    cpid, msg = None, None
    for part in report.split(b"\n"):
        if part.startswith(b"P"):
            cpid = int(part[1:])
        elif part.startswith(b"E"):
            msg = part[1:].decode(errors="replace")
    if msg is not None or cpid is None:
        for fd in fds:
            if fd is not None:
                os.close(fd)
        raise SpawnError(msg or what)
    return cpid


def _devnull_stdio(keep_stdin: int | None = None) -> None:
    fd = os.open("/dev/null", os.O_RDWR)
    os.dup2(keep_stdin if keep_stdin is not None else fd, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if fd > 2:
        os.close(fd)


# ------------------------------------------------------------ the C helper
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _counted(items) -> list[str]:
    return [str(len(items)), *items]


def _high_fd(fd: int) -> int:
    """``fd`` moved to 10 or above (close-on-exec), so the helper's fixed fds 3 and 4 never clobber it."""
    if fd >= 10:
        return fd
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    finally:
        os.close(fd)


def _start_helper(helper: str, argv: list[str], fields: list[str], stdin: int | None, stdout: int | None,
                  stderr: int | None) -> tuple[int, int]:
    """posix_spawn the helper with the request in a memfd on fd 4 and the report pipe on fd 3;
    returns (the report pipe's read end, the helper's PID)."""
    for f in fields:
        if "\0" in f:
            raise SpawnError(f"embedded null byte in {f!r}")
    data = b"".join(f.encode(errors="surrogateescape") + b"\0" for f in fields)
    req = _high_fd(os.memfd_create("pkspawn", os.MFD_CLOEXEC))
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        w = _high_fd(w)
        view = memoryview(data)
        while view:
            view = view[os.write(req, view):]
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) if fd is not None else
                   (os.POSIX_SPAWN_OPEN, i, "/dev/null", os.O_RDONLY if i == 0 else os.O_WRONLY, 0)
                   for i, fd in enumerate((stdin, stdout, stderr))]
        actions += [(os.POSIX_SPAWN_DUP2, w, 3), (os.POSIX_SPAWN_DUP2, req, 4)]
        pid = linux.posix_spawn(helper, argv, actions, _RESET_SIGNALS)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
        os.close(req)
    return r, pid


# ------------------------------------------------------------------ sandbox
def sandbox_steps(spec: SandboxSpec, helper: str | None = None) -> Generator[int, bytes, int]:
    if helper:
        r, pid = _start_helper(helper, ["pause", "infinity"],
                               ["sandbox", spec.network, spec.hostname, *_counted(spec.cgroup_join)], None, None, None)
        return _sandbox_result((yield r), pid)
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            _child_prologue()
            os.setsid()
            _join_cgroup(spec.cgroup_join)
            if spec.network == "host":
                netns.unshare(netns.CLONE_NEWIPC)
            else:
                netns.unshare(netns.CLONE_NEWNET | netns.CLONE_NEWIPC | netns.CLONE_NEWUTS)
                linux.sethostname(spec.hostname)
                linux.loopback_up()
            _devnull_stdio()
            os.execv(PAUSE, ["pause", "infinity"])
        except BaseException as e:  # noqa: BLE001
            _fail(w, f"sandbox: {e}")
    os.close(w)
    return _sandbox_result((yield r), pid)


def _sandbox_result(report: bytes, pid: int) -> int:
    if report.startswith(b"E"):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped by the daemon's SIGCHLD handler
        raise SpawnError(report[1:].decode(errors="replace"))
    return pid


# ---------------------------------------------------------------- container
def _prepare_root(spec: ContainerSpec) -> str:
    """Mounts for the container in its private mount namespace; returns the root to chroot into ("/" for host)."""
    mounts.mount(None, "/", None, mounts.MS_REC | mounts.MS_PRIVATE)
    if spec.rootfs is None:
        mounts.mount("proc", "/proc", "proc", mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC)
        for src, dst in spec.files:
            mounts.mount(src, dst, None, mounts.MS_BIND)
        return "/"
    root = spec.rootfs
    if spec.overlay_dir:
        upper, work, merged = (os.path.join(spec.overlay_dir, d) for d in ("upper", "work", "merged"))
        for d in (upper, work, merged):
            os.makedirs(d, exist_ok=True)
        mounts.mount("overlay", merged, "overlay", 0, f"lowerdir={spec.rootfs},upperdir={upper},workdir={work}")
        root = merged
    else:
        mounts.mount(root, root, None, mounts.MS_BIND | mounts.MS_REC)
    for d in ("proc", "dev", "sys", "etc", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    mounts.mount("proc", os.path.join(root, "proc"), "proc", mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC)
    mounts.mount("/dev", os.path.join(root, "dev"), None, mounts.MS_BIND | mounts.MS_REC)
    mounts.mount("/sys", os.path.join(root, "sys"), None, mounts.MS_BIND | mounts.MS_REC)
    for src, dst in spec.files:
        target = os.path.join(root, dst.lstrip("/"))
        if os.path.islink(target):
            os.unlink(target)
        if not os.path.exists(target):
            open(target, "a").close()
        mounts.mount(src, target, None, mounts.MS_BIND)
    return root


def container_steps(spec: ContainerSpec, helper: str | None = None
                    ) -> Generator[int, bytes, tuple[int, int, int, int | None]]:
    """Start a container; returns (pid, stdout read end, stderr read end, stdin write end or None)."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_r, in_w = os.pipe2(os.O_CLOEXEC) if spec.stdin else (None, None)
    if helper:
        try:
            r, pid = _start_helper(helper, ["pkspawn", "container"], [
                "container", str(spec.sandbox_pid), spec.cwd, spec.rootfs or "", spec.overlay_dir or "",
                *_counted(spec.argv), *_counted(spec.env), *_counted([x for f in spec.files for x in f]),
                *_counted(spec.cgroup_join)], in_r, out_w, err_w)
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, in_r):
                if fd is not None:
                    os.close(fd)
        cpid = _collect((yield r), pid, [out_r, err_r, in_w], "container process did not start")
        return cpid, out_r, err_r, in_w
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            _child_prologue()
            _join_cgroup(spec.cgroup_join)
            p = spec.sandbox_pid
            netns.setns(netns.process_ns_path(p, "ipc"), netns.CLONE_NEWIPC)
            netns.setns(netns.process_ns_path(p, "uts"), netns.CLONE_NEWUTS)
            netns.setns(netns.process_ns_path(p, "net"), netns.CLONE_NEWNET)
            netns.unshare(netns.CLONE_NEWNS | netns.CLONE_NEWPID)
            child = os.fork()
            if child == 0:
                try:
                    os.setsid()
                    root = _prepare_root(spec)
                    if root != "/":
                        os.chroot(root)
                    try:
                        os.chdir(spec.cwd or "/")
                    except OSError as e:
                        _fail(w, f"chdir to {spec.cwd}: {e.strerror}", 128)
                    os.dup2(in_r if in_r is not None else os.open("/dev/null", os.O_RDONLY), 0)
                    os.dup2(out_w, 1)
                    os.dup2(err_w, 2)
                    env = dict(e.split("=", 1) for e in spec.env if "=" in e)
                    env.setdefault("PATH", DEFAULT_PATH)
                    try:
                        os.execvpe(spec.argv[0], spec.argv, env)
                    except OSError as e:
                        _fail(w, f'exec: "{spec.argv[0]}": {e.strerror}', 128)
                except BaseException as e:  # noqa: BLE001
                    _fail(w, f"container init: {e}", 128)
            os.write(w, b"P%d\n" % child)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001
            _fail(w, f"container: {e}", 128)
    os.close(w)
    os.close(out_w)
    os.close(err_w)
    if in_r is not None:
        os.close(in_r)
    cpid = _collect((yield r), pid, [out_r, err_r, in_w], "container process did not start")
    return cpid, out_r, err_r, in_w


# --------------------------------------------------------------------- exec
def exec_steps(spec: ExecSpec) -> Generator[int, bytes, tuple[int, list[int]]]:
    """Run a command inside a running container; returns (pid, [stdin w, stdout r, stderr r] or [pty master])."""
    r, w = os.pipe2(os.O_CLOEXEC)
    if spec.tty:
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        child_fds, parent_fds = (slave, slave, slave), [master]
    else:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child_fds, parent_fds = (in_r, out_w, err_w), [in_w, out_r, err_r]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            _child_prologue()
            _join_cgroup(spec.cgroup_join)
            t = spec.target_pid
            root_fd = os.open(f"/proc/{t}/root", os.O_RDONLY | os.O_DIRECTORY)
            for ns, flag in (("ipc", netns.CLONE_NEWIPC), ("uts", netns.CLONE_NEWUTS), ("net", netns.CLONE_NEWNET),
                             ("pid", netns.CLONE_NEWPID), ("mnt", netns.CLONE_NEWNS)):
                netns.setns(netns.process_ns_path(t, ns), flag)
            os.fchdir(root_fd)
            os.chroot(".")
            child = os.fork()
            if child == 0:
                try:
                    os.setsid()
                    try:
                        os.chdir(spec.cwd or "/")
                    except OSError:
                        os.chdir("/")
                    for i, fd in enumerate(child_fds):
                        os.dup2(fd, i)
                    if spec.tty:
                        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
                    if not spec.stdin and not spec.tty:
                        os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
                    env = dict(e.split("=", 1) for e in spec.env if "=" in e)
                    env.setdefault("PATH", DEFAULT_PATH)
                    if spec.tty:
                        env.setdefault("TERM", "xterm")
                    try:
                        os.execvpe(spec.argv[0], spec.argv, env)
                    except OSError as e:
                        _fail(w, f'exec: "{spec.argv[0]}": {e.strerror}', 126 if e.errno == 13 else 127)
                except BaseException as e:  # noqa: BLE001
                    _fail(w, f"exec init: {e}", 126)
            os.write(w, b"P%d\n" % child)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001
            _fail(w, f"exec: {e}", 126)
    os.close(w)
    for fd in set(child_fds):
        os.close(fd)
    cpid = _collect((yield r), pid, parent_fds, "exec process did not start")
    return cpid, parent_fds


# ------------------------------------------------------------------ drivers
# Each *_steps generator forks, yields the report pipe's read end, and gets back
# the report bytes (the child writes them and closes the pipe by exec'ing). The
# daemon drives them on its event loop (``drive_async``), so a container whose
# mounts take a while never stalls the other requests; tools and tests drive
# them synchronously.
def drive(gen):
    r = next(gen)
    try:
        gen.send(_read_report(r))
    except StopIteration as done:
        return done.value
    raise RuntimeError("spawn steps did not finish")


async def drive_async(gen, executor=None):
    """Drive steps on the event loop; with ``executor``, the first step (which starts the process) runs
    there — for the helper, whose posix_spawn lets go of the GIL, not for the fork path."""
    import asyncio

    loop = asyncio.get_running_loop()
    r = next(gen) if executor is None else await loop.run_in_executor(executor, next, gen)
    os.set_blocking(r, False)
    chunks = []
    try:
        while True:
            try:
                b = os.read(r, 65536)
            except BlockingIOError:
                fut = loop.create_future()
                loop.add_reader(r, lambda: fut.done() or fut.set_result(None))
                try:
                    await fut
                finally:
                    loop.remove_reader(r)
                continue
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(r)
    try:
        gen.send(b"".join(chunks))
    except StopIteration as done:
        return done.value
    raise RuntimeError("spawn steps did not finish")


def spawn_sandbox(spec: SandboxSpec, helper: str | None = None) -> int:
    return drive(sandbox_steps(spec, helper))


def spawn_container(spec: ContainerSpec, helper: str | None = None) -> tuple[int, int, int, int | None]:
    return drive(container_steps(spec, helper))


def spawn_exec(spec: ExecSpec) -> tuple[int, list[int]]:
    return drive(exec_steps(spec))
