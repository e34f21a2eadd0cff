"""Golden-text tests of the proxy's generated ruleset (pure; no root, no iptables)."""
from __future__ import annotations

import copy

from proxy.rules import (JUMPS, MAX_CHAIN_LEN, Config, RulesetBuilder, build_ruleset, ext_chain, owned_chain,
                         sep_chain, service_ports, svc_chain, svl_chain)


def svc(name, ip, ports, typ="ClusterIP", rv="1", **spec):
    return {"metadata": {"namespace": "default", "name": name, "resourceVersion": rv},
            "spec": {"type": typ, "clusterIP": ip, "ports": ports, **spec}}


def eps(ips, ports, rv="1", not_ready=()):
    subset = {"addresses": [{"ip": i} for i in ips], "ports": ports}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": i} for i in not_ready]
    return {"metadata": {"resourceVersion": rv}, "subsets": [subset]}


SERVICES = [
    svc("web", "10.96.0.20", [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}], "NodePort",
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
    svc("dns", "10.96.0.10", [{"name": "dns", "port": 53, "protocol": "UDP"}]),
    svc("empty", "10.96.0.40", [{"port": 80, "protocol": "TCP", "nodePort": 30081}], "NodePort"),
    svc("headless", "None", [{"port": 80}]),
]
ENDPOINTS = {
    "default/web": eps(["10.244.1.3", "10.244.1.2"], [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       not_ready=["10.244.1.9"]),
    "default/dns": eps(["10.244.1.4"], [{"name": "dns", "port": 53, "protocol": "UDP"}]),
}

GOLDEN = """\
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
-A KUBE-SERVICES -d 10.96.0.40/32 -m comment --comment "default/empty has no endpoints" -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/empty has no endpoints" -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30081 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SVC-2MBSHUE5GJKPO227 - [0:0]
:KUBE-SEP-QZXAUXGQQ2TLJYVV - [0:0]
:KUBE-EXT-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SEP-UIQK3OSOSTRHRPBX - [0:0]
:KUBE-SEP-2AZ33KU3V5PGPQZH - [0:0]
-A KUBE-SERVICES -d 10.96.0.10/32 -m comment --comment "default/dns:dns cluster IP" -p udp -m udp --dport 53 -j KUBE-SVC-2MBSHUE5GJKPO227
-A KUBE-SERVICES -d 10.96.0.20/32 -m comment --comment "default/web:http cluster IP" -p tcp -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -m comment --comment default/web:http -p tcp -m tcp --dport 30080 -j KUBE-EXT-CDGGSHYLG3RE2FKL
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SVC-2MBSHUE5GJKPO227 ! -s 10.244.0.0/16 -d 10.96.0.10/32 -m comment --comment "default/dns:dns cluster IP" -p udp -m udp --dport 53 -j KUBE-MARK-MASQ
-A KUBE-SVC-2MBSHUE5GJKPO227 -m comment --comment "default/dns:dns -> 10.244.1.4:53" -j KUBE-SEP-QZXAUXGQQ2TLJYVV
-A KUBE-SEP-QZXAUXGQQ2TLJYVV -m comment --comment default/dns:dns -s 10.244.1.4/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-QZXAUXGQQ2TLJYVV -m comment --comment default/dns:dns -p udp -m udp -j DNAT --to-destination 10.244.1.4:53
-A KUBE-EXT-CDGGSHYLG3RE2FKL -m comment --comment "masquerade traffic for default/web:http external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-CDGGSHYLG3RE2FKL -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-SVC-CDGGSHYLG3RE2FKL ! -s 10.244.0.0/16 -d 10.96.0.20/32 -m comment --comment "default/web:http cluster IP" -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.2:8080" -m recent --name KUBE-SEP-UIQK3OSOSTRHRPBX --rcheck --seconds 60 --reap -j KUBE-SEP-UIQK3OSOSTRHRPBX
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.3:8080" -m recent --name KUBE-SEP-2AZ33KU3V5PGPQZH --rcheck --seconds 60 --reap -j KUBE-SEP-2AZ33KU3V5PGPQZH
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UIQK3OSOSTRHRPBX
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.3:8080" -j KUBE-SEP-2AZ33KU3V5PGPQZH
-A KUBE-SEP-UIQK3OSOSTRHRPBX -m comment --comment default/web:http -s 10.244.1.2/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-UIQK3OSOSTRHRPBX -m comment --comment default/web:http -m recent --set --name KUBE-SEP-UIQK3OSOSTRHRPBX --mask 255.255.255.255 --rsource -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-2AZ33KU3V5PGPQZH -m comment --comment default/web:http -s 10.244.1.3/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-2AZ33KU3V5PGPQZH -m comment --comment default/web:http -m recent --set --name KUBE-SEP-2AZ33KU3V5PGPQZH --mask 255.255.255.255 --rsource -p tcp -m tcp -j DNAT --to-destination 10.244.1.3:8080
COMMIT
"""


def test_golden_ruleset():
    assert build_ruleset(SERVICES, ENDPOINTS, Config(cluster_cidr="10.244.0.0/16")).render() == GOLDEN


def test_chain_names_match_kube_proxy():
    # The names a learner sees in any real cluster.
    assert svc_chain("default/kubernetes:https", "TCP") == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert svc_chain("kube-system/kube-dns:dns", "UDP") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert svc_chain("kube-system/kube-dns:dns-tcp", "TCP") == "KUBE-SVC-ERIFXISQEP7F7OF4"
    for name in (svc_chain("a/b:c", "TCP"), sep_chain("a/b:c", "TCP", "10.244.1.2:80"), ext_chain("a/b", "UDP")):
        assert len(name) == 25 < MAX_CHAIN_LEN + 1
    assert sep_chain("a/b:c", "TCP", "10.244.1.2:80") != sep_chain("a/b:c", "TCP", "10.244.1.3:80")
    assert svc_chain("a/b:c", "TCP") != svc_chain("a/b:c", "UDP")


def test_spread_probabilities_are_one_over_remaining():
    ips = [f"10.244.1.{i}" for i in range(2, 6)]
    rs = build_ruleset([svc("s", "10.96.0.50", [{"port": 80, "protocol": "TCP"}])],
                       {"default/s": eps(ips, [{"port": 80, "protocol": "TCP"}])})
    chain = rs.tables["nat"][svc_chain("default/s", "TCP")]
    probs = [r.split("--probability ")[1].split()[0] for r in chain if "--probability" in r]
    assert probs == ["0.2500000000", "0.3333333333", "0.5000000000"]
    assert chain[-1].endswith("-j " + sep_chain("default/s", "TCP", "10.244.1.5:80"))


def test_not_ready_addresses_get_no_rules_and_no_endpoints_rejects():
    rs = build_ruleset([svc("s", "10.96.0.50", [{"port": 80, "protocol": "TCP"}])],
                       {"default/s": eps([], [{"port": 80, "protocol": "TCP"}], not_ready=["10.244.1.2"])})
    assert not any(c.startswith("KUBE-SEP-") for c in rs.tables["nat"])
    assert any("REJECT" in r and "10.96.0.50" in r for r in rs.tables["filter"]["KUBE-SERVICES"])


def test_endpoint_ports_matched_by_name_and_protocol():
    s = svc("m", "10.96.0.60", [{"name": "a", "port": 80, "protocol": "TCP"},
                               {"name": "b", "port": 81, "protocol": "UDP"}])
    e = {"metadata": {"resourceVersion": "1"}, "subsets": [
        {"addresses": [{"ip": "10.244.1.2"}], "ports": [{"name": "a", "port": 8080, "protocol": "TCP"}]},
        {"addresses": [{"ip": "10.244.1.3"}], "ports": [{"name": "b", "port": 9090, "protocol": "UDP"},
                                                         {"name": "a", "port": 1, "protocol": "UDP"}]}]}
    ports = {p.port_name: p for p in service_ports(s, e)}
    assert [str(x) for x in ports["a"].endpoints] == ["10.244.1.2:8080"]
    assert [str(x) for x in ports["b"].endpoints] == ["10.244.1.3:9090"]


def test_external_name_and_headless_have_no_rules():
    rs = build_ruleset([svc("x", None, [{"port": 80}], "ExternalName", externalName="example.invalid"),
                        svc("h", "None", [{"port": 80}])], {})
    assert rs.tables["nat"]["KUBE-SERVICES"][:-1] == ()
    assert rs.tables["filter"]["KUBE-SERVICES"] == ()


def test_masquerade_all_and_no_cluster_cidr():
    s = [svc("s", "10.96.0.50", [{"port": 80, "protocol": "TCP"}])]
    e = {"default/s": eps(["10.244.1.2"], [{"port": 80, "protocol": "TCP"}])}
    chain = svc_chain("default/s", "TCP")
    all_ = build_ruleset(s, e, Config(masquerade_all=True)).tables["nat"][chain]
    assert all_[0].startswith(f"-A {chain} -d 10.96.0.50/32") and all_[0].endswith("-j KUBE-MARK-MASQ")
    none = build_ruleset(s, e, Config(cluster_cidr=None)).tables["nat"][chain]
    assert not any("KUBE-MARK-MASQ" in r for r in none)


def test_builder_reuses_unchanged_services():
    b = RulesetBuilder(Config())
    s = [svc("a", "10.96.0.50", [{"port": 80, "protocol": "TCP"}]),
         svc("b", "10.96.0.51", [{"port": 80, "protocol": "TCP"}])]
    e = {"default/a": eps(["10.244.1.2"], [{"port": 80, "protocol": "TCP"}]),
         "default/b": eps(["10.244.1.3"], [{"port": 80, "protocol": "TCP"}])}
    one = b.build(s, e)
    e2 = dict(e, **{"default/b": eps(["10.244.1.4"], [{"port": 80, "protocol": "TCP"}], rv="2")})
    two = b.build(s, e2)
    ca, cb = svc_chain("default/a", "TCP"), svc_chain("default/b", "TCP")
    assert two.tables["nat"][ca] is one.tables["nat"][ca]  # same object: the diff is an identity check
    assert two.tables["nat"][cb] != one.tables["nat"][cb]
    assert b.build(s[:1], e2).tables["nat"].get(cb) is None


def test_ownership_is_by_name():
    assert owned_chain("KUBE-SERVICES", "nat") and owned_chain("KUBE-SVC-ABC", "nat")
    assert owned_chain("KUBE-FORWARD", "filter") and not owned_chain("KUBE-SVC-ABC", "filter")
    assert not owned_chain("KUBE-MARK-DROP", "nat") and not owned_chain("DOCKER", "nat")
    assert {t for t, _, _ in JUMPS} == {"filter", "nat"}


def test_deterministic_regardless_of_input_order():
    a = build_ruleset(SERVICES, ENDPOINTS).render()
    b = build_ruleset(list(reversed(copy.deepcopy(SERVICES))), ENDPOINTS).render()
    assert a == b


# ------------------------------------------------------------ traffic policies
def node_eps(addrs, ports, rv="1"):
    """Endpoints whose addresses carry a nodeName: ``addrs`` is [(ip, node)]."""
    return {"metadata": {"resourceVersion": rv},
            "subsets": [{"addresses": [{"ip": ip, "nodeName": n} for ip, n in addrs], "ports": ports}]}


NP = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30090}]
EP_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"}]
KEY = "default/web:http"
ON_NODE = Config(cluster_cidr="10.244.0.0/16", node_name="node-a")


