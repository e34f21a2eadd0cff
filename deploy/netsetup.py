"""The node's network, as small idempotent ``ensure_*`` steps and their undo.

Layout (DESIGN.md "Network layout"; defaults shown)::

    machine's namespace                          node namespace pk-<id>-node
    pkh<id> 100.64.0.1/24  ──── veth ────  pkn<id> 100.64.0.2/24
    [routes 10.244.1.0/24, 10.96.0.0/12          cni0 10.244.1.1/24 (bridge; pods plug in here)
     via 100.64.0.2, unless --no-host-routes]    route 10.96.0.0/12 dev cni0
                                                 ip_forward=1, send_redirects=0
                                                 nat POSTROUTING -s 10.244.1.0/24 -o pkn<id> MASQUERADE

The safety rules hold by construction: the node namespace has no default
route (nothing it does can leave the namespaces made here) unless the user
asks for ``--egress``; the only rules ever added in the machine's own
namespace are the ``--egress`` ones, each tagged with the comment
``pocketkube pk-<id>`` and removed by exact spec on ``down``.

The masquerade inside the node namespace makes pods reach the host end of
the link (the API server behind ``default/kubernetes``) as the node's
address, so the host needs no route back to the pod CIDR for that; with
``--egress`` the same rule, a default route and the host-side masquerade
of the node's address give pods the outside world.

Every step runs through the ``System`` seam, so the exact commands are
unit-tested with ``FakeSystem``; each step checks before it changes, so
running ``up`` twice changes nothing the second time, and each undo step
tolerates "already gone".
"""
from __future__ import annotations

import ipaddress
import json

from deploy.state import Settings
from deploy.system import System


def comment(s: Settings) -> str:
    return f"pocketkube {s.netns}"


