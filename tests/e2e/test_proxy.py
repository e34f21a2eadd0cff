"""The service proxy end to end: real packets between pod namespaces through the node's iptables.

Endpoints come from the real endpoints controller, fed by pods whose
readiness the test sets through the API. Each test uses its own service
and pods; the last ones restart and clean up the proxy. Run as root.
"""
from __future__ import annotations

import time

from api import resources as R
from tests.e2e.netns import dnat_targets, wait_until

HTTP = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_pod_reaches_cluster_ip_tcp_and_udp(cluster):
    svc = cluster.service("basic", {"app": "basic"}, HTTP + [
        {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}])
    vip = svc["spec"]["clusterIP"]
    cluster.pod("basic-a", {"app": "basic"})
    client = cluster.pod("basic-client", {"app": "client"})
    cluster.wait_programmed(vip, 80, ["basic-a"])
    cluster.wait_programmed(vip, 53, ["basic-a"], proto="udp", target=5353)
    r = cluster.node.connect(client.ns, vip, 80, count=10)
    assert r["counts"] == {"basic-a": 10}, r
    # In-cluster clients keep their source address (no masquerade).
    assert r["sources"] == {client.ip: 10}, r
    u = cluster.node.connect(client.ns, vip, 53, count=5, proto="udp")
    assert u["counts"] == {"basic-a": 5}, u


def test_three_endpoints_share_300_connections(cluster):
    svc = cluster.service("spread", {"app": "spread"}, HTTP)
    vip = svc["spec"]["clusterIP"]
    for n in "abc":
        cluster.pod(f"spread-{n}", {"app": "spread"})
    client = cluster.pod("spread-client", {"app": "client"})
    cluster.wait_programmed(vip, 80, ["spread-a", "spread-b", "spread-c"])
    r = cluster.node.connect(client.ns, vip, 80, count=300)
    assert r["errors"] == {}, r
    assert sum(r["counts"].values()) == 300
    for n in "abc":
        share = r["counts"].get(f"spread-{n}", 0) / 300
        assert 0.20 <= share <= 0.47, r


def test_client_ip_affinity_pins_a_client(cluster):
    svc = cluster.service("sticky", {"app": "sticky"}, HTTP, sessionAffinity="ClientIP",
                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}})
    vip = svc["spec"]["clusterIP"]
    for n in "abc":
        cluster.pod(f"sticky-{n}", {"app": "sticky"})
    c1 = cluster.pod("sticky-client1", {"app": "client"})
    c2 = cluster.pod("sticky-client2", {"app": "client"})
    cluster.wait_programmed(vip, 80, ["sticky-a", "sticky-b", "sticky-c"])
    for c in (c1, c2):
        r = cluster.node.connect(c.ns, vip, 80, count=40)
        assert r["errors"] == {} and len(r["counts"]) == 1 and sum(r["counts"].values()) == 40, r


