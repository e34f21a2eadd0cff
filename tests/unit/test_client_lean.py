"""The lean HTTP/1.1 transport of the shared client's hot writes against a scripted local HTTP/1.1 server."""
from __future__ import annotations

import socket
import threading

import orjson
import pytest

from api import resources as R
from client.errors import ConnectionFailed, Conflict, NotFound
from client.kubeconfig import Config
from client.lean import LeanTransport
from client.rest import Client


class Scripted:
    """A loopback server that answers each request with the next scripted raw response."""

    def __init__(self, responses: list[bytes], close_after: set[int] | None = None):
        self.responses = list(responses)
        self.close_after = close_after or set()
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        n = 0
        while self.responses:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while self.responses:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v)
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + rest[:length])
                    buf = rest[length:]
                    conn.sendall(self.responses.pop(0))
                    n += 1
                    if n in self.close_after:
                        break

    @property
    def config(self) -> Config:
        return Config(server=f"http://127.0.0.1:{self.port}", token="tok")

    def transport(self, **kw) -> LeanTransport:
        return LeanTransport(self.config, timeout=5, **kw)

    def client(self, **kw) -> Client:
        """The shared client: its binds and status patches take the lean transport."""
        return Client(self.config, timeout=5, **kw)


def ok(body: dict, status: str = "201 Created") -> bytes:
    data = orjson.dumps(body)
    return f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data


def test_bind_request_shape_and_keep_alive():
    srv = Scripted([ok({"kind": "Status", "status": "Success"}), ok({"kind": "Status"})])
    w = srv.client()
    assert w.bind("web-0", "shop", "n1", uid="u-1")["status"] == "Success"
    w.bind("web-1", "shop", "n2")
    head, _, body = srv.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/v1/namespaces/shop/pods/web-0/binding HTTP/1.1"
    assert "Authorization: Bearer tok" in lines and "Content-Type: application/json" in lines
    assert orjson.loads(body) == {"apiVersion": "v1", "kind": "Binding",
                                  "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1"},
                                  "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    assert srv.connections == 1  # the second request reused the connection
    w.close()


def test_chunked_and_close_delimited_bodies():
    chunked = (b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n"
               b"5\r\n{\"a\":\r\n3;ext=1\r\n 1}\r\n0\r\nx-trailer: y\r\n\r\n")
    until_close = b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"b\": 2}"
    srv = Scripted([chunked, until_close, ok({"c": 3})], close_after={2})
    w = srv.transport()
    assert w.request("POST", "/x", {"k": 1}) == {"a": 1}
    assert w.request("POST", "/y", {"k": 2}) == {"b": 2}
    assert w.request("POST", "/z", {"k": 3}) == {"c": 3}  # on a new connection
    assert srv.connections == 2


def test_errors_are_translated_like_the_shared_client():
    conflict = orjson.dumps({"kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409,
                             "message": 'pod web-0 is already assigned to node "n1"'})
    srv = Scripted([
        f"HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: {len(conflict)}\r\n\r\n".encode()
        + conflict,
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found",
    ])
    w = srv.client()
    with pytest.raises(Conflict, match="already assigned"):
        w.bind("web-0", "default", "n2")
    with pytest.raises(NotFound):
        w.bind("gone", "default", "n2")


def test_unreachable_server_is_connection_failed():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    w = Client(Config(server=f"http://127.0.0.1:{port}"), timeout=2)
    with pytest.raises(ConnectionFailed):
        w.bind("p", "default", "n1")


def test_idle_connection_is_replaced_before_reuse():
    srv = Scripted([ok({}), ok({})])
    w = srv.transport(idle_reconnect=0.0)
    w.request("POST", "/a", {})
    w.request("POST", "/b", {})
    assert srv.connections == 2


def test_patch_status_is_a_merge_patch_of_the_status_subresource():
    srv = Scripted([ok({"kind": "Pod"}, "200 OK")])
    w = srv.client(user_agent="pocketkube-kubelet/0.1")
    w.patch_status(R.PODS, "web", {"phase": "Running"}, "default")
    head, _, body = srv.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "PATCH /api/v1/namespaces/default/pods/web/status HTTP/1.1"
    assert "Content-Type: application/merge-patch+json" in lines and "User-Agent: pocketkube-kubelet/0.1" in lines
    assert orjson.loads(body) == {"status": {"phase": "Running"}}
