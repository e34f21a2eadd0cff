"""SPDY/3.1 framing (apiserver/spdy.py), the tunnelled-WebSocket framing and upgrade detection
(apiserver/rawupgrade.py), and the exec Status translation (apiserver/spdyrelay.py)."""
from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import pytest

from apiserver import spdy
from apiserver.rawupgrade import TUNNEL_SUBPROTOCOL, WebSocketStream, upgrade_kind, websocket_accept
from apiserver.spdyrelay import status_for_protocol

# Captured from stock kubectl: the first frame each sends after the 101.
# kubectl 1.27 `exec -i x -- cat`: SYN_STREAM 1 {streamtype: error}
KUBECTL_127_EXEC_SYN = bytes.fromhex(
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff")
# kubectl 1.30 `port-forward pod/x 38123:80`, first local connection: SYN_STREAM 1 {streamtype: error, port, requestid}
KUBECTL_130_PORTFORWARD_SYN = bytes.fromhex(
    "800300010000003d0000000100000000000078f9e3c6a7c202253a48f95b044aab4c16060c0c0c9c4590d8ca04a5624603703a2c29"
    "4a4dcc851635aca9a08800000000ffff")


# ------------------------------------------------------------------ dictionary + header blocks
def test_dictionary_is_the_spdy3_one():
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    # the SPDY/3 header dictionary as a file of its own, kept beside the kubectl contract
    ref = Path(__file__).resolve().parents[2] / "docs" / "reference" / "spdy_dict.bin"
    assert ref.read_bytes() == spdy.DICTIONARY


def test_captured_kubectl_syn_streams_parse():
    (f,) = spdy.FrameParser().feed(KUBECTL_127_EXEC_SYN)
    assert isinstance(f, spdy.SynStream)
    assert (f.stream_id, f.associated_id, f.priority, f.flags) == (1, 0, 0, 0)
    assert f.headers == {"streamtype": ["error"]} and f.get("streamtype") == "error"
    (f,) = spdy.FrameParser().feed(KUBECTL_130_PORTFORWARD_SYN)
    assert f.headers == {"port": ["80"], "requestid": ["0"], "streamtype": ["error"]}


def test_captured_frame_fed_byte_by_byte():
    p = spdy.FrameParser()
    frames = []
    for b in KUBECTL_130_PORTFORWARD_SYN:
        frames += p.feed(bytes([b]))
    assert len(frames) == 1 and frames[0].get("port") == "80"


def test_header_block_encoding_lowercases_and_joins_values():
    block = spdy.encode_header_block({"StreamType": "data", "x": ["a", "b"]})
    assert block == (struct.pack(">I", 2) + struct.pack(">I", 10) + b"streamtype" + struct.pack(">I", 4) + b"data"
                     + struct.pack(">I", 1) + b"x" + struct.pack(">I", 3) + b"a\0b")
    assert spdy.decode_header_block(block) == {"streamtype": ["data"], "x": ["a", "b"]}
    assert spdy.decode_header_block(struct.pack(">I", 0)) == {}


def test_header_compression_uses_the_dictionary_and_one_context_per_direction():
    c = spdy.HeaderCompressor()
    first = c.compress({"streamtype": "stdout"})
    # zlib header with FDICT set, then the dictionary's adler32, as kubectl's Go zlib expects
    assert first[0] == 0x78 and first[1] & 0x20 and first[2:6] == bytes.fromhex("e3c6a7c2")
    assert first.endswith(b"\x00\x00\xff\xff")  # sync flush: the block is complete on its own
    second = c.compress({"streamtype": "stdout"})
    assert second[:2] != b"\x78\xbb" and len(second) < len(first)  # continues the stream, uses its history
    d = spdy.HeaderDecompressor()
    assert d.decompress(first) == {"streamtype": ["stdout"]}
    assert d.decompress(second) == {"streamtype": ["stdout"]}
    # the second block alone means nothing to a fresh context
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderDecompressor().decompress(second)


def test_blocks_from_a_go_style_compressor_decode():
    # Go's spdy framer: zlib.NewWriterLevelDict(BestCompression, dictionary), Flush() per block
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=spdy.DICTIONARY)
    d = spdy.HeaderDecompressor()
    for h in ({"streamtype": "error", "port": "80", "requestid": "0"}, {"streamtype": "data", "port": "80",
                                                                         "requestid": "0"}):
        wire = z.compress(spdy.encode_header_block(h)) + z.flush(zlib.Z_SYNC_FLUSH)
        assert d.decompress(wire) == {k: [v] for k, v in h.items()}