def test_nodeport_from_outside_namespace(cluster):
    svc = cluster.service("np", {"app": "np"}, HTTP, type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    cluster.pod("np-a", {"app": "np"})
    cluster.pod("np-b", {"app": "np"})
    cluster.wait_programmed(svc["spec"]["clusterIP"], 80, ["np-a", "np-b"])
    r = cluster.node.connect(cluster.node.outside_ns, cluster.node.node_out_ip, node_port, count=40)
    assert r["errors"] == {} and set(r["counts"]) == {"np-a", "np-b"}, r
    # Off-cluster traffic is masqueraded: the pods see the node's bridge address.
    assert set(r["sources"]) == {cluster.node.gateway}, r


def test_service_without_endpoints_refuses_at_once(cluster):
    svc = cluster.service("nobody", {"app": "nobody-here"}, HTTP, type="NodePort")
    vip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    client = cluster.pod("nobody-client", {"app": "client"})
    wait_until(lambda: f"-d {vip}/32" in cluster.node.iptables_save("filter"), what="REJECT rule")
    t = time.monotonic()
    r = cluster.node.connect(client.ns, vip, 80, count=3, per_timeout=5)
    assert r["errors"] == {"ConnectionRefusedError": 3}, r
    assert time.monotonic() - t < 4 and r["max_s"] < 1.0, r
    r = cluster.node.connect(cluster.node.outside_ns, cluster.node.node_out_ip, node_port, count=2, per_timeout=5)
    assert r["errors"] == {"ConnectionRefusedError": 2} and r["max_s"] < 1.0, r


def test_hairpin_pod_reaches_itself_through_its_service(cluster):
    svc = cluster.service("hairpin", {"app": "hairpin"}, HTTP)
    vip = svc["spec"]["clusterIP"]
    me = cluster.pod("hairpin-a", {"app": "hairpin"})
    cluster.wait_programmed(vip, 80, ["hairpin-a"])
    r = cluster.node.connect(me.ns, vip, 80, count=10)
    assert r["counts"] == {"hairpin-a": 10}, r
    # The reply could only come back because the source was masqueraded to the gateway.
    assert r["sources"] == {cluster.node.gateway: 10}, r


def test_not_ready_pod_gets_no_traffic(cluster):
    svc = cluster.service("ready", {"app": "ready"}, HTTP)
    vip = svc["spec"]["clusterIP"]
    cluster.pod("ready-a", {"app": "ready"})
    cluster.pod("ready-b", {"app": "ready"})
    cluster.pod("ready-c", {"app": "ready"}, ready=False)
    client = cluster.pod("ready-client", {"app": "client"})
    cluster.wait_programmed(vip, 80, ["ready-a", "ready-b"])
    ep = cluster.client.get(R.ENDPOINTS, "ready", "default")
    assert [a["ip"] for s in ep["subsets"] for a in s.get("notReadyAddresses", [])] == \
        [cluster.node.pods["ready-c"].ip]
    r = cluster.node.connect(client.ns, vip, 80, count=60)
    assert r["errors"] == {} and "ready-c" not in r["counts"] and sum(r["counts"].values()) == 60, r


def test_readiness_flapping_updates_rules(cluster):
    svc = cluster.service("flap", {"app": "flap"}, HTTP)
    vip = svc["spec"]["clusterIP"]
    cluster.pod("flap-a", {"app": "flap"})
    cluster.pod("flap-b", {"app": "flap"})
    client = cluster.pod("flap-client", {"app": "client"})
    cluster.wait_programmed(vip, 80, ["flap-a", "flap-b"])
    for _ in range(3):
        cluster.set_ready("flap-b", False)
        cluster.wait_programmed(vip, 80, ["flap-a"])
        r = cluster.node.connect(client.ns, vip, 80, count=20)
        assert r["counts"] == {"flap-a": 20}, r
        cluster.set_ready("flap-b", True)
        cluster.wait_programmed(vip, 80, ["flap-a", "flap-b"])
        r = cluster.node.connect(client.ns, vip, 80, count=40)
        assert set(r["counts"]) == {"flap-a", "flap-b"}, r
    # Both not ready: the service now refuses instead of hanging.
    cluster.set_ready("flap-a", False)
    cluster.set_ready("flap-b", False)
    wait_until(lambda: f"-d {vip}/32" in cluster.node.iptables_save("filter"), what="REJECT after flap")
    r = cluster.node.connect(client.ns, vip, 80, count=2)
    assert r["errors"] == {"ConnectionRefusedError": 2}, r


def test_other_rules_on_the_node_survive_syncs(cluster):
    # A rule of someone else's in the node namespace (never in the machine's own).
    from tests.e2e.netns import nsrun

    nsrun(cluster.node.ns, "iptables", "-w", "-t", "nat", "-N", "OTHER-OWNER")
    nsrun(cluster.node.ns, "iptables", "-w", "-t", "nat", "-A", "OTHER-OWNER", "-j", "RETURN")
    svc = cluster.service("churn", {"app": "churn"}, HTTP)
    cluster.pod("churn-a", {"app": "churn"})
    cluster.wait_programmed(svc["spec"]["clusterIP"], 80, ["churn-a"])
    cluster.client.delete(R.SERVICES, "churn", "default")
    wait_until(lambda: dnat_targets(cluster.node.iptables_save("nat"), svc["spec"]["clusterIP"], 80) == set(),
               what="service rules gone")
    assert "-A OTHER-OWNER -j RETURN" in cluster.node.iptables_save("nat")


def test_api_server_down_keeps_rules_and_catches_up(cluster):
    svc = cluster.service("outage", {"app": "outage"}, HTTP)
    vip = svc["spec"]["clusterIP"]
    cluster.pod("outage-a", {"app": "outage"})
    client = cluster.pod("outage-client", {"app": "client"})
    cluster.wait_programmed(vip, 80, ["outage-a"])
    cluster.apiserver.stop()
    try:
        time.sleep(1.0)
        r = cluster.node.connect(client.ns, vip, 80, count=10)
        assert r["counts"] == {"outage-a": 10}, r
    finally:
        cluster.start_apiserver()
    cluster.pod("outage-b", {"app": "outage"})
    cluster.wait_programmed(vip, 80, ["outage-a", "outage-b"], timeout=30)


def test_proxy_restart_keeps_connections_working(cluster):
    svc = cluster.service("restart", {"app": "restart"}, HTTP)
    vip = svc["spec"]["clusterIP"]
    cluster.pod("restart-a", {"app": "restart"})
    client = cluster.pod("restart-client", {"app": "client"})
    cluster.wait_programmed(vip, 80, ["restart-a"])
    cluster.proxy.stop(kill=True)  # a crash
    # Rules stay: connections keep working with no proxy at all.
    r = cluster.node.connect(client.ns, vip, 80, count=10)
    assert r["counts"] == {"restart-a": 10}, r
    # A change made while the proxy is down is applied when it comes back.
    cluster.pod("restart-b", {"app": "restart"})
    wait_until(lambda: len([a for s in cluster.client.get(R.ENDPOINTS, "restart", "default").get("subsets") or []
                            for a in s.get("addresses") or []]) == 2, what="endpoints of restart-b")
    cluster.proxy.start()
    cluster.wait_programmed(vip, 80, ["restart-a", "restart-b"])
    r = cluster.node.connect(client.ns, vip, 80, count=40)
    assert r["errors"] == {} and set(r["counts"]) == {"restart-a", "restart-b"}, r
    # The restarted proxy did one full sync and inserted no duplicate jumps.
    nat = cluster.node.iptables_save("nat")
    assert sum(1 for line in nat.splitlines() if line.startswith("-A PREROUTING") and "KUBE-SERVICES" in line) == 1


def test_cleanup_leaves_no_chain_behind(cluster):
    from tests.e2e.netns import in_ns, run
    import sys

    assert "KUBE-SVC-" in cluster.node.iptables_save()
    t = time.monotonic()
    cluster.proxy.stop()  # SIGTERM: a prompt, clean exit
    try:
        assert time.monotonic() - t < 5
        p = run(*in_ns(cluster.node.ns, sys.executable, "-m", "deploy.cli", "proxy", "--cleanup"), timeout=60)
        assert b"removed" in p.stdout
        assert "KUBE-" not in cluster.node.iptables_save()
        # Someone else's chain is still there.
        assert "OTHER-OWNER" in cluster.node.iptables_save("nat")
        # Idempotent.
        p = run(*in_ns(cluster.node.ns, sys.executable, "-m", "deploy.cli", "proxy", "--cleanup"), timeout=60)
        assert b"nothing to remove" in p.stdout
    finally:
        # the cluster is shared by the package's modules (DNS relies on the proxy's DNATs): leave it running
        cluster.proxy.start()
        wait_until(lambda: "KUBE-SVC-" in cluster.node.iptables_save(), timeout=30, what="proxy rules back")
