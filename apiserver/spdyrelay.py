"""SPDY sessions of the node relay: kubectl's exec and port-forward streams to the kubelet's WebSockets.

The API server speaks SPDY/3.1 to old kubectl (exec 1.27-1.29, port-forward
up to 1.30, and, tunnelled in WebSocket messages, port-forward 1.31+) and the
kubelet's WebSocket protocols upstream, translating stream by stream. By the
time a session here starts, noderelay has done every check (pod, container,
node, phase) and, for exec, already opened the kubelet connection, so
failures before the 101 are ordinary Status answers; here only the socket is
left.

exec (``ExecSession``): the client opens one SYN_STREAM per stream, the
header ``streamtype`` naming it (error, stdin, stdout, stderr, resize); each
is answered with SYN_REPLY. Once every stream the query asked for exists, the
kubelet's output (channel 1 stdout, 2 stderr, 3 the final Status) goes to its
stream; stdin data goes to channel 0 and the stdin FIN becomes the v5 close
message ``[255, 0]``; resize data goes to channel 4. When the kubelet closes,
stdout and stderr get FIN, the error stream gets the Status (v4: the JSON,
which kubectl turns into ``command terminated with exit code N``; v1-v3: the
message text, nothing on success) and FIN, then GOAWAY; the socket closes when
the client hangs up (or after a grace period).

port-forward (``PortForwardSession``): for each local connection kubectl
opens an error stream and a data stream carrying ``port`` and ``requestid``;
a data stream starts one kubelet WebSocket ``/portForward/{ns}/{pod}?ports=P``
(channel 0 data, 1 errors, each starting with the port as 2 bytes little
endian, which are dropped here). Data frames go to channel 0 and the data
stream's FIN is sent as an empty channel-0 message (the kubelet half-closes
the pod connection); what the kubelet sends on channel 0 becomes data frames;
when it closes, the data stream gets FIN and the error stream the error text,
if any, and FIN. kubectl prints that text as ``an error occurred forwarding
L -> P: ...``. The session lasts until the client hangs up or sends GOAWAY.

No flow control is enforced either way (see apiserver/spdy.py); the only
buffering is one bounded queue per forwarded connection.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Protocol

import orjson

from . import errors, spdy

log = logging.getLogger("pocketkube.apiserver.spdyrelay")

STREAM_CREATION_TIMEOUT = 30.0  # as Kubernetes' remotecommand server
LINGER = 10.0  # after GOAWAY, wait this long for the client to hang up
MAX_DATA_FRAME = 1 << 20
INBOX_FRAMES = 64


class ByteConn(Protocol):
    """A RawConn or a WebSocketStream (apiserver/rawupgrade.py)."""

    async def read(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...


class SpdyConn:
    """One SPDY/3.1 session, server side: frames in (PINGs answered here), frames out."""

    def __init__(self, conn: ByteConn):
        self.conn = conn
        self.parser = spdy.FrameParser()
        self.compressor = spdy.HeaderCompressor()
        self.last_client_stream = 0
        self.went_away = False

    def send(self, frame) -> None:
        self.conn.write(spdy.encode(frame, self.compressor))

    def reply(self, stream_id: int) -> None:
        self.send(spdy.SynReply(stream_id))

    async def data(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        for i in range(0, max(len(data), 1), MAX_DATA_FRAME):
            last = i + MAX_DATA_FRAME >= len(data)
            self.send(spdy.DataFrame(stream_id, data[i:i + MAX_DATA_FRAME], spdy.FLAG_FIN if fin and last else 0))
        await self.conn.drain()

    def fin(self, stream_id: int) -> None:
        self.send(spdy.DataFrame(stream_id, b"", spdy.FLAG_FIN))

    def goaway(self, status: int = spdy.GOAWAY_OK) -> None:
        if not self.went_away:
            self.went_away = True
            self.send(spdy.GoAway(self.last_client_stream, status))

    async def frames(self):
        """The client's frames until it hangs up, sends GOAWAY or breaks the protocol."""
        while True:
            chunk = await self.conn.read()
            if not chunk:
                return
            try:
                frames = self.parser.feed(chunk)
            except spdy.ProtocolError as e:
                log.warning("SPDY protocol error from the client: %s", e)
                self.goaway(spdy.GOAWAY_PROTOCOL_ERROR)
                return
            for f in frames:
                if isinstance(f, spdy.Ping):
                    self.send(f)  # echo
                    continue
                if isinstance(f, spdy.SynStream):
                    self.last_client_stream = max(self.last_client_stream, f.stream_id)
                if isinstance(f, spdy.GoAway):
                    return
                yield f


def _closed_errors():
    from websockets.exceptions import ConnectionClosed
    return (ConnectionClosed, OSError)