def test_decompression_without_the_dictionary_fails():
    block = spdy.HeaderCompressor().compress({"a": "b"})
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(block)


# ------------------------------------------------------------------ frames
ALL_FRAMES = [
    spdy.SynStream(1, {"streamtype": ["error"]}),
    spdy.SynStream(3, {"streamtype": ["data"], "port": ["8080"], "requestid": ["7"]}, flags=spdy.FLAG_FIN,
                   associated_id=1, priority=5, slot=2),
    spdy.SynReply(1),
    spdy.SynReply(3, {"x": ["1", "2"]}, flags=spdy.FLAG_FIN),
    spdy.HeadersFrame(5, {"k": ["v"]}),
    spdy.DataFrame(1, b"hello"),
    spdy.DataFrame(3, b"", spdy.FLAG_FIN),
    spdy.DataFrame(0x7FFFFFFF, bytes(range(256)) * 300),
    spdy.RstStream(3, spdy.CANCEL),
    spdy.Settings([(0, 4, 100), (1, 7, 65536)]),
    spdy.Ping(2),
    spdy.GoAway(5, spdy.GOAWAY_OK),
    spdy.WindowUpdate(0, 65536),
    spdy.UnknownControl(42, b"xyz", 3),
]


def test_round_trip_every_frame_type_in_one_session():
    c = spdy.HeaderCompressor()
    wire = b"".join(spdy.encode(f, c) for f in ALL_FRAMES)
    assert spdy.FrameParser().feed(wire) == ALL_FRAMES
    # and in awkward chunks
    p = spdy.FrameParser()
    got = []
    for i in range(0, len(wire), 7):
        got += p.feed(wire[i:i + 7])
    assert got == ALL_FRAMES


def test_wire_layout_of_simple_frames():
    assert spdy.encode(spdy.DataFrame(3, b"ab", spdy.FLAG_FIN)) == bytes.fromhex("00000003 01000002 6162")
    assert spdy.encode(spdy.GoAway(5)) == bytes.fromhex("80030007 00000008 00000005 00000000")
    assert spdy.encode(spdy.Ping(1)) == bytes.fromhex("80030006 00000004 00000001")
    assert spdy.encode(spdy.RstStream(1, 5)) == bytes.fromhex("80030003 00000008 00000001 00000005")
    syn_reply = spdy.encode(spdy.SynReply(1), spdy.HeaderCompressor())
    assert syn_reply[:4] == bytes.fromhex("80030002") and syn_reply[8:12] == bytes.fromhex("00000001")


def test_headers_need_a_compressor():
    with pytest.raises(ValueError):
        spdy.encode(spdy.SynReply(1))


@pytest.mark.parametrize("wire,why", [
    (bytes.fromhex("80020001 0000000a 00000001 00000000 0000"), "version 2"),
    (bytes.fromhex("80030007 00000002 0000"), "truncated"),
    (bytes.fromhex("80030001 00000010 00000001 00000000 0000") + b"notzlib!", "decompress"),
])
def test_protocol_errors(wire, why):
    with pytest.raises(spdy.ProtocolError, match=why):
        spdy.FrameParser().feed(wire)


def test_oversized_frames_are_refused_before_buffering():
    p = spdy.FrameParser(max_length=1024)
    with pytest.raises(spdy.ProtocolError, match="over the limit"):
        p.feed(struct.pack(">II", 1, 4096))


def test_header_block_errors():
    with pytest.raises(spdy.ProtocolError, match="duplicate"):
        spdy.decode_header_block(spdy.encode_header_block({"a": "1"})[:4].replace(b"\0\0\0\1", b"\0\0\0\2")
                                 + spdy.encode_header_block({"a": "1"})[4:] * 2)
    with pytest.raises(spdy.ProtocolError, match="truncated"):
        spdy.decode_header_block(spdy.encode_header_block({"abc": "def"})[:-2])


