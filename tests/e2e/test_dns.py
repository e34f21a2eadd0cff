"""Cluster DNS end to end: pods resolve services through 10.96.0.10, the proxy's DNAT, and the DNS in the node.

Stand-in pods (``tests.e2e.netns``) play the kubelet's part: their
resolv.conf points at 10.96.0.10 with the usual search list and ndots:5
(``tests.e2e.dns_fixtures``). Run as root; `dig` and `getent` are run
inside the pod namespaces with ``ip netns exec``.
"""
from __future__ import annotations

import shutil
import time

from tests.conftest import need
from tests.e2e.dns_fixtures import CLUSTER_DNS, cluster_dns  # noqa: F401,F811 - the fixture
from tests.e2e.netns import nsrun, wait_until

HTTP = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def _dig(ns: str, *args: str) -> str:
    need(shutil.which("dig") is not None, "dig not found (apt-get install dnsutils)")
    return nsrun(ns, "dig", f"@{CLUSTER_DNS}", "+time=2", "+tries=1", *args, check=False, timeout=30).stdout.decode()


def test_kube_dns_endpoints_carry_the_node_address_and_the_proxy_dnats_to_it(cluster, cluster_dns):
    # the fixture waited for both (ClusterDNS.wait_reachable); here they are checked once more, exactly
    assert cluster_dns.registered() == [(cluster.node.node_ip, "node-1")]
    from tests.e2e.netns import dnat_targets
    nat = cluster.node.iptables_save("nat")
    for proto in ("udp", "tcp"):
        assert dnat_targets(nat, CLUSTER_DNS, 53, proto) == {f"{cluster.node.node_ip}:53"}, proto


def test_pod_resolves_and_reaches_a_service_by_name(cluster, cluster_dns):
    svc = cluster.service("web", {"app": "web"}, HTTP)
    vip = svc["spec"]["clusterIP"]
    cluster.pod("web-a", {"app": "web"})
    client = cluster.pod("dns-client", {"app": "client"})
    cluster_dns.give_resolv_conf(client.ns)
    cluster.wait_programmed(vip, 80, ["web-a"])
    wait_until(lambda: _dig(client.ns, "+short", "web.default.svc.cluster.local").split() == [vip],
               timeout=10, what="dig through 10.96.0.10")
    assert _dig(client.ns, "+short", "+tcp", "web.default.svc.cluster.local").split() == [vip]
    # glibc with the search list and ndots:5: short, namespaced and full names
    for name in ("web", "web.default", "web.default.svc.cluster.local"):
        out = nsrun(client.ns, "getent", "hosts", name, timeout=30).stdout.decode().split()
        assert out[:1] == [vip], (name, out)
    # a request by service name (the name resolved inside the pod, then the proxy's DNAT)
    r = cluster.node.connect(client.ns, "web", 80, count=3)
    assert r["counts"] == {"web-a": 3}, r
    # unknown names: NXDOMAIN from the pod's point of view, at once
    t0 = time.monotonic()
    p = nsrun(client.ns, "getent", "hosts", "nope", check=False, timeout=30)
    assert p.returncode == 2 and time.monotonic() - t0 < 5
    assert "status: SERVFAIL" in _dig(client.ns, "example.com")


def test_headless_service_and_pod_records_from_a_pod(cluster, cluster_dns):
    cluster.service("pets", {"app": "pets"}, HTTP, clusterIP="None")
    a = cluster.pod("pets-a", {"app": "pets"})
    b = cluster.pod("pets-b", {"app": "pets"})
    client = cluster.pod("dns-client2", {"app": "client"})
    cluster_dns.give_resolv_conf(client.ns)
    wait_until(lambda: sorted(_dig(client.ns, "+short", "pets.default.svc.cluster.local").split())
               == sorted([a.ip, b.ip]), timeout=15, what="headless A records")
    srv = _dig(client.ns, "+short", "SRV", "_http._tcp.pets.default.svc.cluster.local").splitlines()
    assert sorted(line.split()[3] for line in srv) == sorted(
        f"{ip.replace('.', '-')}.pets.default.svc.cluster.local." for ip in (a.ip, b.ip))
    dashed = a.ip.replace(".", "-")
    assert _dig(client.ns, "+short", f"{dashed}.default.pod.cluster.local").split() == [a.ip]
    assert _dig(client.ns, "+short", "-x", a.ip).split() == [f"{dashed}.pets.default.svc.cluster.local."]
