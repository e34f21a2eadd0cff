"""The kubelet's side of the runtime socket: one call = one request line and one answer line.

Each thread keeps its own connection (the daemon serves any number of
requests on one), so the client is thread-safe without locks while the
kubelet's pod workers, probers and exec sessions call at once, and a pod
start's four calls do not each pay a connect, an accept and a new task in
the daemon. A kept connection that turns out dead when sending (the daemon
restarted) is replaced and the request sent again: nothing had been sent.
A timed-out or broken exchange drops the connection, so a late answer is
never read as the next call's. ``exec`` receives the session's file
descriptors with the answer (SCM_RIGHTS). ``ensure_runtime`` starts the daemon when no
one answers on the socket, detached into its own session so it outlives
the kubelet, as docs/design.md's process table says.
"""
from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import sys
import threading
import time

import orjson


class RuntimeCallError(Exception):
    def __init__(self, message: str, kind: str = "Error"):
        super().__init__(message)
        self.kind = kind


class RuntimeUnavailable(RuntimeCallError):
    pass


class RuntimeClient:
    def __init__(self, socket_path: str, timeout: float = 120.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._local = threading.local()     # each thread's kept connection

    def _connect(self, timeout: float | None) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout or self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError as e:
            s.close()
            raise RuntimeUnavailable(f"container runtime not reachable at {self.socket_path}: {e}",
                                     "Unavailable") from e
        return s

    def _drop(self) -> None:
        s = getattr(self._local, "sock", None)
        self._local.sock = None
        if s is not None:
            s.close()

    def call(self, method: str, *, call_timeout: float | None = None, **params) -> dict:
        data = orjson.dumps({"method": method, **params}) + b"\n"
        s = getattr(self._local, "sock", None)
        if s is not None:
            try:
                s.settimeout(call_timeout or self.timeout)
                s.sendall(data)
            except OSError:                  # the daemon restarted since: nothing was sent, so resend
                self._drop()
                s = None
        if s is None:
            s = self._local.sock = self._connect(call_timeout)
            try:
                s.sendall(data)
            except OSError as e:
                self._drop()
                raise RuntimeUnavailable(f"runtime connection failed during {method}: {e}", "Unavailable") from e
        buf = b""
        try:
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    self._drop()
                    raise RuntimeUnavailable(f"runtime closed the connection during {method}", "Unavailable")
                buf += chunk
        except socket.timeout as e:
            self._drop()                     # a late answer must not be read as the next call's
            raise RuntimeCallError(f"runtime call {method} timed out", "Timeout") from e
        except OSError as e:
            self._drop()
            raise RuntimeUnavailable(f"runtime connection failed during {method}: {e}", "Unavailable") from e
        resp = orjson.loads(buf)
        if not resp.pop("ok", False):
            raise RuntimeCallError(resp.get("error", "unknown runtime error"), resp.get("kind", "Error"))
        return resp

    def exec(self, container_id: str, command: list[str], tty: bool = False, stdin: bool = False) -> tuple[dict, list[int]]:
        """Start an exec session; returns (info, fds): [stdin w, stdout r, stderr r] or [pty master]."""
        s = self._connect(None)
        try:
            s.sendall(json.dumps({"method": "exec", "container_id": container_id, "command": command,
                                  "tty": tty, "stdin": stdin}).encode() + b"\n")
            fds = array.array("i")
            buf = b""
            while not buf.endswith(b"\n"):
                msg, anc, _flags, _addr = s.recvmsg(1 << 16, socket.CMSG_SPACE(4 * fds.itemsize))
                if not msg:
                    raise RuntimeUnavailable("runtime closed the connection during exec", "Unavailable")
                buf += msg
                for level, typ, data in anc:
                    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                        fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
        finally:
            s.close()
        resp = orjson.loads(buf)
        if not resp.pop("ok", False):
            for fd in fds:
                os.close(fd)
            raise RuntimeCallError(resp.get("error", "exec failed"), resp.get("kind", "Error"))
        return resp, list(fds)

    def ping(self) -> bool:
        try:
            self.call("version", call_timeout=2.0)
            return True
        except RuntimeCallError:
            return False

    def remove_all_sandboxes(self) -> tuple[int, list[str]]:
        """Remove every pod sandbox (pause and containers killed, cgroups removed); (how many, errors)."""
        n, errors = 0, []
        try:
            for sb in self.call("list_sandboxes")["items"]:
                try:
                    self.call("remove_sandbox", id=sb["id"])
                    n += 1
                except RuntimeCallError as e:
                    errors.append(f"remove sandbox {sb.get('id')}: {e}")
        except RuntimeCallError as e:
            errors.append(f"runtime: {e}")
        return n, errors


def ensure_runtime(root_dir: str, socket_path: str, cgroup_root: str, log_file: str,
                   wait: float = 20.0, extra_args: list[str] | None = None) -> RuntimeClient:
    """A client for the node's runtime, starting the daemon first if nothing answers."""
    client = RuntimeClient(socket_path)
    if client.ping():
        return client
    os.makedirs(root_dir, exist_ok=True)
    with open(log_file, "ab") as log:
        subprocess.Popen([sys.executable, "-m", "kubelet.runtime.daemon", "--root-dir", root_dir,
                          "--socket", socket_path, "--cgroup-root", cgroup_root, *(extra_args or [])],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                         close_fds=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if client.ping():
            return client
        time.sleep(0.05)
    raise RuntimeUnavailable(f"started the runtime but it did not answer on {socket_path} within {wait:.0f}s "
                             f"(see {log_file})", "Unavailable")
