"""The cluster's network, as small idempotent ``ensure_*`` steps and their undo.

Layout (DESIGN.md "Network layout"; defaults shown, ``<id>`` from the data dir)::

    machine's namespace            fabric namespace pk-<id>-fabric          node namespace pk-<id>-node-1
    pkh<id> 100.64.0.1/24 ──veth── host ─┐                                  pkn<id> 100.64.0.2/24
    [routes 10.96.0.0/12 via .2,         br-fabric (bridge, no address) ┬── node1 ──veth── (one per node)
     each node's podCIDR via its IP,                                    ├── node2 ──veth── pkn<id> .3 in pk-<id>-node-2
     unless --no-host-routes]                                           └── ...
                                   each node namespace: cni0 (made by the kubelet's CNI plugin at the
                                   first pod, gateway = first address of the Node's podCIDR)
                                   route 10.96.0.0/12 dev pkn<id>; ip_forward=1, send_redirects=0
                                   nat POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -o pkn<id> MASQUERADE
                                   routes to the other nodes' pods: the network agent (`pocketkube netd`)

Why a fabric namespace: the nodes need one L2 segment (host-gw routes a
podCIDR via a node's address, VXLAN sends to it), and the bridge must not
live in the machine's namespace: br_netfilter is built into this kernel
with ``bridge-nf-call-iptables=1`` there, so bridged node traffic would
cross the machine's own iptables. The fabric namespace has no address and
no forwarding; it only bridges. The machine reaches every node directly on
the segment and never forwards between nodes.

The safety rules hold by construction: node namespaces have no default
route (nothing they do can leave the namespaces made here) unless the user
asks for ``--egress``; the only rules ever added in the machine's own
namespace are the ``--egress`` ones, each tagged with the comment
``pocketkube pk-<id>`` and removed by exact spec on ``down``.

The masquerade in each node namespace makes pods reach addresses outside
the cluster CIDR (the host end, where the API server listens; other nodes'
addresses) as their node, and never touches pod-to-pod traffic across nodes
(``! -d clusterCIDR``), which the agent routes unNATed. It names the cluster
CIDR, not the node's podCIDR, because the podCIDR is only known once the
controller-manager has assigned it; only pods' addresses are in that range.
The service CIDR is routed onto the fabric interface for the same reason
(there is no cni0 before the first pod): a real node has a default route,
and without one, traffic to a cluster IP must still reach the proxy's DNAT
or REJECT instead of failing routing.

Every step runs through the ``System`` seam, so the exact commands are
unit-tested with ``FakeSystem``; each step checks before it changes, so
running ``up`` twice changes nothing the second time, and each undo step
tolerates "already gone".
"""
from __future__ import annotations

import ipaddress
import json

from deploy.state import FABRIC_BRIDGE, FABRIC_MTU, Settings
from deploy.system import System


def comment(s: Settings, node: str | None = None) -> str:
    return f"pocketkube pk-{s.id}" + (f"-{node}" if node else "")


