"""SPDY/3.1 framing: frames to bytes and back, and the zlib header-block codec. No I/O.

Why SPDY at all: kubectl 1.27-1.29 run `exec` over SPDY/3.1 only, and kubectl
up to 1.30 `port-forward` too (1.31+ carry the same SPDY frames inside binary
WebSocket messages). The protocol is a small multiplexer: a client opens
streams with SYN_STREAM (headers such as ``streamtype: stdout`` or ``port:
80``), the server answers each with SYN_REPLY, both sides send DATA frames and
half-close a stream with the FIN flag; RST_STREAM aborts a stream, PING is
echoed, GOAWAY ends the session (draft-mbelshe-httpbis-spdy-00, "SPDY Protocol
- Draft 3.1").

Wire format. A control frame is ``1 | version(15) | type(16) | flags(8) |
length(24) | payload``; a data frame is ``0 | stream-id(31) | flags(8) |
length(24) | data``. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are
``count(32)`` then ``len(32) name len(32) value`` pairs, names lowercase,
several values of one name joined by NUL; they are zlib-compressed with one
compression context per direction for the whole session (so a decoder must see
every block in order), primed with the 1423-byte SPDY/3 dictionary, each block
ending in a sync flush. The dictionary is built below from its words and
checked against the adler32 that kubectl's zlib header names (0xe3c6a7c2).

Flow control (SPDY/3.1 WINDOW_UPDATE) is parsed and otherwise ignored: the Go
implementation kubectl uses (moby/spdystream) neither sends nor honours
windows, and SETTINGS carry nothing a relay needs.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9

# GOAWAY status codes
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

MAX_FRAME_LENGTH = (1 << 24) - 1
MAX_HEADER_BLOCK = 256 * 1024  # decompressed; kubectl's are a few dozen bytes

_DICT_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age "
    "allow authorization cache-control connection content-base content-encoding content-language content-length "
    "content-location content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK"] + "version HTTP/1.1 url public set-cookie keep-alive origin".split()
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICT_WORDS) + _DICT_TAIL.encode()
DICTIONARY_ADLER32 = 0xE3C6A7C2
assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == DICTIONARY_ADLER32, "SPDY/3 dictionary is wrong"

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3: the session must end (GOAWAY PROTOCOL_ERROR)."""


# ------------------------------------------------------------------ frames
@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0
    associated_id: int = 0
    priority: int = 0
    slot: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def get(self, name: str, default: str | None = None) -> str | None:
        return first(self.headers, name, default)


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int
    flags: int = 0


@dataclass
class Settings:
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # (flags, id, value)
    flags: int = 0


@dataclass
class Ping:
    id: int
    flags: int = 0


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK
    flags: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int
    flags: int = 0


@dataclass
class UnknownControl:
    """A control frame of a type SPDY/3 does not define: the spec says to ignore it."""

    type: int
    payload: bytes
    flags: int = 0


Frame = (DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate
         | UnknownControl)


def first(headers: Headers, name: str, default: str | None = None) -> str | None:
    values = headers.get(name.lower())
    return values[0] if values else default


# ------------------------------------------------------------ header blocks
def encode_header_block(headers: Headers | dict[str, str]) -> bytes:
    """The uncompressed name/value block: names lowercased, several values NUL-joined."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n = name.lower().encode()
        v = ("\0".join(value) if isinstance(value, (list, tuple)) else str(value)).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        headers: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n]
            pos += 4 + n
            (m,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + m]
            pos += 4 + m
            if len(name) != n or len(value) != m or not name:
                raise ProtocolError("truncated SPDY header block")
            key = name.decode("latin-1")
            if key in headers:
                raise ProtocolError(f"duplicate header {key!r} in a SPDY header block")
            headers[key] = value.decode("latin-1").split("\0")
    except struct.error:
        raise ProtocolError("truncated SPDY header block") from None
    if pos != len(block):
        raise ProtocolError("trailing bytes after a SPDY header block")
    return headers


class HeaderCompressor:
    """The sending side's zlib context: one per session, every block sync-flushed."""

    def __init__(self, level: int = zlib.Z_DEFAULT_COMPRESSION):
        self._z = zlib.compressobj(level, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)

    def compress(self, headers: Headers | dict[str, str]) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The receiving side's zlib context: one per session, blocks fed in the order they arrive."""

    def __init__(self):
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._z.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise ProtocolError(f"SPDY header block does not decompress: {e}") from None
        if self._z.unconsumed_tail:
            raise ProtocolError("SPDY header block is too large")
        return decode_header_block(block)


