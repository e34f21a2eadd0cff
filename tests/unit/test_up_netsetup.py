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


def test_setup_node_network_commands(tmp_path):
    s = S(tmp_path)
    fs = fresh()
    fs.responses[f"ip -n {s.netns} link show"] = Result(1)
    fs.responses[f"ip netns exec {s.netns} iptables -w -t nat -C"] = Result(1)
    netsetup.setup_node_network(fs, s)
    lines = fs.lines()
    n = s.netns
    for want in (f"ip netns add {n}",
                 f"ip link add {s.host_if} type veth peer name {s.node_if} netns {n}",
                 f"ip addr replace 100.64.9.9/29 dev {s.host_if}",
                 f"ip -n {n} addr replace 100.64.9.10/29 dev {s.node_if}",
                 f"ip -n {n} link add cni0 type bridge",
                 f"ip -n {n} addr replace 10.244.1.1/24 dev cni0",
                 f"ip -n {n} route replace 10.96.0.0/12 dev cni0",
                 f"ip netns exec {n} iptables -w -t nat -A POSTROUTING -s 10.244.1.0/24 -o {s.node_if} "
                 f"-m comment --comment pocketkube {n} -j MASQUERADE"):
        assert want in lines, want
    sysctl = next(c for c in fs.commands if c[0] == "nsenter")
    assert sysctl[1] == f"--net=/run/netns/{n}" and "ip_forward" in sysctl[-1] and "send_redirects" in sysctl[-1]
    # never a default route, never a rule in the machine's own namespace
    assert not any("route replace default" in line or "route add default" in line for line in lines)
    assert not any(line.startswith("iptables") for line in lines)


def test_setup_is_idempotent(tmp_path):
    s = S(tmp_path)
    fs = FakeSystem(paths={f"/run/netns/{s.netns}"})
    netsetup.setup_node_network(fs, s)
    checks = [line for line in fs.lines() if " link show " in line or " -C " in line]
    assert len(checks) == 3
    fs = FakeSystem(paths={f"/run/netns/{s.netns}"}, existing=set(checks))   # netns, links and rule exist
    netsetup.setup_node_network(fs, s)
    lines = fs.lines()
    assert not any(x in line for line in lines for x in ("netns add", "link add", " -A "))


def test_host_routes_are_recorded_and_removed_by_exact_spec(tmp_path):
    s = S(tmp_path)
    fs = fresh()
    got = []
    netsetup.ensure_host_routes(fs, s, got.append)
    assert got == ["10.244.1.0/24", "10.96.0.0/12"]
    assert f"ip route add 10.244.1.0/24 via 100.64.9.10 dev {s.host_if}" in fs.lines()
    # already ours: recorded, not re-added
    fs2 = FakeSystem(responses={"ip -j route show exact": Result(0, json.dumps([{"dev": s.host_if}]))})
    got2 = []
    netsetup.ensure_host_routes(fs2, s, got2.append)
    assert got2 == got and not any("route add" in line for line in fs2.lines())
    s.host_routes_added = got
    assert netsetup.remove_host_routes(fs2, s) == ["route 10.244.1.0/24", "route 10.96.0.0/12"]
    assert f"ip route del 10.96.0.0/12 via 100.64.9.10 dev {s.host_if}" in fs2.lines()
    # a route someone else owns now (another device) is left alone
    fs3 = FakeSystem(responses={"ip -j route show exact": Result(0, json.dumps([{"dev": "eth0"}]))})
    assert netsetup.remove_host_routes(fs3, s) == []


def test_egress_plan_is_tagged_and_scoped(tmp_path):
    s = S(tmp_path, egress=True)
    plan = [" ".join(c) for c in netsetup.egress_plan(s)]
    assert plan[0] == f"ip -n {s.netns} route replace default via 100.64.9.9 dev {s.node_if}"
    assert plan[1] == "sysctl -qw net.ipv4.ip_forward=1"
    assert plan[2] == (f"iptables -w -t nat -A POSTROUTING -s 100.64.9.10/32 ! -o {s.host_if} "
                       f"-m comment --comment pocketkube {s.netns} -j MASQUERADE")
    assert all(f"--comment pocketkube {s.netns}" in p for p in plan[2:]) and len(plan) == 5
    assert "-I FORWARD -i " + s.host_if in plan[3]
    # the dry-run plan of `up --egress` includes it; without --egress nothing touches the host's iptables
    assert any("MASQUERADE" in line and "-s 100.64.9.10/32" in line for line in up.plan(s))
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
    assert dels and all(f"pocketkube {s.netns}" in d for d in dels)
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
    s = S(tmp_path, port=16443)
    cmds = up.component_commands(s, python="py", upstreams=["192.0.2.53"])
    assert set(cmds) == {"apiserver", "controller-manager", "scheduler", "kubelet", "proxy", "dns"}
    api = cmds["apiserver"]
    assert api[api.index("--bind-address") + 1] == "127.0.0.1,100.64.9.9"      # never 0.0.0.0
    assert "--token-auth-file" in api and "--kubelet-token-file" in api and "--tls-cert-file" in api
    k = cmds["kubelet"]
    assert k[:3] == ["nsenter", f"--net=/run/netns/{s.netns}", "--"]        # not `ip netns exec` (/sys)
    assert k[k.index("--cgroup-root") + 1] == s.cgroup_root and k[k.index("--node-ip") + 1] == "100.64.9.10"
    assert cmds["proxy"][:4] == ["ip", "netns", "exec", s.netns]
    d = cmds["dns"]
    assert d[d.index("--listen") + 1] == "100.64.9.10:53" and d[d.index("--upstream") + 1] == "192.0.2.53"
    for name, argv in cmds.items():
        assert s.layout.marker in " ".join(argv), name        # so `down` recognizes it as ours
