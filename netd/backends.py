"""What the kernel of one node should hold for the pod network: pure functions of the Node objects.

Both backends answer the same question - how does a packet for another
node's pod range leave this node? - the two classic ways:

* **host-gw** (routed): nodes share one L2 segment (the fabric bridge), so a
  plain route per remote node is enough: ``podCIDR via <its node IP> dev IF``.
  Pod packets cross the fabric unencapsulated, so nothing costs MTU.
* **vxlan** (overlay): one ``flannel.<VNI>`` device per node; per remote node
  a permanent neighbour entry (its subnet address, i.e. its podCIDR's network
  address, -> its VTEP MAC), an FDB entry (that MAC -> its node IP, where the
  encapsulated UDP datagram goes) and the route ``podCIDR via <subnet address>
  dev flannel.1 onlink``. This is flannel's vxlan backend without its L2/L3
  miss handling: every entry is programmed up front from the Node objects.

A remote node takes part once it has ``spec.podCIDR`` and this backend's
annotations (flannel's keys): ``backend-type`` equal to ours, ``public-ip``,
and for vxlan ``backend-data`` with the ``VtepMAC``. Until then it is skipped
(its pods are not reachable from here yet, as with flannel). A remote node
whose podCIDR lies outside the cluster CIDR, overlaps our own, or one already taken by a node earlier in
name order, is skipped too: one destination, one route.

The result (``Desired``) is compared with what the kernel holds (``diff``);
everything here is pure so the unit tests cover it against ``FakeNetlink``.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from typing import Iterable

from nodeutil.netlink import FdbEntry, NeighEntry, RouteEntry

log = logging.getLogger(__name__)

HOST_GW, VXLAN = "host-gw", "vxlan"
BACKENDS = (HOST_GW, VXLAN)

# The routing-protocol number on every route netd makes (`ip route ... proto 75`): ownership is by this
# marker, as the proxy owns chains by prefix. 75 is in no iproute2 rt_protos table (0-4 are the kernel's,
# 8-18, 42, 99, 186-192 are taken by routing daemons; Calico uses 80).
RT_PROTO = 75

PREFIX = "flannel.alpha.coreos.com/"
BACKEND_TYPE = PREFIX + "backend-type"
BACKEND_DATA = PREFIX + "backend-data"
PUBLIC_IP = PREFIX + "public-ip"
KUBE_SUBNET_MANAGER = PREFIX + "kube-subnet-manager"
ANNOTATION_KEYS = (BACKEND_TYPE, BACKEND_DATA, PUBLIC_IP, KUBE_SUBNET_MANAGER)

CONDITION = "NetworkUnavailable"
REASON = "NetdIsUp"
MESSAGE = "pocketkube netd is running on this node"

VXLAN_OVERHEAD = 50      # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14


def vxlan_device(vni: int) -> str:
    """flannel's name for the device: ``flannel.<VNI>``."""
    return f"flannel.{vni}"


def vtep_mac(node_name: str, vni: int) -> str:
    """A stable VTEP MAC for a node: unicast, locally administered, from a hash of its name and VNI.

    flannel picks a random MAC and, after a restart, reuses the one stored in
    its Node's annotation. A MAC derived from the name gives the same answer
    without reading anything back, so a device recreated after a crash keeps
    the MAC every peer's neighbour entries point at. (A device that already
    exists keeps whatever MAC it has; the agent publishes the device's MAC.)
    """
    b = bytearray(hashlib.sha256(f"pocketkube-vtep/{node_name}/{vni}".encode()).digest()[:6])
    b[0] = (b[0] & 0xFE) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def internal_ip(node: dict) -> str | None:
    for a in ((node.get("status") or {}).get("addresses") or []):
        if a.get("type") == "InternalIP" and a.get("address"):
            return a["address"]
    return None


# Parsing is memoized: ipaddress is most of the cost of a sync, and at 1,000 Nodes every sync would parse
# a few thousand addresses that have not changed since the last one.
@functools.lru_cache(maxsize=16384)
def _network(cidr: str) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    return net if net.version == 4 else None


def pod_cidr(node: dict) -> str | None:
    cidr = (node.get("spec") or {}).get("podCIDR")
    net = _network(cidr) if isinstance(cidr, str) and cidr else None
    return str(net) if net is not None else None


@dataclass(frozen=True)
class Peer:
    """A remote node as the backends need it."""
    name: str
    pod_cidr: str
    public_ip: str
    vtep_mac: str | None = None

    @property
    def subnet_address(self) -> str:
        """The podCIDR's network address: the remote ``flannel.1``'s address, the vxlan route's gateway."""
        return self.pod_cidr.split("/")[0]       # pod_cidr is normalized: its address is the network's


