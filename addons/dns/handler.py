"""The wire side: a DNS query's bytes in, the response's bytes out, through a cache of encoded answers.

Parsing, answering and encoding a query with dnslib costs on the order of
100 us, so a server that did it for every packet could not approach
10,000 queries/s in Python. ``DNSHandler`` keeps the *encoded* response of
every cacheable answer without its 2-byte ID, in two dicts per transport:

* by the query's raw bytes after the ID (``udp_cache``/``tcp_cache``,
  ``data[2:]``): the flags (RD, CD), the question exactly as sent (so a
  client's letter case is echoed) and the OPT record; the server loop looks
  this up before anything else and sends ``query ID + cached bytes``. Only
  queries whose OPT carries no options are stored this way: an EDNS cookie
  is random per client and would only fill the dict;
* by ``(qname, qtype, qclass, flags, EDNS, size limit, DO)`` (the same dicts,
  tuple keys), after a dnslib parse, which is what catches queries with
  EDNS options.

Responses are built with dnslib (``DNSRecord.reply``, ``RR``, ``EDNS0``);
only the ID is ever rewritten by hand. Every informer event that can change
an answer calls ``invalidate()``, which empties the caches and bumps a
generation number; an answer computed from the old state while that
happened is not stored (the generation is compared under the lock), so the
cache never holds an answer older than the last change. Forwarded answers
are never cached. The caches are bounded (``cache_size`` entries each; they
are emptied when full).

EDNS0 (RFC 6891): a query with an OPT record gets one back advertising
``max_udp`` (default 4096); the UDP size limit is the client's advertised
size (at least 512, at most ``max_udp``), or 512 without OPT. A response
over the limit keeps as many whole answer records as fit, drops the rest
and the additional section, and sets TC, so the client retries over TCP,
where nothing is truncated. An OPT of a version other than 0 gets BADVERS.
"""
from __future__ import annotations

import logging
import threading

from dnslib import CLASS, DNSHeader, DNSRecord, EDNS0, QTYPE, RCODE

from addons.dns.records import Answer, Resolver

log = logging.getLogger(__name__)

FORWARD = object()        # answer(): "send this query upstream"
T_OPT = QTYPE.OPT
C_IN, C_ANY = CLASS.IN, 255
MIN_UDP = 512


def _header_reply(data: bytes, rcode: int) -> bytes:
    """A header-only response to a query too broken to parse (ID and RD echoed)."""
    qid = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
    rd = (data[2] & 1) if len(data) >= 3 else 0
    return bytes(DNSRecord(DNSHeader(id=qid, qr=1, rd=rd, rcode=rcode)).pack())


def fit(reply: DNSRecord, limit: int) -> bytes:
    """``reply`` encoded within ``limit`` bytes: whole answer RRs that fit, TC set if any were cut."""
    wire = bytes(reply.pack())
    if len(wire) <= limit:
        return wire
    reply.header.tc = 1
    reply.ar = [rr for rr in reply.ar if rr.rtype == T_OPT]
    reply.auth = []
    answers = list(reply.rr)
    lo, hi = 0, len(answers)        # the largest prefix that fits: binary search
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        reply.rr = answers[:mid]
        w = bytes(reply.pack())
        if len(w) <= limit:
            best, lo = w, mid + 1
        else:
            hi = mid - 1
    if best is None:
        reply.rr, reply.ar = [], []
        best = bytes(reply.pack())
    return best


