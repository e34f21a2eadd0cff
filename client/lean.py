"""The lean HTTP/1.1 transport of the shared client's per-pod writes.

Measured on this machine against the real API server, one ``pods/binding``
POST costs the *client* process about 1.5 ms of CPU through httpx (request
building, URL parsing, cookie jar, auth flow, the pool's bookkeeping), about
0.5 ms through the standard library's ``http.client`` (whose header parsing
goes through the email package), and about 0.15 ms written directly on a
socket. The scheduler makes two such writes per pod (the bind and the
``Scheduled`` event), the kubelet four (the status patch and the
Pulled/Created/Started events), and they share two cores with the API server,
so that millisecond is a large share of the whole per-pod budget.

So ``client.rest.Client`` sends its hot writes (``pods/binding``,
``pods/status`` patches, Event creates and count patches: see
``rest.HOT_WRITES``) through a ``LeanTransport`` it owns, and everything else
(informers, lists, Leases, node status) through httpx. Callers never choose:
they call the client's verbs, which build the same request either way (a unit
test sends both paths to one recording server and compares them).

It is deliberately narrow: JSON bodies, bearer-token or client certificate
auth and TLS settings taken from the same kubeconfig ``Config``, one
keep-alive connection per thread (bind workers and the event writer each
reuse theirs), responses delimited by Content-Length, chunked encoding or the
end of the connection, and errors translated by ``client.errors`` exactly as
the httpx path does, so callers catch the same ``Conflict``/``NotFound``.

A request is never re-sent after a failure (a bind is not idempotent); a
connection idle for longer than the server's keep-alive (uvicorn closes
after 5 s) is replaced before it is reused rather than after it fails.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from client import bodies
from client.errors import ConnectionFailed, error_from_response
from client.kubeconfig import Config, ssl_context

USER_AGENT = "pocketkube/0.1"


class _Conn:
    """One keep-alive HTTP/1.1 connection and its receive buffer."""

    __slots__ = ("sock", "buf", "used")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.used = time.monotonic()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class LeanTransport:
    """Sends one request at a time per thread on its own keep-alive socket; thread-safe."""

    def __init__(self, config: Config, timeout: float = 30.0, idle_reconnect: float = 4.0,
                 user_agent: str = USER_AGENT, tls: ssl.SSLContext | None = None):
        """``tls``: the context to wrap sockets in (``rest.Client`` shares its own), else one from ``config``."""
        self.server = config.server.rstrip("/")
        url = urlsplit(config.server)
        self.scheme = url.scheme
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.base = url.path.rstrip("/")
        self.timeout = timeout
        self.idle_reconnect = idle_reconnect
        self.ssl = (tls or ssl_context(config)) if url.scheme == "https" else None
        host_header = self.host if ":" not in self.host else f"[{self.host}]"
        default_port = 443 if url.scheme == "https" else 80
        if self.port != default_port:
            host_header += f":{self.port}"
        lines = [f"Host: {host_header}", "Accept: application/json", f"User-Agent: {user_agent}"]
        if config.token:
            lines.append(f"Authorization: Bearer {config.token}")
        self._fixed_headers = "\r\n".join(lines)
        self._local = threading.local()
        self._all: list[_Conn] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------ connections
    def _connection(self) -> _Conn:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and time.monotonic() - conn.used > self.idle_reconnect:
            self._drop(conn)  # the server may be closing it right now; don't race it
            conn = None
        if conn is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl is not None:
                sock = self.ssl.wrap_socket(sock, server_hostname=self.host)
            conn = local.conn = _Conn(sock)
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)

    # ---------------------------------------------------------------- wire
    @staticmethod
    def _fill(conn: _Conn) -> None:
        chunk = conn.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        conn.buf += chunk

    def _read_response(self, conn: _Conn) -> tuple[int, dict[str, str], bytes]:
        while True:  # skip any 1xx interim answers
            while b"\r\n\r\n" not in conn.buf:
                self._fill(conn)
            head, _, conn.buf = conn.buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(f"malformed status line {lines[0]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if status >= 200:
                break
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked(conn)
        elif "content-length" in headers:
            n = int(headers["content-length"])
            while len(conn.buf) < n:
                self._fill(conn)
            body, conn.buf = conn.buf[:n], conn.buf[n:]
        else:  # delimited by the end of the connection
            try:
                while True:
                    self._fill(conn)
            except ConnectionError:
                pass
            body, conn.buf = conn.buf, b""
            headers["connection"] = "close"
        return status, headers, body

    def _read_chunked(self, conn: _Conn) -> bytes:
        out = []
        while True:
            while b"\r\n" not in conn.buf:
                self._fill(conn)
            size_line, _, conn.buf = conn.buf.partition(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while b"\r\n" not in conn.buf:  # trailers end with an empty line
                    self._fill(conn)
                while not conn.buf.startswith(b"\r\n"):
                    _, _, conn.buf = conn.buf.partition(b"\r\n")
                    while b"\r\n" not in conn.buf:
                        self._fill(conn)
                conn.buf = conn.buf[2:]
                return b"".join(out)
            while len(conn.buf) < size + 2:
                self._fill(conn)
            out.append(conn.buf[:size])
            conn.buf = conn.buf[size + 2:]

    def request(self, method: str, path: str, body: Any = None, content_type: str = bodies.JSON,
                params: dict[str, str] | None = None) -> dict:
        """Send ``body`` (JSON-encoded unless bytes); returns the decoded answer or raises a ``client.errors`` one."""
        data = body if isinstance(body, (bytes, type(None))) else orjson.dumps(body)
        return self.send(method, path, params, data, content_type if data is not None else None)

    def send(self, method: str, path: str, params: dict[str, str] | None, content: bytes | None,
             content_type: str | None) -> dict:
        """Send one already-encoded request (what ``rest.Client`` hands over for its hot writes)."""
        target = f"{self.base}{path}?{urlencode(params)}" if params else f"{self.base}{path}"
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed_headers}\r\n"
        if content is not None:
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
            head += f"Content-Length: {len(content)}\r\n"
        head += "\r\n"
        try:
            conn = self._connection()
            conn.sock.sendall(head.encode("latin-1") + (content or b""))
            status, headers, payload = self._read_response(conn)
        except (OSError, ValueError) as e:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                self._drop(conn)
            raise ConnectionFailed(f"{method} {self.server}{path}: "
                                   f"cannot reach the API server: {e or type(e).__name__}") from e
        conn.used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            self._drop(conn)
        if status >= 300:
            raise error_from_response(status, payload, headers.get("content-type"))
        return orjson.loads(payload) if payload else {}

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            c.close()


__all__ = ["LeanTransport"]

