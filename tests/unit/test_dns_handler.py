"""The wire handler: EDNS0, truncation, negative answers, the encoded-answer cache and its invalidation."""
from __future__ import annotations

import os
import socket
import threading

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, DNSRecord, EDNSOption

from addons.dns import view as dnsview
from addons.dns.forward import Forwarder, parse_upstreams
from addons.dns.handler import FORWARD, DNSHandler
from addons.dns.records import Resolver
from addons.dns.view import ClusterView


def service(name, ip="10.96.0.20", ns="default"):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}}


def headless(name, n):
    svc = {"metadata": {"name": name, "namespace": "default"},
           "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}
    ep = {"metadata": {"name": name, "namespace": "default"},
          "subsets": [{"addresses": [{"ip": f"10.244.{i // 250}.{i % 250 + 1}"} for i in range(n)],
                       "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}
    return svc, ep


@pytest.fixture
def view():
    big_svc, big_ep = headless("big", 200)
    return ClusterView.from_objects(services=[service("web"), big_svc], endpoints=[big_ep])


@pytest.fixture
def h(view):
    return DNSHandler(Resolver(view, "cluster.local", ttl=5))


def query(name, qtype="A", bufsize=None, do=False, opts=None, qid=None):
    q = DNSRecord.question(name, qtype)
    if qid is not None:
        q.header.id = qid
    if bufsize is not None:
        q.add_ar(EDNS0(udp_len=bufsize, flags="do" if do else "", opts=opts or []))
    return bytes(q.pack())


def parse(b):
    return DNSRecord.parse(b)


def test_answer_flags_and_id(h):
    data = query("web.default.svc.cluster.local", qid=4242)
    r = parse(h.respond(data))
    assert r.header.id == 4242 and r.header.qr and r.header.aa and r.header.rd and not r.header.ra
    assert not r.header.ad and not r.header.tc
    assert [str(rr.rdata) for rr in r.rr] == ["10.96.0.20"]


def test_cache_hit_rewrites_the_id_and_keeps_the_bytes(h):
    first = h.respond(query("web.default.svc.cluster.local", qid=1))
    misses = h.misses
    second = h.respond(query("web.default.svc.cluster.local", qid=2))
    assert h.misses == misses                       # served from the raw-bytes cache
    assert second[:2] == b"\x00\x02" and second[2:] == first[2:]
    assert parse(second).header.id == 2


def test_case_of_the_question_is_echoed(h):
    r = parse(h.respond(query("WeB.default.svc.cluster.local")))
    assert str(r.q.qname) == "WeB.default.svc.cluster.local." and str(r.rr[0].rname).startswith("WeB.")


def test_nxdomain_with_soa_and_nodata(h):
    r = parse(h.respond(query("nope.default.svc.cluster.local")))
    assert r.header.rcode == RCODE.NXDOMAIN and r.header.aa and r.auth[0].rtype == QTYPE.SOA and not r.rr
    r = parse(h.respond(query("web.default.svc.cluster.local", "AAAA")))
    assert r.header.rcode == RCODE.NOERROR and not r.rr and r.auth[0].rtype == QTYPE.SOA


def test_outside_without_upstream_is_servfail_at_once(h):
    r = parse(h.respond(query("example.com")))
    assert r.header.rcode == RCODE.SERVFAIL and not r.header.aa and not r.header.ra


def test_outside_with_upstream_is_forwarded_and_never_cached(view):
    h = DNSHandler(Resolver(view), recursion_available=True)
    assert h.respond(query("example.com")) is FORWARD
    assert h.respond(query("example.com")) is FORWARD
    r = parse(h.respond(query("web.default.svc.cluster.local")))
    assert r.header.ra


def test_no_edns_means_512_and_truncation(h):
    wire = h.respond(query("big.default.svc.cluster.local"))
    r = parse(wire)
    assert len(wire) <= 512 and r.header.tc and 0 < len(r.rr) < 200
    assert not r.ar


def test_edns_buffer_sizes_are_honoured(h):
    for size, complete in ((1232, False), (4096, True)):
        wire = h.respond(query("big.default.svc.cluster.local", bufsize=size))
        r = parse(wire)
        assert len(wire) <= size
        assert bool(r.header.tc) != complete, size
        assert len(r.rr) == 200 if complete else len(r.rr) < 200
        opt = [rr for rr in r.ar if rr.rtype == QTYPE.OPT]
        assert len(opt) == 1 and opt[0].rclass == 4096       # what we advertise


def test_tiny_edns_size_is_treated_as_512_and_server_max_caps(view):
    h = DNSHandler(Resolver(view), max_udp=1232)
    wire = h.respond(query("big.default.svc.cluster.local", bufsize=100))
    assert 100 < len(wire) <= 512
    wire = h.respond(query("big.default.svc.cluster.local", bufsize=4096))
    assert len(wire) <= 1232 and parse(wire).header.tc


def test_tcp_is_never_truncated(h):
    r = parse(h.respond(query("big.default.svc.cluster.local"), tcp=True))
    assert not r.header.tc and len(r.rr) == 200


def test_do_bit_is_echoed(h):
    r = parse(h.respond(query("web.default.svc.cluster.local", bufsize=1232, do=True)))
    opt = [rr for rr in r.ar if rr.rtype == QTYPE.OPT][0]
    assert opt.ttl & 0x8000


def test_edns_options_are_cached_by_meaning_not_bytes(h):
    a = h.respond(query("web.default.svc.cluster.local", bufsize=1232, opts=[EDNSOption(10, os.urandom(8))]))
    size = len(h.udp_cache)
    b = h.respond(query("web.default.svc.cluster.local", bufsize=1232, opts=[EDNSOption(10, os.urandom(8))]))
    assert len(h.udp_cache) == size                 # no new raw key per random cookie
    assert a[2:] == b[2:]


def test_badvers_formerr_notimp_and_responses_dropped(h):
    q = DNSRecord.question("web.default.svc.cluster.local")
    q.add_ar(EDNS0(version=1, udp_len=1232))
    r = parse(h.respond(bytes(q.pack())))
    opt = [rr for rr in r.ar if rr.rtype == QTYPE.OPT][0]
    assert (opt.ttl >> 24) == 1 and r.header.rcode == 0           # BADVERS (16)
    assert parse(h.respond(b"\x12\x34\x01\x00" + b"\xff" * 20)).header.rcode == RCODE.FORMERR
    q = DNSRecord.question("web.default.svc.cluster.local")
    q.header.opcode = 2
    assert parse(h.respond(bytes(q.pack()))).header.rcode == RCODE.NOTIMP
    resp = h.respond(query("web.default.svc.cluster.local"))
    assert h.respond(resp) is None                                  # never answer a response
    assert h.respond(b"\x00\x01") is None


def test_other_classes_are_refused(h):
    q = DNSRecord.question("version.bind", "TXT", "CH")
    assert parse(h.respond(bytes(q.pack()))).header.rcode == RCODE.REFUSED


def test_invalidation_on_change(view):
    h = DNSHandler(Resolver(view))
    informers = {k: FakeInformer() for k in ("svc", "ep", "pod")}
    dnsview.watch(informers["svc"], informers["ep"], informers["pod"], h.invalidate)
    q = query("web.default.svc.cluster.local")
    assert parse(h.respond(q)).rr[0].rdata.__str__() == "10.96.0.20"
    view.services.add(service("web", "10.96.0.33"))
    informers["svc"].update(service("web"), service("web", "10.96.0.33"))
    assert str(parse(h.respond(q)).rr[0].rdata) == "10.96.0.33"
    view.services.delete("default/web")
    informers["svc"].delete(service("web", "10.96.0.33"))
    assert parse(h.respond(q)).header.rcode == RCODE.NXDOMAIN
    # pod churn that changes nothing DNS serves keeps the cache
    gen = h.generation
    p = {"metadata": {"name": "p", "namespace": "default"}, "status": {"podIP": "10.244.1.2", "phase": "Running"}}
    p2 = {**p, "status": {**p["status"], "conditions": [{"type": "Ready", "status": "False"}]}}
    informers["pod"].update(p, p2)
    assert h.generation == gen
    informers["pod"].update(p2, {**p2, "status": {"podIP": "10.244.1.3", "phase": "Running"}})
    assert h.generation == gen + 1


def test_an_answer_computed_across_a_change_is_not_cached(view):
    h = DNSHandler(Resolver(view))
    real = h.resolver.resolve

    def racing(qname, qtype):
        ans = real(qname, qtype)
        h.invalidate()                   # the cluster changed while we were answering
        return ans

    h.resolver.resolve = racing
    h.respond(query("web.default.svc.cluster.local"))
    assert h.udp_cache == {}


def test_cache_is_bounded(view):
    h = DNSHandler(Resolver(view), cache_size=10)
    for i in range(50):
        h.respond(query(f"n{i}.default.svc.cluster.local"))
    assert len(h.udp_cache) <= 10


class FakeInformer:
    def __init__(self):
        self.handlers = []

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))

    def update(self, old, new):
        for _, u, _ in self.handlers:
            u and u(old, new)

    def delete(self, obj):
        for _, _, d in self.handlers:
            d and d(obj)


# ------------------------------------------------------------- forwarding
def test_parse_upstreams(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\noptions ndots:5\n")
    assert parse_upstreams(["1.1.1.1", "9.9.9.9:5353,[2001:db8::1]:54", str(conf)]) == [
        ("1.1.1.1", 53), ("9.9.9.9", 5353), ("2001:db8::1", 54), ("192.0.2.53", 53), ("fe80::1", 53)]
    with pytest.raises(ValueError):
        parse_upstreams(["dns.google"])


def test_forwarder_relays_with_the_client_id_and_fails_over():
    """A stand-in upstream on loopback; the first upstream is a closed port."""
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.bind(("127.0.0.1", 0))
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()

    def serve():
        data, addr = up.recvfrom(4096)
        req = DNSRecord.parse(data)
        rep = req.reply()
        rep.add_answer(*RR.fromZone("example.com. 60 IN A 192.0.2.1"))
        up.sendto(rep.pack(), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    fwd = Forwarder([("127.0.0.1", dead_port), ("127.0.0.1", up.getsockname()[1])], timeout=2.0)
    try:
        out = fwd.exchange(query("example.com", qid=777))
        r = parse(out)
        assert r.header.id == 777 and str(r.rr[0].rdata) == "192.0.2.1"
    finally:
        fwd.close()
        up.close()


def test_forwarder_gives_none_when_nobody_answers():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    fwd = Forwarder([silent.getsockname()], timeout=0.3)
    try:
        got = []
        done = threading.Event()
        assert fwd.submit(query("example.com"), lambda r: (got.append(r), done.set()))
        assert done.wait(3) and got == [None]
    finally:
        fwd.close()
        silent.close()