class DNSHandler:
    """Bytes in, bytes out (or ``FORWARD``); see the module docstring."""

    def __init__(self, resolver: Resolver, *, max_udp: int = 4096, cache_size: int = 100_000,
                 recursion_available: bool = False):
        self.resolver = resolver
        self.max_udp = max(MIN_UDP, min(int(max_udp), 65535))
        self.cache_size = cache_size
        self.recursion_available = recursion_available
        self.udp_cache: dict = {}
        self.tcp_cache: dict = {}
        self.generation = 0
        self._lock = threading.Lock()
        self.misses = 0

    def invalidate(self) -> None:
        """Drop every cached answer (the cluster changed)."""
        with self._lock:
            self.generation += 1
            self.udp_cache.clear()
            self.tcp_cache.clear()

    def lookup(self, data: bytes, tcp: bool = False) -> bytes | None:
        """The cached response for these query bytes (ID rewritten), or None."""
        r = (self.tcp_cache if tcp else self.udp_cache).get(data[2:])
        return None if r is None else data[:2] + r

    def respond(self, data: bytes, tcp: bool = False) -> bytes | object | None:
        """The response bytes, ``FORWARD``, or None (drop: not a query)."""
        r = self.lookup(data, tcp)
        return r if r is not None else self.answer(data, tcp)

    # ------------------------------------------------------------ the miss
    def answer(self, data: bytes, tcp: bool = False) -> bytes | object | None:
        if len(data) < 12:
            return None
        if data[2] & 0x80:
            return None                          # a response, not a query: never answer those
        try:
            req = DNSRecord.parse(data)
        except Exception:                        # noqa: BLE001 - any parse failure is FORMERR
            return _header_reply(data, RCODE.FORMERR)
        self.misses += 1
        h = req.header
        if h.opcode != 0:
            return self._error(req, RCODE.NOTIMP)
        if len(req.questions) != 1:
            return self._error(req, RCODE.FORMERR)
        opt = None
        for rr in req.ar:
            if rr.rtype == T_OPT:
                opt = rr
                break
        do = False
        if opt is not None:
            if (opt.ttl >> 16) & 0xFF != 0:
                return self._badvers(req)
            do = bool(opt.ttl & 0x8000)
            limit = max(MIN_UDP, min(opt.rclass, self.max_udp))
        else:
            limit = MIN_UDP
        if tcp:
            limit = 65535
        q = req.q
        qname = str(q.qname)
        key = (qname, q.qtype, q.qclass, h.rd, h.cd, opt is not None, limit, do)
        cache = self.tcp_cache if tcp else self.udp_cache
        hit = cache.get(key)
        if hit is not None:
            return data[:2] + hit
        gen = self.generation
        if q.qclass not in (C_IN, C_ANY):
            ans = Answer(RCODE.REFUSED, authoritative=False)
        else:
            ans = self.resolver.resolve(qname, q.qtype)
        if ans.forward:
            if self.recursion_available:
                return FORWARD
            ans = Answer(RCODE.SERVFAIL, authoritative=False)
        reply = req.reply(ra=int(self.recursion_available), aa=int(ans.authoritative))
        reply.header.cd = h.cd
        reply.header.ad = 0                      # nothing here is DNSSEC-validated
        reply.header.tc = 0
        reply.header.z = 0
        reply.header.rcode = ans.rcode
        for rr in ans.answers:
            reply.add_answer(rr)
        for rr in ans.authority:
            reply.add_auth(rr)
        for rr in ans.additional:
            reply.add_ar(rr)
        if opt is not None:
            reply.add_ar(EDNS0(udp_len=self.max_udp, flags="do" if do else ""))
        wire = fit(reply, limit)
        if ans.cacheable:
            body = wire[2:]
            with self._lock:
                if gen == self.generation:
                    if len(cache) >= self.cache_size:
                        cache.clear()
                    cache[key] = body
                    if opt is None or not opt.rdata:
                        cache[data[2:]] = body
        return wire

    def _error(self, req: DNSRecord, rcode: int) -> bytes:
        reply = DNSRecord(DNSHeader(id=req.header.id, qr=1, rd=req.header.rd, rcode=rcode,
                                    opcode=req.header.opcode), q=req.q if req.questions else None)
        if len(req.questions) != 1:
            reply.questions = []
        return bytes(reply.pack())

    def _badvers(self, req: DNSRecord) -> bytes:
        reply = req.reply(ra=int(self.recursion_available), aa=0)
        reply.header.ad = reply.header.tc = 0
        reply.add_ar(EDNS0(udp_len=self.max_udp, ext_rcode=1))   # BADVERS = 16 = ext 1, rcode 0
        return bytes(reply.pack())

    def servfail(self, data: bytes) -> bytes:
        """SERVFAIL for a query (a forward that failed)."""
        try:
            req = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001
            return _header_reply(data, RCODE.SERVFAIL)
        reply = req.reply(ra=int(self.recursion_available), aa=0)
        reply.header.ad = reply.header.tc = 0
        reply.header.rcode = RCODE.SERVFAIL
        if any(rr.rtype == T_OPT for rr in req.ar):
            reply.add_ar(EDNS0(udp_len=self.max_udp))
        return bytes(reply.pack())


__all__ = ["DNSHandler", "FORWARD", "fit"]
