"""The sockets: a UDP loop, a TCP server and the HTTP health/readiness endpoint.

UDP is one thread running the tightest loop Python allows: ``recvfrom``
(which releases the GIL while it waits), one dict lookup of the query's
bytes after the ID in the handler's encoded-answer cache, and ``sendto`` of
``ID + cached bytes``. Only a miss goes through dnslib (``DNSHandler.answer``),
and only a forward leaves the thread (``Forwarder.submit``), so a slow
upstream never delays cluster names. The socket's receive buffer is raised
so bursts queue in the kernel rather than being dropped.

TCP (RFC 7766): a thread per connection, several queries per connection
with the 2-byte length prefix, nothing truncated, an idle timeout, and at
most ``max_connections`` at once (more are closed at once).

Health (``/health``: the process is serving) and readiness (``/ready``: the
informer caches have synced) share one small HTTP server, as CoreDNS's
``health`` and ``ready`` plugins do on two ports; ``/metrics`` has a few
counters in the Prometheus text format.

``stop()`` on each server makes its thread return promptly (a UDP socket is
woken by ``shutdown``, a listening one too).
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from addons.dns.forward import Forwarder
from addons.dns.handler import FORWARD, DNSHandler

log = logging.getLogger(__name__)

RECV_SIZE = 4096


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_udp(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    s = socket.socket(_family(host), socket.SOCK_DGRAM)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    except OSError:
        pass
    s.bind((host, port))
    return s


def bind_tcp(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    s = socket.socket(_family(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    s.listen(128)
    return s


class UDPServer:
    def __init__(self, sock: socket.socket, handler: DNSHandler, forwarder: Forwarder | None = None):
        self.sock = sock
        self.handler = handler
        self.forwarder = forwarder
        self.queries = 0
        self.misses = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> "UDPServer":
        self._thread = threading.Thread(target=self.serve, name="dns-udp", daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        sock = self.sock
        recv, send = sock.recvfrom, sock.sendto
        cache = self.handler.udp_cache          # emptied in place by invalidate(), never replaced
        answer = self.handler.answer
        n = 0
        while True:
            try:
                data, addr = recv(RECV_SIZE)
            except OSError:
                if self._stopped:
                    return
                continue
            if not data:
                if self._stopped:
                    return
                continue
            n += 1
            self.queries = n
            r = cache.get(data[2:])
            if r is not None:
                try:
                    send(data[:2] + r, addr)
                except OSError:
                    pass
                continue
            self.misses += 1
            try:
                out = answer(data, False)
                if out is FORWARD:
                    self._forward(data, addr)
                elif out:
                    send(out, addr)
            except OSError:
                pass
            except Exception:  # noqa: BLE001 - one bad packet must not stop the server
                log.exception("error answering a UDP query from %s", addr)

    def _forward(self, data: bytes, addr) -> None:
        def reply(resp: bytes | None) -> None:
            try:
                self.sock.sendto(resp if resp is not None else self.handler.servfail(data), addr)
            except OSError:
                pass

        if self.forwarder is None or not self.forwarder.submit(data, reply):
            reply(None)

    def stop(self) -> None:
        self._stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # wakes a blocked recvfrom (Linux), even unconnected
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(2.0)
        self.sock.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class TCPServer:
    def __init__(self, sock: socket.socket, handler: DNSHandler, forwarder: Forwarder | None = None, *,
                 idle_timeout: float = 10.0, max_connections: int = 256):
        self.sock = sock
        self.handler = handler
        self.forwarder = forwarder
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.queries = 0

    def start(self) -> "TCPServer":
        self._thread = threading.Thread(target=self.serve, name="dns-tcp", daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        while not self._stopped:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                if self._stopped:
                    return
                continue
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._conn, args=(conn, addr), name="dns-tcp-conn", daemon=True).start()

    def _conn(self, conn: socket.socket, addr) -> None:
        try:
            conn.settimeout(self.idle_timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while not self._stopped:
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                data = _recv_exact(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                self.queries += 1
                out = self.handler.respond(data, tcp=True)
                if out is FORWARD:
                    resp = self.forwarder.exchange(data, tcp=True) if self.forwarder else None
                    out = resp if resp is not None else self.handler.servfail(data)
                if not out:
                    continue
                conn.sendall(struct.pack("!H", len(out)) + out)
        except (OSError, ValueError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("error on a TCP connection from %s", addr)
        finally:
            conn.close()
            self._slots.release()

    def stop(self) -> None:
        self._stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._thread is not None:
            self._thread.join(2.0)


class HealthServer:
    """``/health``, ``/ready`` and ``/metrics`` on one HTTP port."""

    def __init__(self, host: str, port: int, ready: Callable[[], bool],
                 metrics: Callable[[], dict[str, float]] = dict):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                if path in ("/health", "/healthz"):
                    code, body = 200, b"OK"
                elif path in ("/ready", "/readyz"):
                    ok = outer.ready()
                    code, body = (200, b"OK") if ok else (503, b"informer caches not synced")
                elif path == "/metrics":
                    code = 200
                    body = "".join(f"{k} {v}\n" for k, v in outer.metrics().items()).encode()
                else:
                    code, body = 404, b"not found"
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.ready = ready
        self.metrics = metrics
        server_cls = type("HTTPServer", (ThreadingHTTPServer,), {"address_family": _family(host),
                                                                  "daemon_threads": True})
        self.httpd = server_cls((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> "HealthServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="dns-health", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------ addresses
def parse_listen(value: str, default_port: int = 53) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``[V6]:PORT`` -> (host, port); an empty host is 0.0.0.0."""
    import ipaddress

    host, port = value, default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, p = value.split(":")
        port = int(p)
    host = host or "0.0.0.0"
    ipaddress.ip_address(host)
    if not 0 <= port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


def first_ipv4(exclude_loopback: bool = True) -> str | None:
    """The first non-loopback IPv4 address of this network namespace (by interface index)."""
    import json
    import subprocess

    try:
        out = subprocess.run(["ip", "-4", "-j", "addr", "show"], capture_output=True, timeout=10, check=True).stdout
        links = sorted(json.loads(out or b"[]"), key=lambda link: link.get("ifindex", 0))
    except (OSError, subprocess.SubprocessError, ValueError):
        links = []
    for link in links:
        for a in link.get("addr_info") or []:
            ip = a.get("local")
            if a.get("family") == "inet" and ip and not (exclude_loopback and ip.startswith("127.")):
                return ip
    try:
        ip = socket.gethostbyname(socket.gethostname())
        if not (exclude_loopback and ip.startswith("127.")):
            return ip
    except OSError:
        pass
    return None


def advertise_address(listen_host: str, flag: str | None) -> str | None:
    """What goes into the kube-dns Endpoints: the flag, else a specific --listen host, else ``first_ipv4``."""
    if flag:
        return flag
    if listen_host not in ("0.0.0.0", "::"):
        return listen_host
    return first_ipv4()


__all__ = ["UDPServer", "TCPServer", "HealthServer", "bind_udp", "bind_tcp", "parse_listen", "first_ipv4",
           "advertise_address"]
