"""Forwarding names outside the cluster to upstream resolvers (only when ``--upstream`` is given).

The query is sent as the client sent it (same flags, question and EDNS
record, so the upstream honours the client's buffer size) with a fresh
random ID, to each upstream in turn until one answers within its share of
the timeout; the answer goes back with the client's ID. UDP clients are
forwarded over UDP (a truncated upstream answer is passed on as is: the
client retries over TCP), TCP clients over TCP.

Forwarding runs on a small thread pool so the UDP loop never waits on the
network; at most ``max_pending`` queries are in flight, beyond that the
client gets SERVFAIL at once. Upstream answers are not cached here (the
upstream and the client's stub cache them by their own TTLs).

``parse_upstreams`` takes ``host``, ``host:port``, ``[v6]:port`` and
comma-separated lists, or a resolv.conf path whose ``nameserver`` lines are
used (what ``pocketkube up --egress`` passes on).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import random
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

log = logging.getLogger(__name__)


def parse_upstreams(values: list[str] | None) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for value in values or []:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if item.startswith("/") and os.path.exists(item):
                with open(item) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 2 and parts[0] == "nameserver":
                            out.append((str(ipaddress.ip_address(parts[1].split("%")[0])), 53))
                continue
            host, port = item, 53
            if item.startswith("["):
                host, _, rest = item[1:].partition("]")
                if rest.startswith(":"):
                    port = int(rest[1:])
            elif item.count(":") == 1:
                host, p = item.split(":")
                port = int(p)
            ipaddress.ip_address(host)   # upstreams are addresses, never names to resolve
            if not 0 < port < 65536:
                raise ValueError(f"bad port in upstream {item!r}")
            out.append((host, port))
    return out


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("upstream closed the connection")
        buf += chunk
    return buf


class Forwarder:
    """Send queries upstream on a thread pool (see the module docstring)."""

    def __init__(self, upstreams: list[tuple[str, int]], timeout: float = 2.0, max_pending: int = 256,
                 workers: int = 8):
        if not upstreams:
            raise ValueError("no upstream resolvers")
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dns-forward")
        self._pending = 0
        self._lock = threading.Lock()
        self.forwarded = 0
        self.failed = 0

    def exchange(self, data: bytes, tcp: bool = False) -> bytes | None:
        """The upstream answer (with the client's ID), or None if every upstream failed."""
        per = self.timeout / len(self.upstreams)
        for host, port in self.upstreams:
            qid = random.getrandbits(16)
            out = struct.pack("!H", qid) + data[2:]
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                if tcp:
                    with socket.socket(family, socket.SOCK_STREAM) as s:
                        s.settimeout(per)
                        s.connect((host, port))
                        s.sendall(struct.pack("!H", len(out)) + out)
                        n = struct.unpack("!H", _recv_exact(s, 2))[0]
                        resp = _recv_exact(s, n)
                else:
                    with socket.socket(family, socket.SOCK_DGRAM) as s:
                        s.settimeout(per)
                        s.connect((host, port))
                        s.send(out)
                        while True:
                            resp = s.recv(65535)
                            if len(resp) >= 12 and resp[:2] == out[:2]:
                                break
            except (OSError, ConnectionError) as e:
                log.debug("upstream %s:%d: %s", host, port, e)
                continue
            self.forwarded += 1
            return data[:2] + resp[2:]
        self.failed += 1
        return None

    def submit(self, data: bytes, reply: Callable[[bytes | None], None], tcp: bool = False) -> bool:
        """Forward in the background; ``reply(answer or None)`` is called from a pool thread.

        False (nothing submitted) when too many queries are already in flight.
        """
        with self._lock:
            if self._pending >= self.max_pending:
                return False
            self._pending += 1

        def run() -> None:
            try:
                reply(self.exchange(data, tcp))
            except Exception:  # noqa: BLE001 - a reply callback must not kill the pool
                log.exception("forwarding failed")
            finally:
                with self._lock:
                    self._pending -= 1

        self._pool.submit(run)
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["Forwarder", "parse_upstreams"]
