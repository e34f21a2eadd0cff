"""The node network steps, host routes, the --egress plan and the component command lines,
computed through FakeSystem (nothing is applied; the egress rules are never applied in tests)."""
from __future__ import annotations

import json

from deploy import netsetup, up
from deploy.state import Settings
from deploy.system import FakeSystem, Result


def S(tmp_path, **kw) -> Settings:
    return Settings(data_dir=str(tmp_path / "pk"), node_network="100.64.9.8/29", **kw)


def fresh() -> FakeSystem:
    """Nothing exists yet: every `link show` and `-C` check fails."""
    return FakeSystem(responses={"ip link show": Result(1), "ip -n": Result(0), "ip -j route show exact": Result(0, "[]")})


def test_fabric_and_node_commands(tmp_path):
    s = S(tmp_path, nodes=[{"name": "node-1", "index": 1}, {"name": "node-2", "index": 2}])
    fs = fresh()
    fs.responses[f"ip -n {s.fabric_ns} link show"] = Result(1)
    netsetup.setup_network(fs, s)
    lines = fs.lines()
    f, n1, n2 = s.fabric_ns, s.node_netns("node-1"), s.node_netns("node-2")
    assert (n1, n2) == (f"pk-{s.id}-node-1", f"pk-{s.id}-node-2") and f == f"pk-{s.id}-fabric"
    want = [f"ip netns add {f}",
            f"ip -n {f} link add br-fabric mtu 1500 type bridge",
            f"ip -n {f} link set br-fabric up",
            f"ip link add {s.host_if} mtu 1500 type veth peer name host netns {f}",
            f"ip -n {f} link set host master br-fabric up",
            f"ip addr replace 100.64.9.9/29 dev {s.host_if}",
            f"ip link set {s.host_if} up",
            f"ip netns add {n1}",
            f"ip -n {f} link add node1 mtu 1500 type veth peer name {s.node_if} netns {n1}",
            f"ip -n {f} link set node1 master br-fabric up",
            f"ip -n {n1} addr replace 100.64.9.10/29 dev {s.node_if}",
            f"ip -n {n1} route replace 10.96.0.0/12 dev {s.node_if}",
            f"ip netns exec {n1} iptables -w -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 "
            f"-o {s.node_if} -m comment --comment pocketkube pk-{s.id}-node-1 -j MASQUERADE",
            f"ip -n {f} link add node2 mtu 1500 type veth peer name {s.node_if} netns {n2}",
            f"ip -n {n2} addr replace 100.64.9.11/29 dev {s.node_if}"]
    idx = [lines.index(w) for w in want]
    assert idx == sorted(idx)                       # in this order: the fabric before the nodes on it
    sysctl = [c for c in fs.commands if c[0] == "nsenter"]
    assert [c[1] for c in sysctl] == [f"--net=/run/netns/{n1}", f"--net=/run/netns/{n2}"]
    assert "ip_forward" in sysctl[0][-1] and "send_redirects" in sysctl[0][-1]
    # never a default route, never a bridge or a rule in the machine's own namespace, no cni0 (the kubelet's)
    assert not any("route replace default" in line or "route add default" in line for line in lines)
    assert not any(line.startswith("iptables") for line in lines)
    assert not any(line.startswith("ip link add") and "type bridge" in line for line in lines)
    assert not any("cni0" in line for line in lines)


def test_setup_is_idempotent(tmp_path):
    s = S(tmp_path)
    paths = {f"/run/netns/{s.fabric_ns}", f"/run/netns/{s.netns}"}
    fs = FakeSystem(paths=paths)
    netsetup.setup_network(fs, s)
    checks = [line for line in fs.lines() if " link show " in line or " -C " in line]
    assert len(checks) == 4           # bridge, host veth, node veth, masquerade rule
    fs = FakeSystem(paths=paths, existing=set(checks))   # namespaces, links and rule exist
    netsetup.setup_network(fs, s)
    lines = fs.lines()
    assert not any(x in line for line in lines for x in ("netns add", "link add", " -A "))


def test_node_addresses_follow_the_index(tmp_path):
    s = S(tmp_path, nodes=[{"name": "a", "index": 1}, {"name": "c", "index": 3}])
    assert s.ip_of("a") == "100.64.9.10" and s.ip_of("c") == "100.64.9.12"
    assert s.next_index() == 2
    assert s.fabric_port(3) == "node3" and len(s.node_if) <= 15 and len(s.host_if) <= 15