def test_defaults_traffic_policy_cluster_and_no_node_name():
    # Each default once: a Service without the fields is Cluster/Cluster, a Config has no node name (nothing
    # is local) and the proxy's --node-name defaults to the hostname.
    import os

    from proxy.main import build_parser
    assert Config().node_name is None
    assert build_parser().parse_args([]).node_name is None  # main() then uses os.uname().nodename
    assert os.uname().nodename
    (sp,) = service_ports(svc("web", "10.96.0.90", NP, "NodePort"),
                          node_eps([("10.244.1.2", "node-a")], EP_PORTS))
    assert (sp.external_local, sp.internal_local) == (False, False)
    (sp,) = service_ports(svc("web", "10.96.0.90", NP, "NodePort"),
                          node_eps([("10.244.1.2", "node-a")], EP_PORTS), node_name="node-a")
    assert sp.endpoints[0].local and sp.local_endpoints == sp.endpoints


def test_external_policy_cluster_masquerades_and_uses_every_endpoint():
    s = svc("web", "10.96.0.90", NP, "NodePort", externalTrafficPolicy="Cluster")
    e = node_eps([("10.244.1.2", "node-a"), ("10.244.2.2", "node-b")], EP_PORTS)
    nat = build_ruleset([s], {"default/web": e}, ON_NODE).tables["nat"]
    ext, svc_ = ext_chain(KEY, "TCP"), svc_chain(KEY, "TCP")
    assert nat[ext] == (
        f'-A {ext} -m comment --comment "masquerade traffic for {KEY} external destinations" -j KUBE-MARK-MASQ',
        f"-A {ext} -j {svc_}")
    assert svl_chain(KEY, "TCP") not in nat
    assert sum("-j KUBE-SEP-" in r for r in nat[svc_]) == 2