def peer_from_node(node: dict, backend: str, vni: int) -> Peer | None:
    """The Peer for a Node, or None while it lacks what ``backend`` needs (see the module docstring)."""
    name = (node.get("metadata") or {}).get("name") or ""
    ann = (node.get("metadata") or {}).get("annotations") or {}
    cidr = pod_cidr(node)
    if not cidr or ann.get(BACKEND_TYPE) != backend:
        return None
    return _peer(name, cidr, str(ann.get(PUBLIC_IP) or ""), str(ann.get(BACKEND_DATA) or "null"), backend, vni)


@functools.lru_cache(maxsize=16384)
def _peer(name: str, cidr: str, public_ip: str, backend_data: str, backend: str, vni: int) -> Peer | None:
    try:
        public_ip = str(ipaddress.IPv4Address(public_ip))
    except ValueError:
        return None
    if backend == HOST_GW:
        return Peer(name, cidr, public_ip)
    try:
        data = json.loads(backend_data) or {}
        mac = str(data["VtepMAC"]).lower()
        if int(data.get("VNI", vni)) != vni or len(bytes.fromhex(mac.replace(":", ""))) != 6:
            return None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return Peer(name, cidr, public_ip, mac)


def peers(nodes: Iterable[dict], own_name: str, own_cidr: str | None, backend: str, vni: int,
          cluster_cidr: str | None = None) -> list[Peer]:
    """The remote nodes that take part, in name order (the own node and unusable ones skipped; with
    ``cluster_cidr``, also a podCIDR outside it: netd routes the cluster's pod range, nothing else)."""
    own_net = ipaddress.ip_network(own_cidr) if own_cidr else None
    cluster = ipaddress.ip_network(cluster_cidr) if cluster_cidr else None
    out: list[Peer] = []
    taken = _Taken()
    for node in sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name") or ""):
        p = peer_from_node(node, backend, vni)
        if p is None or p.name == own_name:
            continue
        net = _network(p.pod_cidr)
        if cluster is not None and not net.subnet_of(cluster):
            log.warning("node %s: podCIDR %s is outside the cluster CIDR %s; skipped", p.name, p.pod_cidr, cluster)
            continue
        if own_net is not None and net.overlaps(own_net):
            log.warning("node %s: podCIDR %s overlaps this node's %s; skipped", p.name, p.pod_cidr, own_cidr)
            continue
        clash = taken.overlapping(net)
        if clash is not None:
            log.warning("node %s: podCIDR %s overlaps node %s's; skipped", p.name, p.pod_cidr, clash)
            continue
        taken.add(net, p.name)
        out.append(p)
    return out


class _Taken:
    """IPv4 networks by prefix length, for an overlap check in O(distinct prefix lengths) (a pairwise check
    is quadratic: half a second at 1,000 Nodes, on every sync)."""

    def __init__(self) -> None:
        self.by_len: dict[int, dict[int, str]] = {}

    def add(self, net: ipaddress.IPv4Network, name: str) -> None:
        self.by_len.setdefault(net.prefixlen, {})[int(net.network_address) >> (32 - net.prefixlen)] = name

    def overlapping(self, net: ipaddress.IPv4Network) -> str | None:
        addr, p = int(net.network_address), net.prefixlen
        for q, nets in self.by_len.items():
            if q <= p:                    # a taken network as large or larger: is ours inside it?
                hit = nets.get(addr >> (32 - q))
                if hit is not None:
                    return hit
            else:                         # smaller taken networks (mixed mask sizes: rare): any inside ours?
                top = addr >> (32 - p)
                for bits, name in nets.items():
                    if bits >> (q - p) == top:
                        return name
        return None


@dataclass
class State:
    """Kernel state netd owns: routes by destination, neighbours by (dev, ip), FDB entries as a set."""
    routes: dict[str, RouteEntry] = field(default_factory=dict)
    neighs: dict[tuple[str, str], NeighEntry] = field(default_factory=dict)
    fdbs: set[FdbEntry] = field(default_factory=set)

    @classmethod
    def of(cls, routes: Iterable[RouteEntry] = (), neighs: Iterable[NeighEntry] = (),
           fdbs: Iterable[FdbEntry] = ()) -> "State":
        return cls({r.dst: r for r in routes}, {(n.dev, n.ip): n for n in neighs}, set(fdbs))

    def copy(self) -> "State":
        return State(dict(self.routes), dict(self.neighs), set(self.fdbs))


def host_gw_desired(peer_list: Iterable[Peer], iface: str) -> State:
    return State.of(routes=[RouteEntry(p.pod_cidr, p.public_ip, iface) for p in peer_list])