def test_host_routes_are_recorded_and_removed_by_exact_spec(tmp_path):
    s = S(tmp_path, nodes=[{"name": "node-1", "index": 1}, {"name": "node-2", "index": 2}])
    fs = fresh()
    got = []
    netsetup.ensure_host_routes(fs, s, {"node-1": "10.244.0.0/24", "node-2": "10.244.1.0/24"}, got.append)
    assert got == ["10.96.0.0/12 via 100.64.9.10", "10.244.0.0/24 via 100.64.9.10", "10.244.1.0/24 via 100.64.9.11"]
    assert f"ip route add 10.244.1.0/24 via 100.64.9.11 dev {s.host_if}" in fs.lines()
    assert f"ip route add 10.96.0.0/12 via 100.64.9.10 dev {s.host_if}" in fs.lines()
    # a node without a podCIDR yet gets no route
    assert netsetup.host_route_plan(s, {"node-1": "10.244.0.0/24"}) == [("10.96.0.0/12", "100.64.9.10"),
                                                                          ("10.244.0.0/24", "100.64.9.10")]
    # already ours: recorded, replaced (never a second `add`)
    fs2 = FakeSystem(responses={"ip -j route show exact": Result(0, json.dumps([{"dev": s.host_if}]))})
    got2 = []
    netsetup.ensure_host_routes(fs2, s, {"node-1": "10.244.0.0/24", "node-2": "10.244.1.0/24"}, got2.append)
    assert got2 == got and not any("route add" in line for line in fs2.lines())
    s.host_routes_added = got + ["10.244.7.0/24"]          # a version-1 entry: via the first node
    assert netsetup.remove_host_routes(fs2, s) == ["route 10.96.0.0/12", "route 10.244.0.0/24", "route 10.244.1.0/24",
                                                   "route 10.244.7.0/24"]
    assert f"ip route del 10.244.1.0/24 via 100.64.9.11 dev {s.host_if}" in fs2.lines()
    assert f"ip route del 10.244.7.0/24 via 100.64.9.10 dev {s.host_if}" in fs2.lines()
    # a route someone else owns now (another device) is left alone
    fs3 = FakeSystem(responses={"ip -j route show exact": Result(0, json.dumps([{"dev": "eth0"}]))})
    assert netsetup.remove_host_routes(fs3, s) == []


def test_remove_node_and_fabric_tolerate_already_gone(tmp_path):
    s = S(tmp_path, nodes=[{"name": "node-1", "index": 1}, {"name": "node-2", "index": 2}])
    n2 = s.node_netns("node-2")
    fs = FakeSystem(paths={f"/run/netns/{n2}", f"/run/netns/{s.fabric_ns}"},
                    existing={f"ip -n {s.fabric_ns} link show dev node2", f"ip link show dev {s.host_if}"})
    assert netsetup.remove_node(fs, s, "node-2", 2) == [f"namespace {n2}", "fabric port node2"]
    assert f"ip netns del {n2}" in fs.lines() and f"ip -n {s.fabric_ns} link del node2" in fs.lines()
    assert netsetup.remove_fabric(fs, s) == [f"link {s.host_if}", f"namespace {s.fabric_ns}"]
    gone = FakeSystem()
    assert netsetup.remove_node(gone, s, "node-2", 2) == [] and netsetup.remove_fabric(gone, s) == []
    assert not any(" del " in line for line in gone.lines())


def test_cluster_namespaces_are_found_by_prefix(tmp_path):
    s = S(tmp_path)
    fs = FakeSystem(responses={"ip netns list": Result(0, f"pk-{s.id}-node-7 (id: 3)\npk-abcdef-node-1\n"
                                                          f"pk-{s.id}-fabric (id: 1)\nother\n")})
    assert netsetup.cluster_namespaces(fs, s) == [f"pk-{s.id}-node-7", f"pk-{s.id}-fabric"]


def test_egress_plan_is_tagged_and_scoped(tmp_path):
    s = S(tmp_path, egress=True)
    plan = [" ".join(c) for c in netsetup.egress_plan(s)]
    assert plan[0] == f"ip -n {s.netns} route replace default via 100.64.9.9 dev {s.node_if}"
    assert plan[1] == "sysctl -qw net.ipv4.ip_forward=1"
    assert plan[2] == (f"iptables -w -t nat -A POSTROUTING -s 100.64.9.8/29 ! -o {s.host_if} "
                       f"-m comment --comment pocketkube pk-{s.id} -j MASQUERADE")
    assert all(f"--comment pocketkube pk-{s.id}" in p for p in plan[2:]) and len(plan) == 5
    assert "-I FORWARD -i " + s.host_if in plan[3]
    # the dry-run plan of `up --egress` includes it; without --egress nothing touches the host's iptables
    assert any("MASQUERADE" in line and "-s 100.64.9.8/29" in line for line in up.plan(s))
    s.egress = False
    assert not any(line.startswith("iptables") or line.startswith("sysctl") for line in up.plan(s))