# ------------------------------------------------------------------ encoding
def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_LENGTH:
        raise ValueError("SPDY frame too long")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def encode(frame: Frame, compressor: HeaderCompressor | None = None) -> bytes:
    """One frame as bytes. Frames with headers need the session's compressor."""
    if isinstance(frame, DataFrame):
        if len(frame.data) > MAX_FRAME_LENGTH:
            raise ValueError("SPDY data frame too long")
        return struct.pack(">II", frame.stream_id & 0x7FFFFFFF, (frame.flags << 24) | len(frame.data)) + frame.data
    if isinstance(frame, SynStream):
        head = struct.pack(">IIBB", frame.stream_id & 0x7FFFFFFF, frame.associated_id & 0x7FFFFFFF,
                           (frame.priority & 7) << 5, frame.slot)
        return _control(SYN_STREAM, frame.flags, head + _need(compressor).compress(frame.headers))
    if isinstance(frame, SynReply):
        return _control(SYN_REPLY, frame.flags,
                        struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + _need(compressor).compress(frame.headers))
    if isinstance(frame, HeadersFrame):
        return _control(HEADERS, frame.flags,
                        struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + _need(compressor).compress(frame.headers))
    if isinstance(frame, RstStream):
        return _control(RST_STREAM, frame.flags, struct.pack(">II", frame.stream_id & 0x7FFFFFFF, frame.status))
    if isinstance(frame, Settings):
        body = struct.pack(">I", len(frame.entries)) + b"".join(
            struct.pack(">II", (f << 24) | (i & 0xFFFFFF), v) for f, i, v in frame.entries)
        return _control(SETTINGS, frame.flags, body)
    if isinstance(frame, Ping):
        return _control(PING, frame.flags, struct.pack(">I", frame.id))
    if isinstance(frame, GoAway):
        return _control(GOAWAY, frame.flags, struct.pack(">II", frame.last_good_stream_id & 0x7FFFFFFF, frame.status))
    if isinstance(frame, WindowUpdate):
        return _control(WINDOW_UPDATE, frame.flags,
                        struct.pack(">II", frame.stream_id & 0x7FFFFFFF, frame.delta & 0x7FFFFFFF))
    if isinstance(frame, UnknownControl):
        return _control(frame.type, frame.flags, frame.payload)
    raise TypeError(f"not a SPDY frame: {frame!r}")


def _need(compressor: HeaderCompressor | None) -> HeaderCompressor:
    if compressor is None:
        raise ValueError("frames with headers need the session's HeaderCompressor")
    return compressor


# ------------------------------------------------------------------ decoding
class FrameParser:
    """Incremental: feed bytes as they arrive, get the complete frames back, in order."""

    def __init__(self, decompressor: HeaderDecompressor | None = None, max_length: int = MAX_FRAME_LENGTH):
        self.decompressor = decompressor or HeaderDecompressor()
        self.max_length = max_length
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf, 0)
            length = flags_len & 0xFFFFFF
            if length > self.max_length:
                raise ProtocolError(f"SPDY frame of {length} bytes is over the limit of {self.max_length}")
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            frames.append(self._frame(word, flags_len >> 24, payload))
        return frames

    def _frame(self, word: int, flags: int, payload: bytes) -> Frame:
        if not word & 0x80000000:
            return DataFrame(word & 0x7FFFFFFF, payload, flags)
        version, ftype = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported (only 3)")
        try:
            if ftype == SYN_STREAM:
                sid, assoc, pri, slot = struct.unpack_from(">IIBB", payload, 0)
                return SynStream(sid & 0x7FFFFFFF, self.decompressor.decompress(payload[10:]), flags,
                                 assoc & 0x7FFFFFFF, pri >> 5, slot)
            if ftype in (SYN_REPLY, HEADERS):
                (sid,) = struct.unpack_from(">I", payload, 0)
                cls = SynReply if ftype == SYN_REPLY else HeadersFrame
                return cls(sid & 0x7FFFFFFF, self.decompressor.decompress(payload[4:]), flags)
            if ftype == RST_STREAM:
                sid, status = struct.unpack(">II", payload)
                return RstStream(sid & 0x7FFFFFFF, status, flags)
            if ftype == SETTINGS:
                (count,) = struct.unpack_from(">I", payload, 0)
                if len(payload) != 4 + 8 * count:
                    raise ProtocolError("bad SPDY SETTINGS frame length")
                entries = []
                for i in range(count):
                    fid, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                    entries.append((fid >> 24, fid & 0xFFFFFF, value))
                return Settings(entries, flags)
            if ftype == PING:
                (pid,) = struct.unpack(">I", payload)
                return Ping(pid, flags)
            if ftype == GOAWAY:
                # SPDY/3 has a status; be lenient with a 4-byte (SPDY/2 style) one
                if len(payload) == 4:
                    return GoAway(struct.unpack(">I", payload)[0] & 0x7FFFFFFF, GOAWAY_OK, flags)
                last, status = struct.unpack(">II", payload)
                return GoAway(last & 0x7FFFFFFF, status, flags)
            if ftype == WINDOW_UPDATE:
                sid, delta = struct.unpack(">II", payload)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF, flags)
        except struct.error:
            raise ProtocolError(f"truncated SPDY control frame (type {ftype})") from None
        return UnknownControl(ftype, payload, flags)
