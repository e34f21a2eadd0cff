"""Cluster DNS answers from a fake cache (plain Stores filled by hand): every record kind, no sockets."""
from __future__ import annotations

import pytest
from dnslib import QTYPE, RCODE

from addons.dns.records import Resolver, dashed, undash_v4
from addons.dns.view import ClusterView

D = "cluster.local"


def svc(name, ns="default", cluster_ip="10.96.0.20", ports=None, **spec):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
            "spec": {"clusterIP": cluster_ip, "ports": ports if ports is not None else
                     [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}}


def eps(name, addresses, ns="default", ports=None, not_ready=()):
    subset = {"addresses": addresses, "ports": ports if ports is not None else
              [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}, "subsets": [subset]}


def pod(name, ip, ns="default"):
    return {"metadata": {"name": name, "namespace": ns}, "status": {"phase": "Running", "podIP": ip}}


@pytest.fixture
def view():
    return ClusterView.from_objects(
        services=[svc("web"), svc("db", cluster_ip="None",
                                  ports=[{"name": "pg", "port": 5432, "protocol": "TCP"},
                                         {"port": 9000, "protocol": "TCP"}]),
                  svc("ext", cluster_ip="", type="ExternalName", externalName="example.org", ports=[]),
                  svc("empty", cluster_ip="None"),
                  svc("dns", ns="kube-system", cluster_ip="10.96.0.10",
                      ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                             {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])],
        endpoints=[eps("web", [{"ip": "10.244.1.2"}, {"ip": "10.244.1.3"}]),
                   eps("db", [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.1.6"}],
                       ports=[{"name": "pg", "port": 5432, "protocol": "TCP"},
                              {"port": 9000, "protocol": "TCP"}], not_ready=["10.244.1.7"]),
                   eps("empty", [])],
        pods=[pod("web-a", "10.244.1.2"), pod("web-b", "10.244.1.3"), pod("lonely", "10.244.1.9"),
              pod("other", "10.244.2.4", ns="prod")],
    )


@pytest.fixture
def r(view):
    return Resolver(view, D, ttl=7)


def rdata(ans):
    return [str(rr.rdata) for rr in ans.answers]


def test_cluster_ip_service_a(r):
    a = r.resolve("web.default.svc.cluster.local.", QTYPE.A)
    assert a.rcode == RCODE.NOERROR and a.authoritative and rdata(a) == ["10.96.0.20"]
    assert a.answers[0].ttl == 7 and str(a.answers[0].rname) == "web.default.svc.cluster.local."


def test_case_insensitive_and_name_as_asked(r):
    a = r.resolve("WEB.Default.SVC.cluster.LOCAL.", QTYPE.A)
    assert rdata(a) == ["10.96.0.20"] and str(a.answers[0].rname) == "WEB.Default.SVC.cluster.LOCAL."


def test_headless_returns_ready_endpoints_only(r):
    a = r.resolve("db.default.svc.cluster.local", QTYPE.A)
    assert sorted(rdata(a)) == ["10.244.1.5", "10.244.1.6"]   # 10.244.1.7 is not ready


def test_headless_without_ready_endpoints_is_nodata(r):
    a = r.resolve("empty.default.svc.cluster.local", QTYPE.A)
    assert a.rcode == RCODE.NOERROR and a.answers == [] and a.authority[0].rtype == QTYPE.SOA


def test_endpoint_hostname_and_dashed_ip(r):
    assert rdata(r.resolve("db-0.db.default.svc.cluster.local", QTYPE.A)) == ["10.244.1.5"]
    assert rdata(r.resolve("10-244-1-6.db.default.svc.cluster.local", QTYPE.A)) == ["10.244.1.6"]
    assert r.resolve("db-9.db.default.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_srv_cluster_ip_named_port(r):
    a = r.resolve("_http._tcp.web.default.svc.cluster.local", QTYPE.SRV)
    assert [(rr.rdata.priority, rr.rdata.port, str(rr.rdata.target)) for rr in a.answers] == \
        [(0, 80, "web.default.svc.cluster.local.")]
    assert [(str(rr.rname), str(rr.rdata)) for rr in a.additional] == [("web.default.svc.cluster.local.", "10.96.0.20")]


def test_srv_headless_one_per_ready_address(r):
    a = r.resolve("_pg._tcp.db.default.svc.cluster.local", QTYPE.SRV)
    got = sorted((rr.rdata.port, str(rr.rdata.target)) for rr in a.answers)
    assert got == [(5432, "10-244-1-6.db.default.svc.cluster.local."), (5432, "db-0.db.default.svc.cluster.local.")]
    assert all(rr.rdata.weight == 50 for rr in a.answers)
    assert sorted(str(rr.rdata) for rr in a.additional) == ["10.244.1.5", "10.244.1.6"]


def test_srv_unknown_port_or_proto_is_nxdomain_and_unnamed_ports_have_none(r):
    assert r.resolve("_http._udp.web.default.svc.cluster.local", QTYPE.SRV).rcode == RCODE.NXDOMAIN
    assert r.resolve("_nope._tcp.web.default.svc.cluster.local", QTYPE.SRV).rcode == RCODE.NXDOMAIN
    # SRV on the service name: every named port (the unnamed 9000 is left out)
    a = r.resolve("db.default.svc.cluster.local", QTYPE.SRV)
    assert {rr.rdata.port for rr in a.answers} == {5432}


def test_srv_udp_and_tcp_twins(r):
    udp = r.resolve("_dns._udp.dns.kube-system.svc.cluster.local", QTYPE.SRV)
    assert [(rr.rdata.port, rr.rdata.weight) for rr in udp.answers] == [(53, 100)]
    both = r.resolve("dns.kube-system.svc.cluster.local", QTYPE.SRV)
    assert len(both.answers) == 1     # identical (port, target) records once


def test_proto_level_name_is_nodata(r):
    assert r.resolve("_tcp.web.default.svc.cluster.local", QTYPE.A).rcode == RCODE.NOERROR
    assert r.resolve("_udp.web.default.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_external_name_is_cname(r):
    a = r.resolve("ext.default.svc.cluster.local", QTYPE.A)
    assert a.answers[0].rtype == QTYPE.CNAME and str(a.answers[0].rdata) == "example.org."


def test_nxdomain_carries_soa(r):
    for name in ("nope.default.svc.cluster.local", "web.nons.svc.cluster.local", "foo.cluster.local",
                 "a.b.c.web.default.svc.cluster.local", "nons.svc.cluster.local"):
        a = r.resolve(name, QTYPE.A)
        assert a.rcode == RCODE.NXDOMAIN, name
        soa = a.authority[0]
        assert soa.rtype == QTYPE.SOA and str(soa.rname) == "cluster.local." and soa.rdata.times[-1] == 7


def test_nodata_for_other_types_and_empty_non_terminals(r):
    for name, qtype in (("web.default.svc.cluster.local", QTYPE.AAAA), ("web.default.svc.cluster.local", QTYPE.MX),
                        ("default.svc.cluster.local", QTYPE.A), ("svc.cluster.local", QTYPE.A),
                        ("cluster.local", QTYPE.A), ("10-244-1-2.default.pod.cluster.local", QTYPE.AAAA),
                        ("_http._tcp.web.default.svc.cluster.local", QTYPE.A)):
        a = r.resolve(name, qtype)
        assert a.rcode == RCODE.NOERROR and a.answers == [] and a.authority[0].rtype == QTYPE.SOA, (name, qtype)


def test_apex_soa_and_schema_version(r):
    a = r.resolve("cluster.local.", QTYPE.SOA)
    assert a.answers[0].rtype == QTYPE.SOA and str(a.answers[0].rdata.mname) == "ns.dns.cluster.local."
    assert rdata(r.resolve("dns-version.cluster.local", QTYPE.TXT)) == ['"1.1.0"']


def test_pod_records_verified(r):
    assert rdata(r.resolve("10-244-1-2.default.pod.cluster.local", QTYPE.A)) == ["10.244.1.2"]
    assert r.resolve("10-244-1-2.prod.pod.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN   # wrong namespace
    assert r.resolve("10-244-9-9.default.pod.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert r.resolve("not-an-ip.default.pod.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_pod_records_insecure_and_disabled(view):
    assert rdata(Resolver(view, D, pods="insecure").resolve("10-1-2-3.any.pod.cluster.local", QTYPE.A)) == ["10.1.2.3"]
    assert Resolver(view, D, pods="disabled").resolve("10-244-1-2.default.pod.cluster.local",
                                                      QTYPE.A).rcode == RCODE.NXDOMAIN


def test_ptr_cluster_ip_endpoint_and_pod(r):
    assert rdata(r.resolve("20.0.96.10.in-addr.arpa.", QTYPE.PTR)) == ["web.default.svc.cluster.local."]
    assert rdata(r.resolve("5.1.244.10.in-addr.arpa", QTYPE.PTR)) == ["db-0.db.default.svc.cluster.local."]
    assert rdata(r.resolve("2.1.244.10.in-addr.arpa", QTYPE.PTR)) == ["10-244-1-2.web.default.svc.cluster.local."]
    assert rdata(r.resolve("9.1.244.10.in-addr.arpa", QTYPE.PTR)) == ["10-244-1-9.default.pod.cluster.local."]
    unknown = r.resolve("1.2.3.4.in-addr.arpa", QTYPE.PTR)
    assert unknown.forward and not unknown.authoritative


def test_outside_the_domain_is_forwarded(r):
    a = r.resolve("example.com.", QTYPE.A)
    assert a.forward and a.answers == []
    assert r.resolve("cluster.local.example.com", QTYPE.A).forward


def test_custom_domain(view):
    r = Resolver(view, "corp.example.", ttl=5)
    assert rdata(r.resolve("web.default.svc.corp.example", QTYPE.A)) == ["10.96.0.20"]
    assert r.resolve("web.default.svc.cluster.local", QTYPE.A).forward


def test_not_synced_is_servfail_uncached(view):
    r = Resolver(view, D, synced=lambda: False)
    a = r.resolve("web.default.svc.cluster.local", QTYPE.A)
    assert a.rcode == RCODE.SERVFAIL and not a.cacheable


def test_changes_in_the_stores_show_at_once(view, r):
    view.services.delete("default/web")
    assert r.resolve("web.default.svc.cluster.local", QTYPE.A).rcode == RCODE.NXDOMAIN
    view.services.add(svc("web", cluster_ip="10.96.0.99"))
    assert rdata(r.resolve("web.default.svc.cluster.local", QTYPE.A)) == ["10.96.0.99"]
    assert rdata(r.resolve("99.0.96.10.in-addr.arpa", QTYPE.PTR)) == ["web.default.svc.cluster.local."]


def test_dash_helpers():
    assert dashed("10.0.0.1") == "10-0-0-1" and undash_v4("10-0-0-1") == "10.0.0.1"
    assert undash_v4("10-0-0") is None and undash_v4("10-0-0-300") is None