def test_external_policy_local_keeps_the_source_and_uses_local_endpoints_only():
    s = svc("web", "10.96.0.90", NP, "NodePort", externalTrafficPolicy="Local")
    e = node_eps([("10.244.1.2", "node-a"), ("10.244.2.2", "node-b")], EP_PORTS)
    rs = build_ruleset([s], {"default/web": e}, ON_NODE)
    nat = rs.tables["nat"]
    ext, svc_, svl = ext_chain(KEY, "TCP"), svc_chain(KEY, "TCP"), svl_chain(KEY, "TCP")
    local_sep, remote_sep = sep_chain(KEY, "TCP", "10.244.1.2:8080"), sep_chain(KEY, "TCP", "10.244.2.2:8080")
    assert nat[ext] == (
        f'-A {ext} -m comment --comment "pod traffic for {KEY} external destinations" -s 10.244.0.0/16 -j {svc_}',
        f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {KEY} external destinations" '
        f"-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        f'-A {ext} -m comment --comment "route LOCAL traffic for {KEY} external destinations" '
        f"-m addrtype --src-type LOCAL -j {svc_}",
        f"-A {ext} -j {svl}",
    )
    # Clients from elsewhere reach KUBE-SVL: only the local endpoint, nothing marks them for masquerade.
    assert nat[svl] == (f'-A {svl} -m comment --comment "{KEY} -> 10.244.1.2:8080" -j {local_sep}',)
    # The cluster IP still spreads over every endpoint (internalTrafficPolicy Cluster).
    assert f"-j {remote_sep}" in nat[svc_][-1] and any(f"-j {local_sep}" in r for r in nat[svc_])
    assert any(f"-j {svc_}" in r and "10.96.0.90" in r for r in nat["KUBE-SERVICES"])
    assert nat["KUBE-NODEPORTS"] == (f"-A KUBE-NODEPORTS -m comment --comment {KEY} -p tcp -m tcp --dport 30090 "
                                     f"-j {ext}",)
    assert rs.tables["filter"]["KUBE-EXTERNAL-SERVICES"] == ()
    assert owned_chain(svl, "nat")


