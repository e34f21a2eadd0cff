"""`pocketkube runtime`: the per-node runtime daemon (the containerd role).

The kubelet decides *what* should run; this daemon owns *how*: it forks the
pause and container processes (``kubelet.runtime.spawn``), is their parent or
child subreaper so it alone collects their exit codes, pumps their stdout and
stderr into CRI log files (``kubelet.runtime.logs``), applies cgroup limits
(``kubelet.runtime.cgroups``) and resolves images (``kubelet.runtime.images``).
It keeps running when the kubelet stops, so a restarted kubelet lists the
sandboxes and containers here and adopts them; nothing is restarted or
duplicated, and no exit code or log line is lost.

The interface is a small CRI over a Unix socket: one JSON object per line
each way (``{"method": ..., ...}`` -> ``{"ok": true, ...}`` or ``{"ok": false,
"error": ..., "kind": ...}``). ``exec`` answers with the stream file
descriptors attached (SCM_RIGHTS), so the kubelet streams a ``kubectl exec``
session straight from the pipes or pty without the daemon copying bytes.

The daemon is one asyncio loop; its only other thread starts the C spawn
helper (``posix_spawn`` through ctypes, without the GIL) so the loop keeps
serving meanwhile, and exists only when the helper does: the fork fallback
and exec sessions fork from the loop, and that thread holds no lock a forked
child could need. SIGCHLD wakes the loop to reap. State (sandboxes,
containers) is appended to ``<root>/state/journal.jsonl`` on every change
(``kubelet.runtime.journal``). The processes themselves do not survive
a restart of the daemon (their pipes end with it, as with containerd without
shims): at start the daemon kills what its state says was running, marks those
containers exited (reason ``Unknown``) and their sandboxes not ready, and the
kubelet recreates them by the pod's restart policy.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import logging
import os
import secrets
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson

from api.meta import now
from kubelet.runtime import cgroups as cg
from kubelet.runtime import linux, pkspawn, spawn
from kubelet.runtime.images import ImageStore
from kubelet.runtime.journal import StateJournal
from kubelet.runtime.logs import LogWriter
from nodeutil import fdio, netns

log = logging.getLogger("runtime")


class RuntimeError_(Exception):
    def __init__(self, message: str, kind: str = "Error"):
        super().__init__(message)
        self.kind = kind


@dataclass
class Sandbox:
    id: str
    pod: dict                      # {"uid","name","namespace"}
    hostname: str
    network: str
    pid: int = 0
    start_ticks: int | None = None
    state: str = "ready"           # ready | notready
    created_at: str = ""
    netns_path: str = ""
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    cgroup: str = ""


@dataclass
class Container:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str
    argv: list
    env: list
    cwd: str
    files: list
    log_path: str
    memory_bytes: int | None = None
    cpu_millis: int | None = None
    labels: dict = field(default_factory=dict)
    state: str = "created"         # created | running | exited
    pid: int = 0
    start_ticks: int | None = None
    created_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    cgroup: str = ""
    started_ts: float = 0.0        # epoch seconds, for back-off and probe timing (the ISO fields are for status)
    finished_ts: float = 0.0


class Runtime:
    def __init__(self, root: str, cgroup_root: str = "pocketkube", *, log_max_bytes: int = 10 * 1024 * 1024,
                 log_max_files: int = 2, cgroups=None, spawn_helper: str | None = None):
        self.root = root
        # the built C helper (kubelet.runtime.pkspawn) that makes sandboxes and containers; None: fork
        self.spawn_helper = spawn_helper
        # with the helper, processes are started on this one thread (posix_spawn without the GIL), so the
        # loop keeps serving while a vfork child runs up to its exec; the fork path stays on the loop
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="spawn") if spawn_helper else None
        self.state_dir = os.path.join(root, "state")
        self.images = ImageStore(os.path.join(root, "images"))
        self.cgroups = cgroups if cgroups is not None else cg.detect(cgroup_root)
        self.log_max_bytes = log_max_bytes
        self.log_max_files = log_max_files
        self.sandboxes: dict[str, Sandbox] = {}
        self.containers: dict[str, Container] = {}
        self._by_pid: dict[int, tuple[str, str]] = {}            # pid -> (kind, id)
        self._unknown_exits: dict[int, int] = {}
        self._exit_waiters: dict[str, list[asyncio.Future]] = {}
        self._writers: dict[str, LogWriter] = {}
        self._open_streams: dict[str, int] = {}
        self._execs: dict[str, dict] = {}
        self._stdin: dict[str, int] = {}
        self.journal = StateJournal(self.state_dir, ("sandboxes", "containers"))

    # ------------------------------------------------------------ persistence
    def _save(self, obj: Sandbox | Container) -> None:
        # flat records: vars() is asdict() without its deep copy
        self.journal.put("sandboxes" if isinstance(obj, Sandbox) else "containers", obj.id, vars(obj))

    def _unsave(self, kind: str, id_: str) -> None:
        self.journal.delete(kind, id_)

    def recover(self) -> None:
        """Load state left by an earlier daemon; what it ran is ended (see the module docstring)."""
        loaded = self.journal.load()
        for kind, cls, table in (("sandboxes", Sandbox, self.sandboxes), ("containers", Container, self.containers)):
            for id_, record in loaded[kind].items():
                try:
                    table[id_] = cls(**record)
                except TypeError:                  # a record this version cannot read: dropped
                    self.journal.delete(kind, id_)
        for c in self.containers.values():
            if c.state == "running":
                self._kill_if_same(c.pid, c.start_ticks)
                c.state, c.exit_code, c.reason, c.finished_at = "exited", 255, "Unknown", now()
                c.finished_ts = time.time()
                c.message = "the container runtime restarted"
                self._save(c)
        for s in self.sandboxes.values():
            if s.state == "ready":
                self._kill_if_same(s.pid, s.start_ticks)
                s.state = "notready"
                self._save(s)

    @staticmethod
    def _kill_if_same(pid: int, ticks: int | None) -> None:
        if pid and ticks is not None and linux.process_start_time(pid) == ticks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # ----------------------------------------------------------------- reaping
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            self._exited(pid, code)

    def _exited(self, pid: int, code: int) -> None:
        owner = self._by_pid.pop(pid, None)
        if owner is None:
            self._unknown_exits[pid] = code
            if len(self._unknown_exits) > 1000:
                self._unknown_exits.pop(next(iter(self._unknown_exits)))
            return
        kind, id_ = owner
        if kind == "container":
            c = self.containers.get(id_)
            if c is None:
                return
            exit_code = 128 - code if code < 0 else code
            c.state, c.exit_code, c.finished_at, c.finished_ts = "exited", exit_code, now(), time.time()
            if exit_code != 0 and self.cgroups.oom_killed(c.cgroup):   # pid 1 killed, or a child and pid 1 said so
                c.reason = "OOMKilled"
            elif not c.reason:
                c.reason = "Completed" if exit_code == 0 else "Error"
            self._save(c)
            in_w = self._stdin.pop(id_, None)
            if in_w is not None:
                os.close(in_w)
        elif kind == "sandbox":
            s = self.sandboxes.get(id_)
            if s is not None:
                s.state = "notready"
                self._save(s)
        elif kind == "exec":
            e = self._execs.get(id_)
            if e is not None:
                e["exit_code"] = 128 - code if code < 0 else code
        for fut in self._exit_waiters.pop(f"{kind}:{id_}", []):
            if not fut.done():
                fut.set_result(code)

    def _track(self, kind: str, id_: str, pid: int) -> None:
        if pid in self._unknown_exits:           # exited before we got to record it
            self._by_pid[pid] = (kind, id_)
            self._exited(pid, self._unknown_exits.pop(pid))
        else:
            self._by_pid[pid] = (kind, id_)

    async def _wait_exit(self, kind: str, id_: str, pid: int, timeout: float | None) -> bool:
        if self._by_pid.get(pid) != (kind, id_):
            return True
        fut = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(f"{kind}:{id_}", []).append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # --------------------------------------------------------------- sandboxes
    async def run_sandbox(self, pod: dict, hostname: str, network: str = "pod", labels: dict | None = None,
                          annotations: dict | None = None) -> dict:
        if network not in ("pod", "host", "none"):
            raise RuntimeError_(f"unknown network mode {network!r}", "InvalidArgument")
        sid = secrets.token_hex(16)
        rel = f"pod{pod['uid']}"
        self.cgroups.create(rel)
        pid = await spawn.drive_async(spawn.sandbox_steps(spawn.SandboxSpec(
            hostname=hostname[:63], network=network, cgroup_join=self.cgroups.join_files(rel)), self.spawn_helper),
            self._spawner)
        s = Sandbox(id=sid, pod=pod, hostname=hostname, network=network, pid=pid,
                    start_ticks=linux.process_start_time(pid), created_at=now(),
                    netns_path=netns.process_ns_path(pid), labels=labels or {},
                    annotations=annotations or {}, cgroup=rel)
        self.sandboxes[sid] = s
        self._track("sandbox", sid, pid)
        self._save(s)
        return dict(vars(s))              # the whole record, as list_sandboxes gives it

    async def stop_sandbox(self, id: str) -> dict:
        s = self._sandbox(id)
        for c in [c for c in self.containers.values() if c.sandbox_id == id and c.state == "running"]:
            await self.stop_container(c.id, 0)
        if s.state == "ready":
            try:
                os.kill(s.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self._wait_exit("sandbox", id, s.pid, 10)
        # anything else left in the pod's cgroup (a process that escaped its container's pid namespace)
        for pid in self.cgroups.pids(s.cgroup):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        s.state = "notready"
        self._save(s)
        return {}

    async def remove_sandbox(self, id: str) -> dict:
        s = self.sandboxes.get(id)
        if s is None:
            return {}
        await self.stop_sandbox(id)
        for c in [c for c in self.containers.values() if c.sandbox_id == id]:
            await self.remove_container(c.id)
        self.cgroups.remove(s.cgroup)
        del self.sandboxes[id]
        self._unsave("sandboxes", id)
        return {}

    def list_sandboxes(self, namespace: str | None = None, name: str | None = None) -> dict:
        """All sandboxes, or those of one pod name (the kubelet's per-pod sync asks for its own only)."""
        return {"items": [dict(vars(s)) for s in self.sandboxes.values()
                          if (namespace is None or s.pod.get("namespace") == namespace)
                          and (name is None or s.pod.get("name") == name)]}

    def _sandbox(self, id: str) -> Sandbox:
        s = self.sandboxes.get(id)
        if s is None:
            raise RuntimeError_(f"sandbox {id} not found", "NotFound")
        return s

    # -------------------------------------------------------------- containers
    def create_container(self, sandbox_id: str, name: str, image: str, attempt: int = 0,
                         command: list | None = None, args: list | None = None, env: list | None = None,
                         working_dir: str = "", files: list | None = None, log_path: str = "",
                         memory_bytes: int | None = None, cpu_millis: int | None = None,
                         labels: dict | None = None) -> dict:
        s = self._sandbox(sandbox_id)
        img = self.images.resolve(image)
        if img is None:
            raise RuntimeError_(f'image "{image}" not found in the node\'s image store '
                                f'(import it with `pocketkube image import FILE`, or use pocketkube/host)',
                                "ImageNotFound")
        # Kubernetes' rule: command replaces ENTRYPOINT (and drops CMD); args replace CMD.
        argv = list(command) if command else list(img.entrypoint)
        argv += list(args) if args is not None and (args or command) else ([] if command else list(img.cmd))
        if not argv:
            raise RuntimeError_("no command specified: the image has no ENTRYPOINT or CMD and the container "
                                "gives neither command nor args", "InvalidArgument")
        cid = secrets.token_hex(16)
        c = Container(id=cid, sandbox_id=s.id, name=name, attempt=attempt, image=image, argv=argv,
                      env=list(img.env) + list(env or []), cwd=working_dir or img.working_dir or "/",
                      files=[list(f) for f in files or []], log_path=log_path or
                      os.path.join(self.root, "logs", cid + ".log"), memory_bytes=memory_bytes,
                      cpu_millis=cpu_millis, labels=labels or {}, created_at=now(),
                      cgroup=f"{s.cgroup}/{cid}")
        self.containers[cid] = c
        self._save(c)
        return {"id": cid}

    async def start_container(self, id: str) -> dict:
        c = self._container(id)
        if c.state != "created":
            raise RuntimeError_(f"container {id} is {c.state}, not created", "FailedPrecondition")
        s = self._sandbox(c.sandbox_id)
        if s.state != "ready":
            raise RuntimeError_(f"sandbox {s.id} is not ready", "FailedPrecondition")
        img = self.images.resolve(c.image)
        self.cgroups.create(c.cgroup, c.memory_bytes, c.cpu_millis)
        writer = LogWriter(c.log_path, self.log_max_bytes, self.log_max_files)
        overlay = os.path.join(self.root, "containers", c.id) if img and img.rootfs else None
        try:
            pid, out_r, err_r, _ = await spawn.drive_async(spawn.container_steps(spawn.ContainerSpec(
                argv=c.argv, env=c.env, sandbox_pid=s.pid, cwd=c.cwd, rootfs=img.rootfs if img else None,
                overlay_dir=overlay, files=[tuple(f) for f in c.files],
                cgroup_join=self.cgroups.join_files(c.cgroup)), self.spawn_helper), self._spawner)
        except spawn.SpawnError as e:
            writer.close()
            c.state, c.exit_code, c.reason, c.message = "exited", 128, "StartError", str(e)
            c.started_at = c.finished_at = now()
            c.started_ts = c.finished_ts = time.time()
            self._save(c)
            raise RuntimeError_(str(e), "StartError") from e
        c.state, c.pid, c.start_ticks, c.started_at = "running", pid, linux.process_start_time(pid), now()
        c.started_ts = time.time()
        self._writers[c.id] = writer
        self._open_streams[c.id] = 2
        loop = asyncio.get_running_loop()
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._pump, c.id, fd, stream)
        self._track("container", c.id, pid)
        self._save(c)
        return dict(vars(c))              # the whole record, as list_containers gives it

    def _pump(self, cid: str, fd: int, stream: str) -> None:
        w = self._writers.get(cid)
        data = fdio.read_ready(fd)
        if data is None:
            return
        if data and w is not None:
            w.feed(stream, data)
            return
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        if w is not None:
            w.close_stream(stream)
        self._open_streams[cid] = self._open_streams.get(cid, 1) - 1
        if self._open_streams[cid] <= 0:
            self._open_streams.pop(cid, None)
            w = self._writers.pop(cid, None)
            if w is not None:
                w.close()

    async def stop_container(self, id: str, timeout: float = 30) -> dict:
        c = self._container(id)
        if c.state != "running":
            return {"exit_code": c.exit_code}
        try:
            os.kill(c.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not await self._wait_exit("container", id, c.pid, max(0.0, float(timeout))):
            try:
                os.kill(c.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self._wait_exit("container", id, c.pid, 10)
        return {"exit_code": c.exit_code}

    async def remove_container(self, id: str) -> dict:
        c = self.containers.get(id)
        if c is None:
            return {}
        if c.state == "running":
            await self.stop_container(id, 0)
        self.cgroups.remove(c.cgroup)
        overlay = os.path.join(self.root, "containers", id)
        if os.path.isdir(overlay):
            import shutil
            shutil.rmtree(overlay, ignore_errors=True)
        del self.containers[id]
        self._unsave("containers", id)
        return {}

    def list_containers(self, sandbox_id: str | None = None) -> dict:
        return {"items": [dict(vars(c)) for c in self.containers.values()
                          if sandbox_id is None or c.sandbox_id == sandbox_id]}

    def _container(self, id: str) -> Container:
        c = self.containers.get(id)
        if c is None:
            raise RuntimeError_(f"container {id} not found", "NotFound")
        return c

    # -------------------------------------------------------------------- exec
    def _exec_spec(self, c: Container, argv: list, tty: bool = False, stdin: bool = False) -> spawn.ExecSpec:
        if c.state != "running":
            raise RuntimeError_(f"container {c.name} is not running", "FailedPrecondition")
        if not argv:
            raise RuntimeError_("no command given", "InvalidArgument")
        return spawn.ExecSpec(target_pid=c.pid, argv=list(argv), env=c.env, cwd=c.cwd, tty=tty, stdin=stdin,
                              cgroup_join=self.cgroups.join_files(c.cgroup))

    def exec_start(self, container_id: str, command: list, tty: bool = False, stdin: bool = False):
        c = self._container(container_id)
        try:
            pid, fds = spawn.spawn_exec(self._exec_spec(c, command, tty, stdin))
        except spawn.SpawnError as e:
            raise RuntimeError_(str(e), "ExecFailed") from e
        eid = secrets.token_hex(8)
        self._execs[eid] = {"pid": pid, "exit_code": None}
        self._track("exec", eid, pid)
        return {"exec_id": eid, "pid": pid, "tty": tty}, fds

    async def exec_wait(self, exec_id: str, timeout: float | None = None) -> dict:
        e = self._execs.get(exec_id)
        if e is None:
            raise RuntimeError_(f"exec {exec_id} not found", "NotFound")
        if e["exit_code"] is None:
            done = await self._wait_exit("exec", exec_id, e["pid"], timeout)
            if not done:
                return {"exit_code": None}
        self._execs.pop(exec_id, None)
        return {"exit_code": e["exit_code"]}

    async def exec_sync(self, container_id: str, command: list, timeout: float = 1.0) -> dict:
        """Run to completion with output captured (exec probes); kills it at the timeout."""
        c = self._container(container_id)
        try:
            pid, fds = await spawn.drive_async(spawn.exec_steps(self._exec_spec(c, command)))
        except spawn.SpawnError as e:
            return {"exit_code": 126, "stdout": "", "stderr": str(e), "timed_out": False}
        eid = secrets.token_hex(8)
        self._execs[eid] = {"pid": pid, "exit_code": None}
        self._track("exec", eid, pid)
        os.close(fds[0])
        loop = asyncio.get_running_loop()
        bufs = {fds[1]: bytearray(), fds[2]: bytearray()}
        done = loop.create_future()
        open_fds = set(bufs)

        def readable(fd: int) -> None:
            data = fdio.read_ready(fd)
            if data is None:
                return
            if data:
                if len(bufs[fd]) < 1 << 20:
                    bufs[fd] += data
                return
            loop.remove_reader(fd)
            os.close(fd)
            open_fds.discard(fd)
            if not open_fds and not done.done():
                done.set_result(None)

        for fd in bufs:
            os.set_blocking(fd, False)
            loop.add_reader(fd, readable, fd)
        timed_out = not await self._wait_exit("exec", eid, pid, timeout)
        if timed_out:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self._wait_exit("exec", eid, pid, 5)
        try:
            await asyncio.wait_for(done, 1.0)
        except asyncio.TimeoutError:   # a grandchild keeps the pipes open
            for fd in list(open_fds):
                loop.remove_reader(fd)
                os.close(fd)
        code = self._execs.pop(eid, {}).get("exit_code")
        return {"exit_code": code, "stdout": bufs[fds[1]].decode(errors="replace"),
                "stderr": bufs[fds[2]].decode(errors="replace"), "timed_out": timed_out}

    # ------------------------------------------------------------------- other
    def version(self) -> dict:
        return {"name": "pocketkube-runtime", "version": "0.1.0", "pid": os.getpid(),
                "cgroups": self.cgroups.version}

    def image_status(self, image: str) -> dict:
        img = self.images.resolve(image)
        return {"found": img is not None, "image": img.to_dict() if img else None}

    def list_images(self) -> dict:
        return {"items": [i.to_dict() for i in self.images.list()]}


# ---------------------------------------------------------------------- server
METHODS_SYNC = {"version", "list_sandboxes", "create_container", "list_containers", "image_status", "list_images"}
METHODS_ASYNC = {"run_sandbox", "start_container", "stop_sandbox", "remove_sandbox", "stop_container",
                 "remove_container", "exec_wait", "exec_sync"}


async def handle_connection(rt: Runtime, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    buf = b""
    try:
        while True:
            while b"\n" not in buf:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    return
                buf += chunk
            line, _, buf = buf.partition(b"\n")
            fds: list[int] = []
            try:
                req = orjson.loads(line)
                method = req.pop("method", None)
                if method == "exec":
                    result, fds = rt.exec_start(**req)
                elif method in METHODS_SYNC:
                    result = getattr(rt, method)(**req)
                elif method in METHODS_ASYNC:
                    result = await getattr(rt, method)(**req)
                else:
                    raise RuntimeError_(f"unknown method {method!r}", "InvalidArgument")
                resp = {"ok": True, **result}
            except RuntimeError_ as e:
                resp = {"ok": False, "error": str(e), "kind": e.kind}
            except (TypeError, ValueError) as e:
                resp = {"ok": False, "error": f"bad request: {e}", "kind": "InvalidArgument"}
            except OSError as e:
                log.exception("request failed")
                resp = {"ok": False, "error": str(e), "kind": "Internal"}
            data = orjson.dumps(resp) + b"\n"
            if fds:
                sock.setblocking(True)
                try:
                    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                finally:
                    sock.setblocking(False)
                    for fd in fds:
                        os.close(fd)
            else:
                await loop.sock_sendall(sock, data)
    except (ConnectionError, OSError):
        return
    finally:
        sock.close()


async def serve(rt: Runtime, socket_path: str, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGCHLD, rt.reap)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(socket_path)
    os.chmod(socket_path, 0o600)
    srv.listen(128)
    srv.setblocking(False)
    rt.reap()
    log.info("runtime listening on %s (cgroups v%s, %s)", socket_path, rt.cgroups.version,
             f"spawn helper {rt.spawn_helper}" if rt.spawn_helper else "forking")
    tasks: set[asyncio.Task] = set()

    async def accept_loop() -> None:
        while True:
            conn, _ = await loop.sock_accept(srv)
            conn.setblocking(False)
            t = asyncio.create_task(handle_connection(rt, conn))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    acceptor = asyncio.create_task(accept_loop())
    if ready is not None:
        ready.set()
    await stop.wait()
    acceptor.cancel()
    srv.close()
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    log.info("runtime stopping; pods keep running until the next start ends them")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube runtime",
                                description="Run the per-node container runtime (pause + containers, logs).")
    p.add_argument("--root-dir", default="/var/lib/pocketkube/node", help="state, images and overlays")
    p.add_argument("--socket", default=None, help="Unix socket (default ROOT/runtime.sock)")
    p.add_argument("--cgroup-root", default="pocketkube", help="cgroup path for pods (default pocketkube)")
    p.add_argument("--log-max-bytes", type=int, default=10 * 1024 * 1024, help="rotate a container log at this size")
    p.add_argument("--log-max-files", type=int, default=2, help="log files kept per container (default 2)")
    p.add_argument("--spawn-helper", default="auto", choices=["auto", "off"],
                   help="auto (default): build the C helper that makes pause and container processes without "
                        "forking this daemon (needs a C compiler once; falls back to forking); off: always fork")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("pocketkube runtime: error: must run as root (namespaces, cgroups, mounts)", file=sys.stderr)
        sys.exit(2)
    if args.log_max_bytes < 1024 or args.log_max_files < 1:
        print("pocketkube runtime: error: --log-max-bytes must be >= 1024 and --log-max-files >= 1", file=sys.stderr)
        sys.exit(2)
    os.makedirs(args.root_dir, exist_ok=True)
    linux.set_child_subreaper()
    helper = None
    if args.spawn_helper == "auto":
        helper, why = pkspawn.ensure(os.path.join(args.root_dir, "bin"))
        if helper is None:
            log.warning("spawn helper not built (%s); pause and container processes are forked from this daemon, "
                        "which costs more CPU per pod", why)
    rt = Runtime(args.root_dir, args.cgroup_root, log_max_bytes=args.log_max_bytes, log_max_files=args.log_max_files,
                 spawn_helper=helper)
    rt.recover()
    with open(os.path.join(args.root_dir, "runtime.pid"), "w") as f:
        f.write(str(os.getpid()))
    asyncio.run(serve(rt, args.socket or os.path.join(args.root_dir, "runtime.sock")))


if __name__ == "__main__":
    main()
