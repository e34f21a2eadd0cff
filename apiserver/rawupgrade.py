"""The raw-socket path: protocol upgrades that uvicorn cannot hand to an ASGI app.

ASGI knows two kinds of connection, HTTP and WebSocket, and uvicorn passes a
socket on after a 101 only for WebSocket. kubectl needs two more:

* ``Upgrade: SPDY/3.1`` (exec from kubectl 1.27-1.29, port-forward up to 1.30):
  a POST answered with 101, after which the socket carries SPDY frames;
* a WebSocket offering the subprotocol ``SPDY/3.1+portforward.k8s.io``
  (port-forward from 1.31): SPDY frames inside binary WebSocket messages.
  uvicorn's WebSocket handshake refuses that offer with a 400 before any app
  sees it ("/" is not a token character), so it cannot take the ASGI route.

How: ``RawUpgradeProtocol`` is uvicorn's httptools protocol with three small
changes, and the server runs with it (``uvicorn.Config(http=...)``, see
main.py). A request that is one of the two upgrades above is run through the
ASGI app as an ordinary ``http`` request, so routing, the bearer-token check
(apiserver/app.py's App) and every Kubernetes-style error answer are the
same code as for any other request; the only difference is a
``scope["extensions"]["pocketkube.raw_upgrade"]`` entry, a ``Takeover``. A
handler that decides to accept calls ``await takeover.accept(head)``: the 101
head is written, the transport is switched to a ``RawConn`` (a small
reader/writer protocol), uvicorn's request cycle is marked finished so it
writes nothing more, and the handler keeps running the session on the socket
until it returns ``TAKEN``. A handler that refuses simply returns a normal
response (a Status), after which the connection closes. Bytes the client sent
after the upgrade request but before the takeover are kept and handed over.

Why a protocol class rather than a TCP front that peeks at requests: TLS
(``--tls-cert-file``) keeps working without a second TLS stack, since the
protocol sits above asyncio's SSL transport; there is no extra hop or copy for
normal traffic; and the listening sockets stay uvicorn's (graceful shutdown
calls ``RawConn.shutdown``). The cost: it depends on the httptools protocol's
internals (``on_headers_complete``, ``data_received``, the cycle's
``response_started``/``response_complete``), pinned by tests; the h11
protocol is not patched, and without the takeover the handlers answer a
clear 400.

Also here: the server side of WebSocket framing for the tunnelled SPDY
(``WebSocketStream``), a byte stream over binary messages, with ping/pong and
the close handshake.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import struct

import httptools
from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

EXTENSION = "pocketkube.raw_upgrade"
SPDY_UPGRADE = "spdy/3.1"
TUNNEL_SUBPROTOCOL = "SPDY/3.1+portforward.k8s.io"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

READ_HIGH_WATER = 1 << 20  # pause reading the socket above this many buffered bytes
MAX_WS_FRAME = 16 * 1024 * 1024


def upgrade_kind(headers: list[tuple[bytes, bytes]]) -> str | None:
    """"spdy" or "websocket" (tunnelled SPDY) when a request needs the raw path, else None."""
    connection = upgrade = b""
    protocols: list[str] = []
    for name, value in headers:
        if name == b"connection":
            connection += b"," + value.lower()
        elif name == b"upgrade":
            upgrade = value.strip().lower()
        elif name == b"sec-websocket-protocol":
            protocols += [p.strip() for p in value.decode("latin-1").split(",")]
    if b"upgrade" not in [t.strip() for t in connection.split(b",")]:
        return None
    if upgrade.decode("latin-1") == SPDY_UPGRADE:
        return "spdy"
    if upgrade == b"websocket" and TUNNEL_SUBPROTOCOL in protocols:
        return "websocket"
    return None


def websocket_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.strip().encode() + WS_GUID).digest()).decode()


def response_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _TakenResponse(Response):
    """What a handler returns once it has taken the socket: nothing more is sent."""

    def __init__(self):
        super().__init__(b"", status_code=101)

    async def __call__(self, scope, receive, send) -> None:
        return None


TAKEN = _TakenResponse()


class RawUpgradeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that lets the app take the socket for SPDY upgrades."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._raw_kind: str | None = None
        self._raw_buffer: bytearray | None = None

    def on_message_begin(self) -> None:
        self._raw_kind = None
        super().on_message_begin()

    def _should_upgrade(self) -> bool:
        # The tunnelled-SPDY WebSocket is run as an http request, not by uvicorn's WebSocket code.
        return self._raw_kind is None and super()._should_upgrade()

    def on_headers_complete(self) -> None:
        # Only upgrade requests (Connection: Upgrade + Upgrade:) are looked at: no cost for the rest.
        self._raw_kind = upgrade_kind(self.headers) if self.parser.should_upgrade() else None
        super().on_headers_complete()
        if self._raw_kind is not None and self.cycle is not None and self.cycle.scope is self.scope:
            # Never keep-alive after an upgrade request: the parser cannot go back to HTTP.
            self.cycle.keep_alive = False
            self.scope.setdefault("extensions", {})[EXTENSION] = Takeover(self, self.cycle, self._raw_kind)

    def data_received(self, data: bytes) -> None:
        if self._raw_buffer is not None:
            # After an upgrade request: bytes for the new protocol, kept until the app takes over.
            self._raw_buffer += data
            if len(self._raw_buffer) > READ_HIGH_WATER:
                self.transport.pause_reading()
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as e:
            if self._raw_kind is not None:
                self._raw_buffer = bytearray(data[e.args[0]:] if e.args else b"")
            elif self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()


class Takeover:
    """Handed to the app in the scope's extensions; ``accept`` writes the 101 and returns the socket."""

    def __init__(self, protocol: RawUpgradeProtocol, cycle, kind: str):
        self._protocol = protocol
        self._cycle = cycle
        self.kind = kind  # "spdy" or "websocket"
        self.taken = False

    async def accept(self, head: bytes) -> "RawConn":
        p, cycle = self._protocol, self._cycle
        if self.taken or cycle.response_started or cycle.disconnected or p.transport.is_closing():
            raise ConnectionError("the client went away before the upgrade")
        self.taken = True
        # uvicorn's cycle must neither write a response nor close the transport when the app returns.
        cycle.response_started = cycle.response_complete = True
        conn = RawConn(p.transport, p.connections)
        p.connections.discard(p)
        p.transport.set_protocol(conn)
        buffered = bytes(p._raw_buffer or b"")
        p._raw_buffer = None
        conn.transport.write(head)
        if buffered:
            conn.data_received(buffered)
        try:
            p.transport.resume_reading()
        except (RuntimeError, AttributeError):
            pass
        return conn


