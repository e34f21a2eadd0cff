"""The kubelet's runtime client keeps one connection per thread and survives a restarted daemon."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from kubelet.runtime.client import RuntimeCallError, RuntimeClient, RuntimeUnavailable


class FakeDaemon:
    """A Unix-socket server speaking the runtime's line protocol: answers {"ok": true, "echo": method}.
    ``slow`` methods are answered after ``delay`` seconds."""

    def __init__(self, path: str, delay: float = 0.0, slow: tuple[str, ...] = ()):
        self.path, self.delay, self.slow = path, delay, slow
        self.accepts = 0
        self.conns: list[socket.socket] = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.accepts += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                line, _, buf = buf.partition(b"\n")
                req = json.loads(line)
                if req["method"] in self.slow:
                    time.sleep(self.delay)
                if req["method"] == "hangup":          # the daemon going away mid-call
                    c.shutdown(socket.SHUT_RDWR)
                    return
                if req["method"] == "fail":
                    c.sendall(b'{"ok": false, "error": "no such sandbox", "kind": "NotFound"}\n')
                else:
                    c.sendall(json.dumps({"ok": True, "echo": req["method"], **req}).encode() + b"\n")
        except OSError:
            return

    def restart(self) -> None:
        """What a daemon restart looks like to a client: every connection closed, a new listener."""
        self.srv.close()
        for c in self.conns:
            c.shutdown(socket.SHUT_RDWR)          # as the daemon's exit does
            c.close()
        self.conns = []
        os.unlink(self.path)
        self.__init__(self.path, self.delay, self.slow)

    def close(self) -> None:
        self.srv.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "rt.sock")


def test_calls_on_one_thread_share_one_connection(sock_path):
    d = FakeDaemon(sock_path)
    rc = RuntimeClient(sock_path)
    for i in range(5):
        assert rc.call("list_sandboxes", name=f"p{i}")["name"] == f"p{i}"
    assert d.accepts == 1
    with pytest.raises(RuntimeCallError) as e:
        rc.call("fail")
    assert e.value.kind == "NotFound" and str(e.value) == "no such sandbox"
    assert rc.call("version")["echo"] == "version" and d.accepts == 1     # an error answer keeps the connection
    d.close()


def test_threads_get_connections_of_their_own(sock_path):
    d = FakeDaemon(sock_path, delay=0.05, slow=("run_sandbox",))
    rc = RuntimeClient(sock_path)
    out: list[str] = []
    ts = [threading.Thread(target=lambda i=i: out.append(rc.call("run_sandbox", n=i)["n"])) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(out) == [0, 1, 2, 3] and d.accepts == 4
    d.close()


def test_a_restarted_daemon_is_reconnected_and_the_call_resent(sock_path):
    d = FakeDaemon(sock_path)
    rc = RuntimeClient(sock_path)
    assert rc.call("version")["echo"] == "version"
    d.restart()
    assert rc.call("list_containers")["echo"] == "list_containers"
    assert d.accepts == 1                         # on the new daemon
    d.close()


def test_a_timed_out_answer_is_not_read_as_the_next_calls(sock_path):
    d = FakeDaemon(sock_path, delay=0.3, slow=("stop_container",))
    rc = RuntimeClient(sock_path)
    with pytest.raises(RuntimeCallError) as e:
        rc.call("stop_container", call_timeout=0.05)
    assert e.value.kind == "Timeout"
    time.sleep(0.35)                              # the late answer arrives on the dropped connection
    assert rc.call("version")["echo"] == "version"
    assert d.accepts == 2
    d.close()


def test_no_daemon_is_unavailable(sock_path):
    with pytest.raises(RuntimeUnavailable) as e:
        RuntimeClient(sock_path).call("version")
    assert "not reachable" in str(e.value)


def test_a_connection_closed_mid_call_is_unavailable_and_replaced(sock_path):
    d = FakeDaemon(sock_path)
    rc = RuntimeClient(sock_path)
    with pytest.raises(RuntimeUnavailable) as e:
        rc.call("hangup")
    assert "closed the connection during hangup" in str(e.value)
    assert rc.call("version")["echo"] == "version" and d.accepts == 2
    d.close()


def test_remove_all_sandboxes_removes_each_one_and_collects_the_errors():
    rc = RuntimeClient("/nonexistent/runtime.sock")
    calls = []

    def call(method, **p):
        calls.append((method, p))
        if method == "list_sandboxes":
            return {"items": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}
        if p["id"] == "b":
            raise RuntimeCallError("busy")
        return {}

    rc.call = call
    assert rc.remove_all_sandboxes() == (2, ["remove sandbox b: busy"])
    assert [p.get("id") for m, p in calls if m == "remove_sandbox"] == ["a", "b", "c"]