# ------------------------------------------------------------------ exec Status per protocol
def test_status_for_protocol():
    ok = b'{"metadata":{},"status":"Success"}'
    bad = b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: 3"}'
    assert status_for_protocol(bad, "v4.channel.k8s.io") == bad
    assert status_for_protocol(ok, "v4.channel.k8s.io") == ok
    assert status_for_protocol(ok, "v2.channel.k8s.io") == b""
    assert status_for_protocol(bad, "v3.channel.k8s.io") == b"command terminated with non-zero exit code: 3"
    assert status_for_protocol(None, "v4.channel.k8s.io") == b""


# ------------------------------------------------------------------ raw upgrade detection + WebSocket framing
def test_upgrade_kind():
    h = [(b"connection", b"Upgrade"), (b"upgrade", b"SPDY/3.1")]
    assert upgrade_kind(h) == "spdy"
    assert upgrade_kind([(b"connection", b"keep-alive, Upgrade"), (b"upgrade", b"spdy/3.1")]) == "spdy"
    assert upgrade_kind([(b"upgrade", b"SPDY/3.1")]) is None  # no Connection: Upgrade
    ws = [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")]
    assert upgrade_kind(ws + [(b"sec-websocket-protocol", TUNNEL_SUBPROTOCOL.encode())]) == "websocket"
    assert upgrade_kind(ws + [(b"sec-websocket-protocol", b"v5.channel.k8s.io")]) is None  # uvicorn's own path
    assert upgrade_kind(ws) is None


def test_websocket_accept_key():
    # RFC 6455 section 1.3
    assert websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class FakeConn:
    def __init__(self, chunks: list[bytes]):
        self.chunks = list(chunks)
        self.written = bytearray()
        self.closed = False

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes([(0x80 if fin else 0) | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([(0x80 if fin else 0) | opcode, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([(0x80 if fin else 0) | opcode, 0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_websocket_stream_reads_binary_payloads_answers_pings_and_closes():
    big = bytes(range(256)) * 400  # 102400 bytes: the 64-bit length form
    wire = (client_frame(0x2, b"spdy-bytes") + client_frame(0x9, b"p") + client_frame(0x2, b"a" * 300, fin=False)
            + client_frame(0x0, b"b") + client_frame(0x2, big) + client_frame(0x8, struct.pack(">H", 1000)))

    async def go():
        conn = FakeConn([wire[:5], wire[5:40], wire[40:]])
        ws = WebSocketStream(conn)
        got = []
        while True:
            data = await ws.read()
            if not data:
                break
            got.append(data)
        ws.write(b"x" * 200)
        return got, bytes(conn.written)

    got, written = asyncio.run(go())
    assert got == [b"spdy-bytes", b"a" * 300, b"b", big]
    assert written.startswith(bytes([0x8A, 1]) + b"p")  # pong, unmasked
    assert bytes([0x88, 2]) + struct.pack(">H", 1000) in written  # close echoed
    assert not written.endswith(b"x" * 200)  # nothing is sent after the close


def test_websocket_stream_writes_unmasked_binary_frames():
    conn = FakeConn([])
    ws = WebSocketStream(conn)
    ws.write(b"hi")
    ws.write(b"z" * 200)
    ws.write(b"q" * 70000)
    w = bytes(conn.written)
    assert w[:4] == bytes([0x82, 2]) + b"hi"
    assert w[4:8] == bytes([0x82, 126]) + struct.pack(">H", 200)
    rest = w[8 + 200:]
    assert rest[:10] == bytes([0x82, 127]) + struct.pack(">Q", 70000) and len(rest) == 10 + 70000


def test_websocket_stream_refuses_unmasked_client_frames():
    async def go():
        conn = FakeConn([bytes([0x82, 2]) + b"hi"])
        ws = WebSocketStream(conn)
        return await ws.read(), bytes(conn.written)

    data, written = asyncio.run(go())
    assert data == b"" and written[:4] == bytes([0x88, 16]) + struct.pack(">H", 1002)