class RawConn(asyncio.Protocol):
    """The socket after a takeover: ``read()`` chunks (b"" at EOF), ``write``, ``drain``, ``close``."""

    def __init__(self, transport: asyncio.Transport, connections: set):
        self.transport = transport
        self._connections = connections
        connections.add(self)  # uvicorn's graceful shutdown calls shutdown() on these
        self._buf = bytearray()
        self._eof = False
        self._closed = False
        self._paused_reading = False
        self._readable = asyncio.Event()
        self._write_paused = False
        self._drained: asyncio.Future | None = None

    # protocol side
    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._readable.set()
        if len(self._buf) > READ_HIGH_WATER and not self._paused_reading:
            self._paused_reading = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._readable.set()
        return True  # keep the transport: we may still be writing

    def connection_lost(self, exc) -> None:
        self._eof = self._closed = True
        self._readable.set()
        self._connections.discard(self)
        self.resume_writing()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown."""
        self.close()

    # user side
    async def read(self) -> bytes:
        while not self._buf:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buf)
        self._buf.clear()
        if self._paused_reading and not self._closed:
            self._paused_reading = False
            self.transport.resume_reading()
        return data

    @property
    def closed(self) -> bool:
        return self._closed or self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class WebSocketStream:
    """Server side of RFC 6455 over a RawConn, as a byte stream of binary message payloads.

    kubectl's tunnelling connection writes every chunk of its SPDY byte stream
    as one binary message and reads messages back-to-back, so message
    boundaries carry no meaning here. Pings are answered; a close frame ends
    the stream (read returns b"") and is echoed.
    """

    def __init__(self, conn: RawConn):
        self.conn = conn
        self._buf = bytearray()
        self._eof = False
        self._close_sent = False

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        n = len(payload)
        if n < 126:
            head = struct.pack(">BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
        return head + payload

    def write(self, data: bytes) -> None:
        if data and not self._close_sent:
            self.conn.write(self._frame(0x2, data))

    async def drain(self) -> None:
        await self.conn.drain()

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        if not self._close_sent:
            self._close_sent = True
            self.conn.write(self._frame(0x8, struct.pack(">H", code) + reason.encode()[:120]))

    def _next_frame(self) -> tuple[int, bytes] | None:
        b = self._buf
        if len(b) < 2:
            return None
        opcode, masked, n = b[0] & 0x0F, b[1] & 0x80, b[1] & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            (n,) = struct.unpack_from(">H", b, 2)
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            (n,) = struct.unpack_from(">Q", b, 2)
            pos = 10
        if not masked:
            raise ValueError("client frames must be masked")
        if n > MAX_WS_FRAME:
            raise OverflowError
        if len(b) < pos + 4 + n:
            return None
        mask = bytes(b[pos:pos + 4])
        payload = bytes(b[pos + 4:pos + 4 + n])
        del b[:pos + 4 + n]
        if n:
            # XOR with the repeated mask, 8 bytes at a time via int arithmetic
            m = int.from_bytes((mask * ((n + 3) // 4))[:n], "big")
            payload = (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")
        return opcode, payload

    async def read(self) -> bytes:
        while not self._eof:
            try:
                frame = self._next_frame()
            except ValueError:
                self.send_close(1002, "protocol error")
                self._eof = True
                break
            except OverflowError:
                self.send_close(1009, "message too big")
                self._eof = True
                break
            if frame is None:
                data = await self.conn.read()
                if not data:
                    self._eof = True
                    break
                self._buf += data
                continue
            opcode, payload = frame
            if opcode in (0x0, 0x1, 0x2):
                if payload:
                    return payload
            elif opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1000
                self.send_close(code if code in (1000, 1001) or 3000 <= code < 5000 else 1000)
                self._eof = True
            elif opcode == 0x9:
                if not self._close_sent:
                    self.conn.write(self._frame(0xA, payload))
        return b""

    def close(self) -> None:
        self.send_close(1000)
        self.conn.close()