def test_external_policy_local_without_a_local_endpoint_drops():
    s = svc("web", "10.96.0.90", NP, "NodePort", externalTrafficPolicy="Local", externalIPs=["192.0.2.10"])
    e = node_eps([("10.244.2.2", "node-b")], EP_PORTS)
    rs = build_ruleset([s], {"default/web": e}, ON_NODE)
    nat, flt = rs.tables["nat"], rs.tables["filter"]
    ext, svc_, svl = ext_chain(KEY, "TCP"), svc_chain(KEY, "TCP"), svl_chain(KEY, "TCP")
    assert svl not in nat
    # Only the short-circuits for pods and the node itself: everyone else falls through to the DROP.
    assert not any(r.endswith(f"-j {svl}") for r in nat[ext]) and len(nat[ext]) == 3
    assert flt["KUBE-EXTERNAL-SERVICES"] == (
        f'-A KUBE-EXTERNAL-SERVICES -d 192.0.2.10/32 -m comment --comment "{KEY} has no local endpoints" '
        f"-p tcp -m tcp --dport 80 -j DROP",
        f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{KEY} has no local endpoints" -m addrtype '
        f"--dst-type LOCAL -p tcp -m tcp --dport 30090 -j DROP",
    )
    assert flt["KUBE-SERVICES"] == ()  # the cluster IP answers from every node
    assert any(f"-j {svc_}" in r for r in nat["KUBE-SERVICES"])