def vxlan_desired(peer_list: Iterable[Peer], dev: str) -> State:
    ps = [p for p in peer_list if p.vtep_mac]
    return State.of(
        routes=[RouteEntry(p.pod_cidr, p.subnet_address, dev, onlink=True) for p in ps],
        neighs=[NeighEntry(dev, p.subnet_address, p.vtep_mac) for p in ps],
        fdbs=[FdbEntry(dev, p.vtep_mac, p.public_ip) for p in ps])


def desired(backend: str, peer_list: Iterable[Peer], *, iface: str, vni: int) -> State:
    if backend == HOST_GW:
        return host_gw_desired(peer_list, iface)
    return vxlan_desired(peer_list, vxlan_device(vni))


@dataclass
class Plan:
    """The writes taking the kernel from one State to another, in a safe order (see ``steps``)."""
    del_routes: list[RouteEntry] = field(default_factory=list)
    del_neighs: list[NeighEntry] = field(default_factory=list)
    del_fdbs: list[FdbEntry] = field(default_factory=list)
    add_fdbs: list[FdbEntry] = field(default_factory=list)
    add_neighs: list[NeighEntry] = field(default_factory=list)
    set_routes: list[RouteEntry] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(x) for x in (self.del_routes, self.del_neighs, self.del_fdbs, self.add_fdbs,
                                    self.add_neighs, self.set_routes))

    def counts(self) -> dict[str, int]:
        return {"routes_set": len(self.set_routes), "routes_deleted": len(self.del_routes),
                "neigh_set": len(self.add_neighs), "neigh_deleted": len(self.del_neighs),
                "fdb_added": len(self.add_fdbs), "fdb_deleted": len(self.del_fdbs)}


def diff(want: State, have: State) -> Plan:
    """Only the difference: an entry equal in both is not touched (a restart adopts what is there).

    Order of ``Plan``: routes away first (no route points at a neighbour about
    to go), then neighbours and FDB entries, new FDB/neighbour entries before
    the routes that use them.
    """
    return Plan(
        del_routes=[r for d, r in sorted(have.routes.items()) if d not in want.routes],
        del_neighs=[n for k, n in sorted(have.neighs.items()) if k not in want.neighs],
        del_fdbs=sorted(have.fdbs - want.fdbs, key=lambda e: (e.dev, e.mac, e.dst)),
        add_fdbs=sorted(want.fdbs - have.fdbs, key=lambda e: (e.dev, e.mac, e.dst)),
        add_neighs=[n for k, n in sorted(want.neighs.items()) if have.neighs.get(k) != n],
        set_routes=[r for d, r in sorted(want.routes.items()) if have.routes.get(d) != r],
    )


# ------------------------------------------------------------- what netd publishes
def own_annotations(backend: str, public_ip: str, *, vni: int, mac: str | None) -> dict[str, str]:
    """flannel's annotations for this node (backend-data ``null`` for host-gw, as flannel writes it)."""
    data = json.dumps({"VNI": vni, "VtepMAC": mac}, separators=(",", ":")) if backend == VXLAN else "null"
    return {BACKEND_TYPE: backend, BACKEND_DATA: data, PUBLIC_IP: public_ip, KUBE_SUBNET_MANAGER: "true"}


def published(node: dict, annotations: dict[str, str]) -> bool:
    """True when ``node`` already carries ``annotations`` and NetworkUnavailable=False from netd."""
    ann = (node.get("metadata") or {}).get("annotations") or {}
    if any(ann.get(k) != v for k, v in annotations.items()):
        return False
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == CONDITION:
            return c.get("status") == "False" and c.get("reason") == REASON
    return False


def status_patch(annotations: dict[str, str], now: str) -> dict:
    """The strategic-merge patch of ``nodes/status``: annotations merged key by key, the condition merged by
    type (so the kubelet's Ready and the other conditions stay as they are)."""
    return {
        "metadata": {"annotations": dict(annotations)},
        "status": {"conditions": [{
            "type": CONDITION, "status": "False", "reason": REASON, "message": MESSAGE,
            "lastTransitionTime": now, "lastHeartbeatTime": now,
        }]},
    }


__all__ = ["HOST_GW", "VXLAN", "BACKENDS", "RT_PROTO", "Peer", "State", "Plan", "peers", "peer_from_node",
           "desired", "host_gw_desired", "vxlan_desired", "diff", "own_annotations", "published", "status_patch",
           "vtep_mac", "vxlan_device", "internal_ip", "pod_cidr", "VXLAN_OVERHEAD"]