def status_for_protocol(status: bytes | None, protocol: str) -> bytes:
    """What goes on the SPDY error stream: v4/v5 the Status JSON; v1-v3 the failure message, if any."""
    if not status:
        return b""
    if protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
        return status
    try:
        st = orjson.loads(status)
    except orjson.JSONDecodeError:
        return status
    if not isinstance(st, dict) or st.get("status") == "Success":
        return b""
    return str(st.get("message") or "error executing command").encode()


class ExecSession:
    def __init__(self, conn: ByteConn, upstream, protocol: str, expected: set[str], where: str):
        self.s = SpdyConn(conn)
        self.conn = conn
        self.up = upstream  # a websockets client connection to the kubelet's /exec
        self.v5 = upstream.subprotocol == "v5.channel.k8s.io"
        self.protocol = protocol
        self.expected = expected
        self.where = where
        self.streams: dict[str, int] = {}
        self.kinds: dict[int, str] = {}
        self.ready = asyncio.Event()
        self.stdin_closed = False

    async def run(self) -> None:
        client = asyncio.create_task(self._from_client())
        kubelet = asyncio.create_task(self._from_kubelet())
        try:
            done, _ = await asyncio.wait({client, kubelet}, return_when=asyncio.FIRST_COMPLETED)
            if kubelet in done and client not in done:
                # Everything is sent; let the client read it and hang up (it does, at once).
                await asyncio.wait({client}, timeout=LINGER)
        finally:
            for t in (client, kubelet):
                t.cancel()
            await asyncio.gather(client, kubelet, return_exceptions=True)
            try:
                await self.up.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn.close()

    async def _to_kubelet(self, msg: bytes) -> None:
        try:
            await self.up.send(msg)
        except _closed_errors():
            pass  # the kubelet side is over; _from_kubelet finishes the session

    async def _close_stdin(self) -> None:
        if not self.stdin_closed:
            self.stdin_closed = True
            if self.v5:
                await self._to_kubelet(b"\xff\x00")

    async def _from_client(self) -> None:
        async for f in self.s.frames():
            if isinstance(f, spdy.SynStream):
                kind = f.get("streamtype") or ""
                self.s.reply(f.stream_id)
                if kind in self.streams:
                    log.debug("duplicate %s stream from the client", kind)
                    continue
                self.streams[kind] = f.stream_id
                self.kinds[f.stream_id] = kind
                if self.expected <= self.streams.keys():
                    self.ready.set()
                if f.fin and kind == "stdin":
                    await self._close_stdin()
            elif isinstance(f, spdy.DataFrame):
                kind = self.kinds.get(f.stream_id)
                if kind == "stdin":
                    if f.data and not self.stdin_closed:
                        await self._to_kubelet(b"\x00" + f.data)
                    if f.fin:
                        await self._close_stdin()
                elif kind == "resize" and f.data:
                    await self._to_kubelet(b"\x04" + f.data)
            elif isinstance(f, spdy.RstStream):
                if self.kinds.get(f.stream_id) == "stdin":
                    await self._close_stdin()

    async def _from_kubelet(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await asyncio.wait_for(self.ready.wait(), STREAM_CREATION_TIMEOUT)
        except TimeoutError:
            missing = ", ".join(sorted(self.expected - self.streams.keys()))
            err = errors.StatusError(500, "InternalError",
                                     f"timed out waiting for client to create streams ({missing})")
            return await self._finish(err.json())
        status: bytes | None = None
        lost = False
        try:
            async for msg in self.up:
                if isinstance(msg, str):
                    msg = msg.encode()
                if not msg:
                    continue
                ch, data = msg[0], msg[1:]
                if ch == 3:
                    status = (status or b"") + data
                    continue
                sid = self.streams.get({1: "stdout", 2: "stderr"}.get(ch, ""))
                if sid is not None and data:
                    await self.s.data(sid, data)
        except ConnectionClosed:
            lost = True
        if status is None and (lost or self.up.close_code not in (1000, 1001)):
            status = errors.unavailable(f"the connection to {self.where} was lost (close code "
                                        f"{self.up.close_code})").json()
        await self._finish(status)

    async def _finish(self, status: bytes | None) -> None:
        for kind in ("stdout", "stderr"):
            if kind in self.streams:
                self.s.fin(self.streams[kind])
        if "error" in self.streams:
            await self.s.data(self.streams["error"], status_for_protocol(status, self.protocol), fin=True)
        self.s.goaway()
        await self.conn.drain()


class _Pair:
    """One forwarded connection: kubectl's error and data streams for one request id."""

    def __init__(self):
        self.error_id: int | None = None
        self.data_id: int | None = None
        self.port = ""
        self.inbox: asyncio.Queue = asyncio.Queue(INBOX_FRAMES)
        self.task: asyncio.Task | None = None
        self.error = b""
        self.error_done = False
        self.client_done = False  # the client's FIN (or RST) on the data stream
        self.sender: asyncio.Task | None = None

    async def deliver(self, item: bytes | None) -> None:
        """Queue client data (None: its FIN) for the kubelet; dropped once nobody will send it."""
        if self.client_done or (self.task is not None and self.task.done()) or \
                (self.sender is not None and self.sender.done()):
            return
        if item is None:
            self.client_done = True
        await self.inbox.put(item)


OpenPort = Callable[[int], Awaitable[object]]


class PortForwardSession:
    def __init__(self, conn: ByteConn, open_port: OpenPort, where: str):
        self.s = SpdyConn(conn)
        self.conn = conn
        self.open_port = open_port  # port -> websockets connection to the kubelet's /portForward
        self.where = where
        self.pairs: dict[str, _Pair] = {}
        self.by_id: dict[int, tuple[_Pair, str]] = {}

    async def run(self) -> None:
        try:
            await self._from_client()
        finally:
            tasks = [p.task for p in self.pairs.values() if p.task is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.s.goaway()
            self.conn.close()

    async def _from_client(self) -> None:
        async for f in self.s.frames():
            if isinstance(f, spdy.SynStream):
                kind = f.get("streamtype") or ""
                if kind not in ("error", "data"):
                    self.s.send(spdy.RstStream(f.stream_id, spdy.PROTOCOL_ERROR))
                    continue
                self.s.reply(f.stream_id)
                # Clients without requestid pair an error stream with the data stream 2 ids later.
                rid = f.get("requestid")
                if rid is None:
                    rid = f"#{f.stream_id if kind == 'error' else f.stream_id - 2}"
                pair = self.pairs.setdefault(rid, _Pair())
                self.by_id[f.stream_id] = (pair, kind)
                if kind == "error":
                    pair.error_id = f.stream_id
                    if pair.error_done:
                        await self._report(pair)
                elif pair.data_id is None:
                    pair.data_id = f.stream_id
                    pair.port = f.get("port") or ""
                    pair.task = asyncio.create_task(self._forward(pair))
                if f.fin and kind == "data":
                    await pair.deliver(None)
            elif isinstance(f, spdy.DataFrame):
                pair, kind = self.by_id.get(f.stream_id, (None, ""))
                if pair is None or kind != "data" or pair.data_id != f.stream_id:
                    continue  # kubectl writes nothing on the error stream
                if f.data:
                    await pair.deliver(f.data)
                if f.fin:
                    await pair.deliver(None)
            elif isinstance(f, spdy.RstStream):
                pair, kind = self.by_id.get(f.stream_id, (None, ""))
                if pair is not None and kind == "data" and pair.task is not None:
                    pair.task.cancel()

    async def _report(self, pair: _Pair) -> None:
        """The error stream's content (maybe none) and its FIN, once per pair."""
        pair.error_done = True
        if pair.error_id is not None:
            await self.s.data(pair.error_id, pair.error, fin=True)
            pair.error_id = None

    async def _forward(self, pair: _Pair) -> None:
        from websockets.exceptions import ConnectionClosed

        up = None
        sender = None
        try:
            try:
                port = int(pair.port)
                if not 0 < port < 65536:
                    raise ValueError("port out of range")
            except ValueError as e:
                pair.error = f"unable to parse '{pair.port}' as a port: {e}".encode()
                return
            try:
                up = await self.open_port(port)
            except errors.StatusError as e:
                pair.error = e.message.encode()
                return
            sender = pair.sender = asyncio.create_task(self._send(pair, up))
            strip = {0: 2, 1: 2}  # the port, 2 bytes little endian, first on each channel
            lost = False
            try:
                async for msg in up:
                    if isinstance(msg, str):
                        msg = msg.encode()
                    if not msg:
                        continue
                    ch, data = msg[0], msg[1:]
                    n = strip.get(ch, 0)
                    if n:
                        cut = min(n, len(data))
                        data = data[cut:]
                        strip[ch] = n - cut
                    if ch == 0 and data:
                        await self.s.data(pair.data_id, data)
                    elif ch == 1:
                        pair.error += data
            except ConnectionClosed:
                lost = True
            if lost and not pair.error:
                pair.error = f"lost the connection to {self.where}".encode()
        finally:
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            if up is not None:
                try:
                    await up.close()
                except Exception:  # noqa: BLE001
                    pass
            if not self.conn_closed():
                try:
                    self.s.fin(pair.data_id)
                    await self._report(pair)
                except Exception:  # noqa: BLE001 - the client is gone
                    pass

    def conn_closed(self) -> bool:
        return bool(getattr(self.conn, "closed", False))

    async def _send(self, pair: _Pair, up) -> None:
        try:
            while True:
                item = await pair.inbox.get()
                if item is None:
                    await up.send(b"\x00")  # the client is done sending: the kubelet half-closes
                    return
                await up.send(b"\x00" + item)
        except _closed_errors():
            return