def _nsexec(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


# ----------------------------------------------------------------- ensure_*
def ensure_netns_named(sys: System, ns: str) -> None:
    if not sys.exists(f"/run/netns/{ns}"):
        sys.run(["ip", "netns", "add", ns])


def link_exists(sys: System, name: str, netns: str | None = None) -> bool:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return sys.run(argv, check=False).ok


def ensure_fabric(sys: System, s: Settings) -> None:
    """The fabric namespace and bridge, and the machine's veth into it (host end = the API server's address)."""
    f = s.fabric_ns
    ensure_netns_named(sys, f)
    if not link_exists(sys, FABRIC_BRIDGE, f):
        sys.run(["ip", "-n", f, "link", "add", FABRIC_BRIDGE, "mtu", str(FABRIC_MTU), "type", "bridge"])
    sys.run(["ip", "-n", f, "link", "set", FABRIC_BRIDGE, "up"])
    if not link_exists(sys, s.host_if):
        sys.run(["ip", "link", "add", s.host_if, "mtu", str(FABRIC_MTU), "type", "veth", "peer", "name",
                 s.HOST_PORT, "netns", f])
    sys.run(["ip", "-n", f, "link", "set", s.HOST_PORT, "master", FABRIC_BRIDGE, "up"])
    sys.run(["ip", "addr", "replace", f"{s.host_ip}/{s.prefixlen}", "dev", s.host_if])
    sys.run(["ip", "link", "set", s.host_if, "up"])


def ensure_node_link(sys: System, s: Settings, node: str) -> None:
    """Node namespace + its one veth into the fabric bridge, with the node's address."""
    ns, f = s.node_netns(node), s.fabric_ns
    port = s.fabric_port(int(s.node(node)["index"]))
    ensure_netns_named(sys, ns)
    if not link_exists(sys, port, f):
        sys.run(["ip", "-n", f, "link", "add", port, "mtu", str(FABRIC_MTU), "type", "veth", "peer", "name",
                 s.node_if, "netns", ns])
    sys.run(["ip", "-n", f, "link", "set", port, "master", FABRIC_BRIDGE, "up"])
    sys.run(["ip", "-n", ns, "link", "set", "lo", "up"])
    sys.run(["ip", "-n", ns, "addr", "replace", f"{s.ip_of(node)}/{s.prefixlen}", "dev", s.node_if])
    sys.run(["ip", "-n", ns, "link", "set", s.node_if, "up"])


NODE_SYSCTLS = (
    ("net/ipv4/ip_forward", "1"),
    # traffic to a cluster IP comes in and goes out on cni0: redirects would mislead pods
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/default/send_redirects", "0"),
)


def ensure_node_sysctls(sys: System, s: Settings, node: str) -> None:
    # /proc/sys/net shows the network namespace of the process that opens it, so a
    # shell entered into the node namespace sets the node's values, not the machine's.
    script = " && ".join(f"echo {v} > /proc/sys/{k}" for k, v in NODE_SYSCTLS)
    sys.run(["nsenter", f"--net=/run/netns/{s.node_netns(node)}", "--", "sh", "-c", script])


def ensure_service_route(sys: System, s: Settings, node: str) -> None:
    sys.run(["ip", "-n", s.node_netns(node), "route", "replace", s.service_cidr, "dev", s.node_if])


def node_masquerade_spec(s: Settings, node: str) -> list[str]:
    return ["-s", s.cluster_cidr, "!", "-d", s.cluster_cidr, "-o", s.node_if, "-m", "comment", "--comment",
            comment(s, node), "-j", "MASQUERADE"]


def ensure_node_masquerade(sys: System, s: Settings, node: str) -> None:
    ns = s.node_netns(node)
    spec = node_masquerade_spec(s, node)
    if not sys.run(_nsexec(ns, "iptables", "-w", "-t", "nat", "-C", "POSTROUTING", *spec), check=False).ok:
        sys.run(_nsexec(ns, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", *spec))


def setup_node(sys: System, s: Settings, node: str) -> None:
    """One node's steps, in order (the fabric must exist)."""
    ensure_node_link(sys, s, node)
    ensure_node_sysctls(sys, s, node)
    ensure_service_route(sys, s, node)
    ensure_node_masquerade(sys, s, node)


def setup_network(sys: System, s: Settings) -> None:
    """The fabric and every node (host routes and egress are separate: they are optional)."""
    ensure_fabric(sys, s)
    for node in s.node_names:
        setup_node(sys, s, node)


# ------------------------------------------------------------- host routes
def route_entry(cidr: str, via: str) -> str:
    return f"{cidr} via {via}"


def parse_route_entry(s: Settings, entry: str) -> tuple[str, str]:
    """``"CIDR via IP"``; a bare CIDR (a version-1 state) went via the first node."""
    parts = entry.split()
    if len(parts) == 3 and parts[1] == "via":
        return parts[0], parts[2]
    return parts[0], s.node_ip


def _route_dev(sys: System, cidr: str) -> str | None:
    r = sys.run(["ip", "-j", "route", "show", "exact", cidr], check=False)
    try:
        items = json.loads(r.stdout or "[]") if r.ok else []
    except ValueError:
        items = []
    return items[0].get("dev") if items else None


def ensure_host_route(sys: System, s: Settings, cidr: str, via: str, record) -> None:
    """A route in the machine's namespace to ``cidr`` via a node; ``record("CIDR via IP")`` before adding."""
    entry = route_entry(cidr, via)
    record(entry)
    if _route_dev(sys, cidr) == s.host_if:
        sys.run(["ip", "route", "replace", cidr, "via", via, "dev", s.host_if])
        return
    sys.run(["ip", "route", "add", cidr, "via", via, "dev", s.host_if])


def host_route_plan(s: Settings, pod_cidrs: dict[str, str]) -> list[tuple[str, str]]:
    """(cidr, via) for the service CIDR (via the first node, where DNS runs too) and each known podCIDR."""
    out = [(s.service_cidr, s.node_ip)]
    for node in s.node_names:
        if pod_cidrs.get(node):
            out.append((pod_cidrs[node], s.ip_of(node)))
    return out


def ensure_host_routes(sys: System, s: Settings, pod_cidrs: dict[str, str], record) -> None:
    for cidr, via in host_route_plan(s, pod_cidrs):
        ensure_host_route(sys, s, cidr, via, record)


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
        ["nat", "POSTROUTING", "A", "-s", s.node_network, "!", "-o", s.host_if, *c, "-j", "MASQUERADE"],
        ["filter", "FORWARD", "I", "-i", s.host_if, *c, "-j", "ACCEPT"],
        ["filter", "FORWARD", "I", "-o", s.host_if, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *c,
         "-j", "ACCEPT"],
    ]


def egress_plan(s: Settings) -> list[list[str]]:
    """Every command ``--egress`` runs (for ``--dry-run`` and tests), in order."""
    cmds = [egress_default_route(s, n) for n in s.node_names]
    cmds.append(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    for table, chain, pos, *spec in egress_host_rules(s):
        cmds.append(["iptables", "-w", "-t", table, f"-{pos}", chain, *spec])
    return cmds


def egress_default_route(s: Settings, node: str) -> list[str]:
    return ["ip", "-n", s.node_netns(node), "route", "replace", "default", "via", s.host_ip, "dev", s.node_if]


def read_ip_forward(sys: System) -> str:
    r = sys.run(["cat", "/proc/sys/net/ipv4/ip_forward"], check=False)
    return r.stdout.strip() if r.ok else ""


def ensure_egress(sys: System, s: Settings, record) -> None:
    """Give pods the outside world. ``record(dict)`` saves what was done before each change, for ``down``."""
    applied = dict(s.egress_applied)
    applied.setdefault("rules", [])
    for node in s.node_names:
        sys.run(egress_default_route(s, node))
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
def remove_host_route(sys: System, s: Settings, entry: str) -> list[str]:
    cidr, via = parse_route_entry(s, entry)
    if _route_dev(sys, cidr) == s.host_if:
        sys.run(["ip", "route", "del", cidr, "via", via, "dev", s.host_if], check=False)
        return [f"route {cidr}"]
    return []


def remove_host_routes(sys: System, s: Settings) -> list[str]:
    done = []
    for entry in s.host_routes_added:
        done += remove_host_route(sys, s, entry)
    return done


def remove_netns_named(sys: System, ns: str) -> list[str]:
    if sys.exists(f"/run/netns/{ns}"):
        sys.run(["ip", "netns", "del", ns])
        return [f"namespace {ns}"]
    return []


def remove_node(sys: System, s: Settings, node: str, index: int) -> list[str]:
    """A node's namespace (its end of the veth goes with it) and, should it be left, the fabric end."""
    done = remove_netns_named(sys, s.node_netns(node))
    port = s.fabric_port(index)
    if sys.exists(f"/run/netns/{s.fabric_ns}") and link_exists(sys, port, s.fabric_ns):
        sys.run(["ip", "-n", s.fabric_ns, "link", "del", port], check=False)
        done.append(f"fabric port {port}")
    return done


def remove_fabric(sys: System, s: Settings) -> list[str]:
    done = []
    if link_exists(sys, s.host_if):
        sys.run(["ip", "link", "del", s.host_if], check=False)
        done.append(f"link {s.host_if}")
    return done + remove_netns_named(sys, s.fabric_ns)


def cluster_namespaces(sys: System, s: Settings) -> list[str]:
    """Every namespace named for this cluster (``pk-<id>-*``), listed by ``ip netns list``: what `down` removes
    even when state.json forgot a node (a `node add` that died half-way)."""
    r = sys.run(["ip", "netns", "list"], check=False)
    prefix = f"pk-{s.id}-"
    return [line.split()[0] for line in (r.stdout or "").splitlines() if line.split() and
            line.split()[0].startswith(prefix)]