def _nsexec(s: Settings, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", s.netns, *argv]


# ----------------------------------------------------------------- ensure_*
def ensure_netns(sys: System, s: Settings) -> None:
    if not sys.exists(f"/run/netns/{s.netns}"):
        sys.run(["ip", "netns", "add", s.netns])


def link_exists(sys: System, name: str, netns: str | None = None) -> bool:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return sys.run(argv, check=False).ok


def ensure_link(sys: System, s: Settings) -> None:
    if not link_exists(sys, s.host_if):
        sys.run(["ip", "link", "add", s.host_if, "type", "veth", "peer", "name", s.node_if, "netns", s.netns])
    sys.run(["ip", "addr", "replace", f"{s.host_ip}/{s.prefixlen}", "dev", s.host_if])
    sys.run(["ip", "link", "set", s.host_if, "up"])
    sys.run(["ip", "-n", s.netns, "link", "set", "lo", "up"])
    sys.run(["ip", "-n", s.netns, "addr", "replace", f"{s.node_ip}/{s.prefixlen}", "dev", s.node_if])
    sys.run(["ip", "-n", s.netns, "link", "set", s.node_if, "up"])


NODE_SYSCTLS = (
    ("net/ipv4/ip_forward", "1"),
    # traffic to a cluster IP comes in and goes out on cni0: redirects would mislead pods
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/default/send_redirects", "0"),
)


def ensure_node_sysctls(sys: System, s: Settings) -> None:
    # /proc/sys/net shows the network namespace of the process that opens it, so a
    # shell entered into the node namespace sets the node's values, not the machine's.
    script = " && ".join(f"echo {v} > /proc/sys/{k}" for k, v in NODE_SYSCTLS)
    sys.run(["nsenter", f"--net=/run/netns/{s.netns}", "--", "sh", "-c", script])


def ensure_bridge(sys: System, s: Settings) -> None:
    """cni0 with the pod gateway (the kubelet's CNI plugin adopts it) and the service CIDR onto it."""
    pod_net = ipaddress.ip_network(s.pod_cidr)
    if not link_exists(sys, "cni0", s.netns):
        sys.run(["ip", "-n", s.netns, "link", "add", "cni0", "type", "bridge"])
    sys.run(["ip", "-n", s.netns, "addr", "replace", f"{s.gateway}/{pod_net.prefixlen}", "dev", "cni0"])
    sys.run(["ip", "-n", s.netns, "link", "set", "cni0", "up"])
    # A real node has a default route; without one, traffic to a cluster IP that has no
    # endpoints must still reach the proxy's REJECT instead of failing routing.
    sys.run(["ip", "-n", s.netns, "route", "replace", s.service_cidr, "dev", "cni0"])


def node_masquerade_spec(s: Settings) -> list[str]:
    return ["-s", s.pod_cidr, "-o", s.node_if, "-m", "comment", "--comment", comment(s), "-j", "MASQUERADE"]


def ensure_node_masquerade(sys: System, s: Settings) -> None:
    spec = node_masquerade_spec(s)
    if not sys.run(_nsexec(s, "iptables", "-w", "-t", "nat", "-C", "POSTROUTING", *spec), check=False).ok:
        sys.run(_nsexec(s, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", *spec))


def host_route_cidrs(s: Settings) -> list[str]:
    return [s.pod_cidr, s.service_cidr]


def _route_dev(sys: System, cidr: str) -> str | None:
    r = sys.run(["ip", "-j", "route", "show", "exact", cidr], check=False)
    try:
        items = json.loads(r.stdout or "[]") if r.ok else []
    except ValueError:
        items = []
    return items[0].get("dev") if items else None


def ensure_host_routes(sys: System, s: Settings, record) -> None:
    """Routes in the machine's namespace to the pod and service CIDRs via the node; ``record(cidr)`` each."""
    for cidr in host_route_cidrs(s):
        if _route_dev(sys, cidr) == s.host_if:
            record(cidr)
            continue
        sys.run(["ip", "route", "add", cidr, "via", s.node_ip, "dev", s.host_if])
        record(cidr)


# ------------------------------------------------------------------ egress
def upstream_nameservers(resolv_texts: list[str]) -> list[str]:
    """Usable upstream resolvers: the first resolv.conf (in order given) with a non-loopback nameserver."""
    for text in resolv_texts:
        found = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                try:
                    ip = ipaddress.ip_address(parts[1].split("%")[0])
                except ValueError:
                    continue
                if ip.version == 4 and not ip.is_loopback and not ip.is_unspecified:
                    found.append(str(ip))
        if found:
            return found
    return []


def egress_host_rules(s: Settings) -> list[list[str]]:
    """The rules ``--egress`` adds in the machine's namespace: ``[table, chain, position, spec...]``."""
    c = ["-m", "comment", "--comment", comment(s)]
    return [
        ["nat", "POSTROUTING", "A", "-s", f"{s.node_ip}/32", "!", "-o", s.host_if, *c, "-j", "MASQUERADE"],
        ["filter", "FORWARD", "I", "-i", s.host_if, *c, "-j", "ACCEPT"],
        ["filter", "FORWARD", "I", "-o", s.host_if, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *c,
         "-j", "ACCEPT"],
    ]


def egress_plan(s: Settings) -> list[list[str]]:
    """Every command ``--egress`` runs (for ``--dry-run`` and tests), in order."""
    cmds = [["ip", "-n", s.netns, "route", "replace", "default", "via", s.host_ip, "dev", s.node_if],
            ["sysctl", "-qw", "net.ipv4.ip_forward=1"]]
    for table, chain, pos, *spec in egress_host_rules(s):
        cmds.append(["iptables", "-w", "-t", table, f"-{pos}", chain, *spec])
    return cmds


def read_ip_forward(sys: System) -> str:
    r = sys.run(["cat", "/proc/sys/net/ipv4/ip_forward"], check=False)
    return r.stdout.strip() if r.ok else ""


def ensure_egress(sys: System, s: Settings, record) -> None:
    """Give pods the outside world. ``record(dict)`` saves what was done before each change, for ``down``."""
    applied = dict(s.egress_applied)
    applied.setdefault("rules", [])
    sys.run(["ip", "-n", s.netns, "route", "replace", "default", "via", s.host_ip, "dev", s.node_if])
    before = read_ip_forward(sys)
    if before != "1" and "ip_forward_was" not in applied:
        applied["ip_forward_was"] = before or "0"
        record(applied)
        sys.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    for table, chain, pos, *spec in egress_host_rules(s):
        if sys.run(["iptables", "-w", "-t", table, "-C", chain, *spec], check=False).ok:
            continue
        rule = [table, chain, *spec]
        if rule not in applied["rules"]:
            applied["rules"].append(rule)
        record(applied)
        if pos == "I":
            sys.run(["iptables", "-w", "-t", table, "-I", chain, "1", *spec])
        else:
            sys.run(["iptables", "-w", "-t", table, "-A", chain, *spec])
    record(applied)


def remove_egress(sys: System, s: Settings) -> list[str]:
    """Delete exactly the rules ``ensure_egress`` recorded; put ip_forward back if no other cluster needs it."""
    done = []
    applied = s.egress_applied or {}
    for table, chain, *spec in applied.get("rules", []):
        for _ in range(10):          # a rule added twice by hand-editing is removed twice
            if not sys.run(["iptables", "-w", "-t", table, "-D", chain, *spec], check=False).ok:
                break
            done.append(f"iptables -t {table} {chain} rule ({comment(s)})")
    was = applied.get("ip_forward_was")
    if was is not None and was != "1":
        others = sys.run(["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"], check=False).stdout
        if "pocketkube pk-" not in others:
            sys.run(["sysctl", "-qw", f"net.ipv4.ip_forward={was}"], check=False)
            done.append(f"net.ipv4.ip_forward back to {was}")
    return done


# ------------------------------------------------------------------- undo
def remove_host_routes(sys: System, s: Settings) -> list[str]:
    done = []
    for cidr in s.host_routes_added:
        if _route_dev(sys, cidr) == s.host_if:
            sys.run(["ip", "route", "del", cidr, "via", s.node_ip, "dev", s.host_if], check=False)
            done.append(f"route {cidr}")
    return done


def remove_link(sys: System, s: Settings) -> list[str]:
    if link_exists(sys, s.host_if):
        sys.run(["ip", "link", "del", s.host_if], check=False)
        return [f"link {s.host_if}"]
    return []


def remove_netns(sys: System, s: Settings) -> list[str]:
    if sys.exists(f"/run/netns/{s.netns}"):
        sys.run(["ip", "netns", "del", s.netns])
        return [f"namespace {s.netns}"]
    return []


def setup_node_network(sys: System, s: Settings) -> None:
    """All node-side steps, in order (host routes and egress are separate: they are optional)."""
    ensure_netns(sys, s)
    ensure_link(sys, s)
    ensure_node_sysctls(sys, s)
    ensure_bridge(sys, s)
    ensure_node_masquerade(sys, s)