def test_ensure_and_remove_egress_through_the_fake(tmp_path):
    s = S(tmp_path, egress=True)
    fs = FakeSystem(responses={"iptables -w -t nat -C": Result(1), "iptables -w -t filter -C": Result(1),
                               "cat /proc/sys/net/ipv4/ip_forward": Result(0, "0\n")})
    records = []
    netsetup.ensure_egress(fs, s, lambda a: records.append(json.loads(json.dumps(a))))
    final = records[-1]
    assert final["ip_forward_was"] == "0" and len(final["rules"]) == 3
    # each change was recorded before it was made
    first_rule_cmd = next(i for i, c in enumerate(fs.commands) if c[:2] == ["iptables", "-w"] and "-C" not in c)
    assert records[0]["ip_forward_was"] == "0"
    assert first_rule_cmd > 0
    assert "sysctl -qw net.ipv4.ip_forward=1" in fs.lines()
    s.egress_applied = final
    fs2 = FakeSystem(responses={"iptables -w -t nat -S POSTROUTING": Result(0, "-P POSTROUTING ACCEPT\n")})
    fs2.responses["iptables -w -t nat -D"] = Result(0)
    done = netsetup.remove_egress(fs2, s)
    dels = [line for line in fs2.lines() if " -D " in line]
    assert dels and all(f"pocketkube pk-{s.id}" in d for d in dels)
    assert "net.ipv4.ip_forward back to 0" in done
    # another cluster's egress rule still there -> ip_forward stays on
    fs3 = FakeSystem(responses={"iptables -w -t nat -S POSTROUTING": Result(
        0, '-A POSTROUTING -s 100.64.5.2/32 -m comment --comment "pocketkube pk-abcdef-node" -j MASQUERADE\n'),
        "iptables -w -t": Result(1)})
    fs3.responses["iptables -w -t nat -S POSTROUTING"] = fs3.responses["iptables -w -t nat -S POSTROUTING"]
    assert not any("ip_forward" in d for d in netsetup.remove_egress(fs3, s))


def test_upstream_nameservers():
    assert netsetup.upstream_nameservers(["nameserver 127.0.0.53\n", "nameserver 192.0.2.53\nnameserver ::1\n"]) == \
        ["192.0.2.53"]
    assert netsetup.upstream_nameservers(["# x\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"]) == ["10.0.0.2", "10.0.0.3"]
    assert netsetup.upstream_nameservers(["nameserver 127.0.0.1\n"]) == []


def test_component_commands(tmp_path):
    s = S(tmp_path, port=16443, backend="vxlan", nodes=[{"name": "node-1", "index": 1}, {"name": "node-2", "index": 2}])
    cmds = up.component_commands(s, python="py", upstreams=["192.0.2.53"])
    assert list(cmds) == ["apiserver", "controller-manager", "scheduler", "node-1/kubelet", "node-1/proxy",
                          "node-1/netd", "node-2/kubelet", "node-2/proxy", "node-2/netd", "dns"]
    api = cmds["apiserver"]
    assert api[api.index("--bind-address") + 1] == "127.0.0.1,100.64.9.9"      # never 0.0.0.0
    assert "--token-auth-file" in api and "--kubelet-token-file" in api and "--tls-cert-file" in api
    cm = cmds["controller-manager"]
    assert "--allocate-node-cidrs" in cm and cm[cm.index("--cluster-cidr") + 1] == "10.244.0.0/16"
    assert cm[cm.index("--service-cluster-ip-range") + 1] == "10.96.0.0/12"
    n2 = s.node_netns("node-2")
    k = cmds["node-2/kubelet"]
    assert k[:3] == ["nsenter", f"--net=/run/netns/{n2}", "--"]        # not `ip netns exec` (/sys)
    assert k[k.index("--cgroup-root") + 1] == s.cgroup_root_of("node-2") and k[k.index("--node-ip") + 1] == "100.64.9.11"
    assert k[k.index("--kubeconfig") + 1] == s.layout.node_kubeconfig("node-2")      # its own identity
    assert k[k.index("--root-dir") + 1] == s.layout.kubelet_root("node-2")
    assert "--register-network-unavailable" in k and k[k.index("--cni-mtu") + 1] == "1450"
    assert "--pod-cidr" not in k                                     # from the controller-manager
    assert cmds["node-2/proxy"][:4] == ["ip", "netns", "exec", n2]
    nd = cmds["node-2/netd"]
    assert nd[:4] == ["ip", "netns", "exec", n2] and nd[nd.index("--backend") + 1] == "vxlan"
    assert nd[nd.index("--iface") + 1] == s.node_if and nd[nd.index("--public-ip") + 1] == "100.64.9.11"
    d = cmds["dns"]
    assert d[:4] == ["ip", "netns", "exec", s.node_netns("node-1")]
    assert d[d.index("--listen") + 1] == "100.64.9.10:53" and d[d.index("--upstream") + 1] == "192.0.2.53"
    for name, argv in cmds.items():
        assert s.layout.marker in " ".join(argv), name        # so `down` recognizes it as ours
    # host-gw: the full fabric MTU; --pod-cidr pins only the first node's
    s.backend, s.pod_cidr = "host-gw", "10.244.9.0/24"
    cmds = up.component_commands(s, python="py")
    k1, k2 = cmds["node-1/kubelet"], cmds["node-2/kubelet"]
    assert k1[k1.index("--cni-mtu") + 1] == "1500" and k1[k1.index("--pod-cidr") + 1] == "10.244.9.0/24"
    assert "--pod-cidr" not in k2