def test_no_endpoints_at_all_still_rejects_with_a_local_policy():
    s = svc("web", "10.96.0.90", NP, "NodePort", externalTrafficPolicy="Local")
    rs = build_ruleset([s], {"default/web": node_eps([], EP_PORTS)}, ON_NODE)
    assert all(r.endswith("REJECT --reject-with icmp-port-unreachable")
               for r in rs.tables["filter"]["KUBE-SERVICES"] + rs.tables["filter"]["KUBE-EXTERNAL-SERVICES"])
    assert len(rs.tables["filter"]["KUBE-EXTERNAL-SERVICES"]) == 1
    assert not any(c.startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-")) for c in rs.tables["nat"])


def test_internal_policy_local():
    s = svc("web", "10.96.0.90", [{"name": "http", "port": 80, "protocol": "TCP"}], internalTrafficPolicy="Local")
    both = node_eps([("10.244.1.2", "node-a"), ("10.244.2.2", "node-b")], EP_PORTS)
    nat = build_ruleset([s], {"default/web": both}, ON_NODE).tables["nat"]
    svc_, svl = svc_chain(KEY, "TCP"), svl_chain(KEY, "TCP")
    assert svc_ not in nat and sep_chain(KEY, "TCP", "10.244.2.2:8080") not in nat
    assert nat[svl][0].startswith(f"-A {svl} ! -s 10.244.0.0/16 -d 10.96.0.90/32") and \
        nat[svl][0].endswith("-j KUBE-MARK-MASQ")
    assert nat[svl][1:] == (f'-A {svl} -m comment --comment "{KEY} -> 10.244.1.2:8080" '
                            f"-j {sep_chain(KEY, 'TCP', '10.244.1.2:8080')}",)
    assert any(r.endswith(f"-j {svl}") for r in nat["KUBE-SERVICES"])
    remote = node_eps([("10.244.2.2", "node-b")], EP_PORTS)
    rs = build_ruleset([s], {"default/web": remote}, ON_NODE)
    assert rs.tables["filter"]["KUBE-SERVICES"] == (
        f'-A KUBE-SERVICES -d 10.96.0.90/32 -m comment --comment "{KEY} has no local endpoints" '
        f"-p tcp -m tcp --dport 80 -j DROP",)
    assert not any(c.startswith(("KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-")) for c in rs.tables["nat"])


def test_load_balancer_ips_go_to_the_external_chain():
    s = svc("web", "10.96.0.90", NP, "LoadBalancer")
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.50"}, {"hostname": "lb.example"}]}}
    e = node_eps([("10.244.1.2", "node-a")], EP_PORTS)
    nat = build_ruleset([s], {"default/web": e}, ON_NODE).tables["nat"]
    assert f'-A KUBE-SERVICES -d 192.0.2.50/32 -m comment --comment "{KEY} loadbalancer IP" -p tcp -m tcp ' \
           f"--dport 80 -j {ext_chain(KEY, 'TCP')}" in nat["KUBE-SERVICES"]
    none = build_ruleset([s], {}, ON_NODE).tables["filter"]["KUBE-EXTERNAL-SERVICES"]
    assert any("-d 192.0.2.50/32" in r and "REJECT" in r for r in none)
