"""The link-level kernel seam of node agents: a handful of idempotent link operations, real and fake.

Bridges, veth pairs, addresses and routes in the node's and in pods'
namespaces are what the CNI plugin (``kubelet.cni.plugin``) and the coming
network agents (host-gw routes, a VXLAN device) ask of the kernel. Their
logic (what to create, in which order, what to undo) stays with them;
everything they ask of the kernel goes through the small ``Netlink``
interface below, so unit tests run that logic without root against
``FakeNetlink``, and the real one is tested end to end.

The network agent (``netd``) adds the node-side state of a pod network:
routes marked with a routing-protocol number of its own (``ip route ...
proto N``; ownership is by that marker, as the proxy owns iptables chains by
prefix), a VXLAN device made in the calling namespace (a VXLAN device keeps
its UDP socket in the namespace that created it, so it is never created
elsewhere and moved), permanent neighbour entries and FDB entries on it, and
a link's MTU. Each read returns only what the agent owns, so a diff against
it never touches anyone else's routes or entries.

"Node namespace" means the network namespace of the calling thread (the
kubelet runs in its node's namespace); pod namespaces are given by path
(``/proc/<pid>/ns/net``, ``/var/run/netns/NAME``). The real implementation
talks rtnetlink through pyroute2. For a pod namespace it opens the netlink
socket from a short-lived thread that has ``setns``-ed into it (a socket stays
bound to the namespace it was created in, and ``setns`` affects only the
calling thread), rather than pyroute2's ``netns=`` which forks a helper
process - a poor idea inside the multi-threaded kubelet, and it would create a
missing namespace unless told not to.
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from nodeutil.rtnl import NetlinkError, RtnlSocket
from nodeutil.netns import socket_in_netns


class NetnsNotFound(Exception):
    """The pod network namespace path does not exist (any more)."""


@dataclass
class LinkInfo:
    name: str
    index: int = 0
    mac: str = ""
    kind: str = ""
    master: str | None = None
    hairpin: bool = False
    up: bool = False
    addresses: list[str] = field(default_factory=list)  # "10.244.1.5/24"


@dataclass(frozen=True)
class RouteEntry:
    """An IPv4 route of the main table: ``dst via gateway dev dev [onlink]``."""
    dst: str                      # "10.244.2.0/24"
    gateway: str | None
    dev: str
    onlink: bool = False


@dataclass(frozen=True)
class NeighEntry:
    """A permanent neighbour (ARP) entry: ``ip neigh replace ip lladdr mac dev dev nud permanent``."""
    dev: str
    ip: str
    mac: str


@dataclass(frozen=True)
class FdbEntry:
    """A VXLAN forwarding entry: ``bridge fdb append mac dev dev dst dst self permanent``."""
    dev: str
    mac: str
    dst: str


@dataclass(frozen=True)
class VxlanSpec:
    """What a VXLAN device should be: ``ip link add name type vxlan id vni local local dev dev dstport port
    nolearning`` with ``mtu``, ``mac``, and ``address`` (CIDR) as its only IPv4 address."""
    name: str
    vni: int
    port: int
    local: str
    dev: str
    mtu: int
    mac: str
    address: str


@dataclass
class VxlanInfo:
    name: str
    index: int
    mac: str
    vni: int
    port: int
    local: str | None
    dev: str | None
    learning: bool
    mtu: int
    up: bool
    addresses: list[str] = field(default_factory=list)

    def compatible(self, spec: VxlanSpec) -> bool:
        """True when the device can stay (what cannot change without recreating it is as ``spec`` says)."""
        return (self.vni, self.port, self.local, self.dev, self.learning) == (
            spec.vni, spec.port, spec.local, spec.dev, False)


class Netlink(Protocol):
    def ensure_bridge(self, name: str, address: str | None, mtu: int | None = None) -> LinkInfo:
        """Bridge ``name`` exists, is up and has ``address`` (CIDR, if given); tolerates any of it done already."""

    def enable_ip_forward(self) -> None:
        """net.ipv4.ip_forward=1 in the node namespace."""

    def link(self, name: str) -> LinkInfo | None:
        """A link of the node namespace, or None."""

    def add_veth(self, host_name: str, netns: str, ifname: str, mtu: int | None = None) -> tuple[LinkInfo, LinkInfo]:
        """A veth pair: ``host_name`` here, ``ifname`` in ``netns``; raises NetnsNotFound, FileExistsError."""

    def attach(self, host_name: str, bridge: str, hairpin: bool) -> None:
        """Enslave ``host_name`` to ``bridge``, set hairpin mode, bring it up."""

    def configure_pod(self, netns: str, ifname: str, address: str, routes: list[tuple[str, str | None]]) -> None:
        """In ``netns``: lo up, ``address`` on ``ifname``, ``ifname`` up, ``routes`` as (dst, gw)."""

    def pod_link(self, netns: str, ifname: str) -> LinkInfo | None:
        """``ifname`` in ``netns`` with its addresses, None if absent; raises NetnsNotFound."""

    def delete_link(self, name: str) -> bool:
        """Delete a node-namespace link; False if it was not there."""

    # -- the network agent's (netd) state, all in the node namespace
    def link_mtu(self, name: str) -> int | None:
        """The MTU of link ``name``, None if there is no such link."""

    def link_with_address(self, ip: str) -> str | None:
        """The name of the link holding IPv4 address ``ip``, None if none does."""

    def vxlan(self, name: str) -> VxlanInfo | None:
        """VXLAN device ``name`` as the kernel has it; None if absent; OSError(EEXIST) if it is another kind."""

    def ensure_vxlan(self, spec: VxlanSpec) -> VxlanInfo:
        """Device ``spec.name`` as in ``spec``, up, created in this namespace if absent; an incompatible one is
        recreated; MTU and address are corrected in place (a kept device keeps its MAC)."""

    def owned_routes(self, protocol: int) -> list[RouteEntry]:
        """The main table's IPv4 routes marked with ``protocol``."""

    def replace_route(self, route: RouteEntry, protocol: int) -> None:
        """``ip route replace ... proto protocol``."""

    def delete_route(self, route: RouteEntry, protocol: int) -> bool:
        """Delete a route marked ``protocol``; False if it was not there."""

    def neighbours(self, dev: str) -> list[NeighEntry]:
        """The permanent IPv4 neighbour entries on ``dev`` ([] if there is no such link)."""

    def replace_neighbour(self, neigh: NeighEntry) -> None:
        """A permanent neighbour entry (replacing one for the same address)."""

    def delete_neighbour(self, neigh: NeighEntry) -> bool:
        """False if it was not there."""

    def fdb_entries(self, dev: str) -> list[FdbEntry]:
        """The FDB entries with a remote (``dst``) on ``dev`` ([] if there is no such link)."""

    def add_fdb(self, entry: FdbEntry) -> None:
        """Append a remote for a MAC (idempotent)."""

    def delete_fdb(self, entry: FdbEntry) -> bool:
        """Remove one remote of a MAC; False if it was not there."""


# ---------------------------------------------------------------- real


def netns_socket(path: str) -> socket.socket:
    """An rtnetlink socket created inside the network namespace at ``path``."""
    try:
        # SOCK_DGRAM: pyroute2 hands adopted sockets to asyncio's datagram transport.
        return socket_in_netns(path, socket.AF_NETLINK, socket.SOCK_DGRAM)
    except FileNotFoundError:
        raise NetnsNotFound(path) from None


def _random_mac() -> str:
    """A random unicast, locally administered MAC (what the kernel picks for a veth without one)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFE) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def bridge_mac(address: str) -> str:
    """``0a:58:`` + the IPv4 address in hex (the convention of Kubernetes network plugins)."""
    ip = ipaddress.ip_interface(address).ip.packed
    return "0a:58:" + ":".join(f"{b:02x}" for b in ip)


def _is_errno(e: BaseException, *codes: int) -> bool:
    return getattr(e, "code", None) in codes or getattr(e, "errno", None) in codes


class RealNetlink:
    """``Netlink`` on pyroute2, safe from many threads.

    Each thread keeps its rtnetlink sockets in the node namespace (a pyroute2
    ``IPRoute``, and the lean ``rtnl.RtnlSocket`` of the ADD path): opening an
    ``IPRoute`` costs ~2 ms of CPU. Sockets in a pod namespace are opened per
    call, from a thread that entered it (``netns_socket``), and closed after
    it: a netlink socket keeps its namespace alive, and a kept one would hold a
    deleted pod's namespace until the thread's next call. A socket that saw an
    error is dropped, so the next call starts clean.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def _socket(self, slot: str, netns: str | None, open_node, open_pod, answered: tuple = ()):
        """A per-thread socket kept in ``slot`` (node namespace), or one opened for this call and closed after
        it (pod namespace ``netns``). A kept socket is dropped on any error but the ``answered`` ones."""
        if netns is not None:
            sock = open_pod(netns)
            try:
                yield sock
            finally:
                sock.close()
            return
        sock = getattr(self._local, slot, None)
        if sock is None:
            sock = open_node()
            setattr(self._local, slot, sock)
        try:
            yield sock
        except answered:
            raise                         # an answered request: the socket is still in step
        except BaseException:
            setattr(self._local, slot, None)
            sock.close()
            raise

    def _ipr(self, netns: str | None = None):
        from pyroute2 import IPRoute

        return self._socket("ipr", netns, IPRoute, lambda path: IPRoute(fileno=netns_socket(path).detach()))

    @staticmethod
    def _index(ipr, name: str) -> int | None:
        """A link's index by name with one targeted request (``link_lookup`` dumps every link)."""
        try:
            return ipr.link("get", ifname=name)[0]["index"]
        except Exception as e:  # noqa: BLE001
            if _is_errno(e, errno.ENODEV):
                return None
            raise

    @staticmethod
    def _info(ipr, msg) -> LinkInfo:
        linkinfo = msg.get_attr("IFLA_LINKINFO")
        kind, hairpin = "", False
        if linkinfo is not None:
            kind = linkinfo.get_attr("IFLA_INFO_KIND") or ""
            slave = linkinfo.get_attr("IFLA_INFO_SLAVE_DATA")
            if slave is not None:
                hairpin = bool(slave.get_attr("IFLA_BRPORT_MODE"))
        master = None
        master_idx = msg.get_attr("IFLA_MASTER")
        if master_idx:
            m = ipr.get_links(master_idx)
            master = m[0].get_attr("IFLA_IFNAME") if m else None
        addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                 for a in ipr.get_addr(family=socket.AF_INET, index=msg["index"])]
        return LinkInfo(name=msg.get_attr("IFLA_IFNAME"), index=msg["index"], mac=msg.get_attr("IFLA_ADDRESS") or "",
                        kind=kind, master=master, hairpin=hairpin, up=bool(msg["flags"] & 1), addresses=addrs)

    def _lookup(self, ipr, name: str) -> LinkInfo | None:
        idx = self._index(ipr, name)
        if idx is None:
            return None
        return self._info(ipr, ipr.get_links(idx)[0])

    @staticmethod
    def _brief(ipr, name: str) -> LinkInfo | None:
        """Name, index, MAC and state only: one request (no master or address lookups)."""
        try:
            msg = ipr.link("get", ifname=name)[0]
        except Exception as e:  # noqa: BLE001
            if _is_errno(e, errno.ENODEV):
                return None
            raise
        return LinkInfo(name=name, index=msg["index"], mac=msg.get_attr("IFLA_ADDRESS") or "",
                        up=bool(msg["flags"] & 1))

    def link(self, name: str) -> LinkInfo | None:
        with self._rtnl() as rt:          # the common answer on the ADD path is "no such link": one lean request
            if rt.link_index(name) is None:
                return None
        with self._ipr() as ipr:
            return self._lookup(ipr, name)

    BRIDGE_RECHECK = 10.0

    def ensure_bridge(self, name: str, address: str | None, mtu: int | None = None) -> LinkInfo:
        """Idempotent; a bridge found complete is trusted for BRIDGE_RECHECK seconds (one check per ADD otherwise)."""
        cache = self.__dict__.setdefault("_bridges", {})
        hit = cache.get((name, address))
        if hit is not None and time.monotonic() - hit[1] < self.BRIDGE_RECHECK:
            return hit[0]
        info = self._ensure_bridge(name, address, mtu)
        cache[(name, address)] = (info, time.monotonic())
        return info

    def forget_bridges(self) -> None:
        self.__dict__.get("_bridges", {}).clear()

    def _ensure_bridge(self, name: str, address: str | None, mtu: int | None = None) -> LinkInfo:
        with self._ipr() as ipr:
            if self._index(ipr, name) is None:
                kw: dict = {"mtu": mtu} if mtu else {}
                if address:
                    # A fixed MAC: otherwise a bridge takes the lowest MAC of its ports and
                    # changes it as pods come and go, leaving stale gateway ARP entries in pods.
                    kw["address"] = bridge_mac(address)
                try:
                    ipr.link("add", ifname=name, kind="bridge", **kw)
                except Exception as e:  # noqa: BLE001 - another ADD made it first
                    if not _is_errno(e, errno.EEXIST):
                        raise
            info = self._lookup(ipr, name)
            if info is None:
                raise OSError(errno.ENODEV, f"bridge {name} vanished while being set up")
            if info.kind != "bridge":
                raise OSError(errno.EEXIST, f"{name} exists and is a {info.kind or 'non-bridge'} link, not a bridge")
            iface = ipaddress.ip_interface(address) if address else None
            if iface is not None and str(iface) not in info.addresses:
                try:
                    ipr.addr("add", index=info.index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
                except Exception as e:  # noqa: BLE001
                    if not _is_errno(e, errno.EEXIST):
                        raise
            if not info.up:
                ipr.link("set", index=info.index, state="up")
            return self._lookup(ipr, name)

    def enable_ip_forward(self) -> None:
        path = "/proc/sys/net/ipv4/ip_forward"
        with open(path) as f:
            if f.read().strip() == "1":
                return
        with open(path, "w") as f:
            f.write("1")

    # The ADD path (add_veth, attach, configure_pod, and link() for a veth that is not there)
    # goes through ``rtnl.RtnlSocket``: the same pyroute2 messages without IPRoute's ~1 ms of
    # CPU per request. MACs are chosen, not read back; lo is always ifindex 1; the peer is
    # created inside the pod namespace, where the kernel itself refuses a name that exists.
    def _rtnl(self, netns: str | None = None):
        """The lean socket of the ADD path (see ``_socket``)."""
        return self._socket("rtnl", netns, RtnlSocket, lambda path: RtnlSocket(netns_socket(path)),
                            answered=(NetlinkError,))

    def add_veth(self, host_name: str, netns: str, ifname: str, mtu: int | None = None) -> tuple[LinkInfo, LinkInfo]:
        try:
            nsfd = os.open(netns, os.O_RDONLY)
        except FileNotFoundError:
            raise NetnsNotFound(netns) from None
        host_mac, pod_mac = _random_mac(), _random_mac()
        try:
            with self._rtnl() as rt:
                try:
                    rt.add_veth(host_name, host_mac, ifname, pod_mac, nsfd, mtu)
                except NetlinkError as e:
                    if e.code == errno.EEXIST:
                        raise FileExistsError(errno.EEXIST, f"{host_name} or {ifname} in {netns} already exists") \
                            from None
                    raise
        finally:
            os.close(nsfd)
        return LinkInfo(name=host_name, index=0, mac=host_mac), LinkInfo(name=ifname, index=0, mac=pod_mac)

    def attach(self, host_name: str, bridge: str, hairpin: bool) -> None:
        with self._rtnl() as rt:
            idx = rt.link_index(host_name)
            cached = [v[0] for k, v in self.__dict__.get("_bridges", {}).items() if k[0] == bridge]
            br = cached[0].index if cached else rt.link_index(bridge)
            if idx is None or br is None:
                self.forget_bridges()     # the next ADD checks the bridge again
                raise OSError(errno.ENODEV, f"{host_name if idx is None else bridge} not found")
            try:
                rt.set_link(idx, master=br, up=True)
            except NetlinkError as e:
                self.forget_bridges()
                raise OSError(e.code, f"attaching {host_name} to {bridge}: {e}") from e
            rt.set_bridge_port_hairpin(idx, hairpin)

    def configure_pod(self, netns: str, ifname: str, address: str, routes: list[tuple[str, str | None]]) -> None:
        with self._rtnl(netns) as pod:
            pod.set_link(1, up=True)                              # lo
            idx = pod.link_index(ifname)
            if idx is None:
                raise OSError(errno.ENODEV, f"{ifname} not found in {netns}")
            try:
                pod.add_address(idx, address)
            except NetlinkError as e:     # a repeated ADD: the address is there already
                if e.code != errno.EEXIST:
                    raise
            pod.set_link(idx, up=True)
            for dst, gw in routes:
                try:
                    pod.add_route(dst, idx, gw)
                except NetlinkError as e:  # already there
                    if e.code != errno.EEXIST:
                        raise

    def pod_link(self, netns: str, ifname: str) -> LinkInfo | None:
        with self._ipr(netns) as pod:
            return self._lookup(pod, ifname)

    def delete_link(self, name: str) -> bool:
        with self._ipr() as ipr:
            idx = self._index(ipr, name)
            if idx is None:
                return False
            try:
                ipr.link("del", index=idx)
            except Exception as e:  # noqa: BLE001 - a concurrent DEL won
                if _is_errno(e, errno.ENODEV):
                    return False
                raise
            return True

    # ------------------------------------------------ the network agent's state
    # All on IPRoute: these run once per Node change, not per pod, so its cost does not matter.
    NUD_PERMANENT = 0x80
    RTNH_F_ONLINK = 4

    def link_mtu(self, name: str) -> int | None:
        with self._ipr() as ipr:
            try:
                msg = ipr.link("get", ifname=name)[0]
            except Exception as e:  # noqa: BLE001
                if _is_errno(e, errno.ENODEV):
                    return None
                raise
            return msg.get_attr("IFLA_MTU")

    def link_with_address(self, ip: str) -> str | None:
        with self._ipr() as ipr:
            for a in ipr.get_addr(family=socket.AF_INET):
                if a.get_attr("IFA_LOCAL") == ip or a.get_attr("IFA_ADDRESS") == ip:
                    links = ipr.get_links(a["index"])
                    return links[0].get_attr("IFLA_IFNAME") if links else None
        return None

    def _names(self, ipr) -> dict[int, str]:
        return {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}

    def _vxlan(self, ipr, name: str) -> VxlanInfo | None:
        try:
            msg = ipr.link("get", ifname=name)[0]
        except Exception as e:  # noqa: BLE001
            if _is_errno(e, errno.ENODEV):
                return None
            raise
        linkinfo = msg.get_attr("IFLA_LINKINFO")
        kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo is not None else None
        if kind != "vxlan":
            raise OSError(errno.EEXIST, f"{name} exists and is a {kind or 'non-vxlan'} link, not a vxlan device")
        data = linkinfo.get_attr("IFLA_INFO_DATA")
        dev_index = data.get_attr("IFLA_VXLAN_LINK")
        dev = None
        if dev_index:
            lower = ipr.get_links(dev_index)
            dev = lower[0].get_attr("IFLA_IFNAME") if lower else None
        addrs = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                 for a in ipr.get_addr(family=socket.AF_INET, index=msg["index"])]
        return VxlanInfo(name=name, index=msg["index"], mac=msg.get_attr("IFLA_ADDRESS") or "",
                         vni=data.get_attr("IFLA_VXLAN_ID"), port=data.get_attr("IFLA_VXLAN_PORT"),
                         local=data.get_attr("IFLA_VXLAN_LOCAL"), dev=dev,
                         learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")), mtu=msg.get_attr("IFLA_MTU"),
                         up=bool(msg["flags"] & 1), addresses=addrs)

    def vxlan(self, name: str) -> VxlanInfo | None:
        with self._ipr() as ipr:
            return self._vxlan(ipr, name)

    def ensure_vxlan(self, spec: VxlanSpec) -> VxlanInfo:
        with self._ipr() as ipr:
            info = self._vxlan(ipr, spec.name)
            if info is not None and not info.compatible(spec):
                ipr.link("del", index=info.index)
                info = None
            if info is None:
                dev = self._index(ipr, spec.dev)
                if dev is None:
                    raise OSError(errno.ENODEV, f"{spec.dev} (the VXLAN device's underlay) not found")
                # Created here, in the calling namespace: the device's UDP socket lives where it is made.
                ipr.link("add", ifname=spec.name, kind="vxlan", vxlan_id=spec.vni, vxlan_local=spec.local,
                         vxlan_link=dev, vxlan_port=spec.port, vxlan_learning=0, address=spec.mac, mtu=spec.mtu)
                info = self._vxlan(ipr, spec.name)
            if info.mtu != spec.mtu:
                ipr.link("set", index=info.index, mtu=spec.mtu)
            want = ipaddress.ip_interface(spec.address)
            for a in info.addresses:
                if a != str(want):
                    cur = ipaddress.ip_interface(a)
                    ipr.addr("del", index=info.index, address=str(cur.ip), prefixlen=cur.network.prefixlen)
            if str(want) not in info.addresses:
                ipr.addr("add", index=info.index, address=str(want.ip), prefixlen=want.network.prefixlen)
            if not info.up:
                ipr.link("set", index=info.index, state="up")
            return self._vxlan(ipr, spec.name)

    def owned_routes(self, protocol: int) -> list[RouteEntry]:
        with self._ipr() as ipr:
            msgs = [m for m in ipr.route("dump", family=socket.AF_INET, table=254)
                    if m["proto"] == protocol and m.get_attr("RTA_TABLE", m["table"]) == 254]
            names = self._names(ipr) if msgs else {}
        out = []
        for m in msgs:
            dst = m.get_attr("RTA_DST") or "0.0.0.0"
            out.append(RouteEntry(dst=f"{dst}/{m['dst_len']}", gateway=m.get_attr("RTA_GATEWAY"),
                                  dev=names.get(m.get_attr("RTA_OIF"), ""),
                                  onlink=bool(m["flags"] & self.RTNH_F_ONLINK)))
        return out

    def _route_args(self, ipr, route: RouteEntry, protocol: int) -> dict:
        oif = self._index(ipr, route.dev)
        if oif is None:
            raise OSError(errno.ENODEV, f"{route.dev} not found (route to {route.dst})")
        kw: dict = {"dst": route.dst, "oif": oif, "proto": protocol, "table": 254}
        if route.gateway:
            kw["gateway"] = route.gateway
        if route.onlink:
            kw["flags"] = self.RTNH_F_ONLINK
        return kw

    def replace_route(self, route: RouteEntry, protocol: int) -> None:
        with self._ipr() as ipr:
            ipr.route("replace", **self._route_args(ipr, route, protocol))

    def delete_route(self, route: RouteEntry, protocol: int) -> bool:
        with self._ipr() as ipr:
            try:
                ipr.route("del", **self._route_args(ipr, route, protocol))
            except OSError as e:
                if e.errno == errno.ENODEV:    # its device went: so did the route
                    return False
                raise
            except Exception as e:  # noqa: BLE001
                if _is_errno(e, errno.ESRCH, errno.ENOENT):
                    return False
                raise
            return True

    def neighbours(self, dev: str) -> list[NeighEntry]:
        with self._ipr() as ipr:
            idx = self._index(ipr, dev)
            if idx is None:
                return []
            return [NeighEntry(dev, m.get_attr("NDA_DST"), m.get_attr("NDA_LLADDR"))
                    for m in ipr.neigh("dump", ifindex=idx, family=socket.AF_INET)
                    if m["ifindex"] == idx and m["state"] & self.NUD_PERMANENT and m.get_attr("NDA_LLADDR")]

    def replace_neighbour(self, neigh: NeighEntry) -> None:
        with self._ipr() as ipr:
            idx = self._index(ipr, neigh.dev)
            if idx is None:
                raise OSError(errno.ENODEV, f"{neigh.dev} not found")
            ipr.neigh("replace", dst=neigh.ip, lladdr=neigh.mac, ifindex=idx, state=self.NUD_PERMANENT)

    def delete_neighbour(self, neigh: NeighEntry) -> bool:
        with self._ipr() as ipr:
            idx = self._index(ipr, neigh.dev)
            if idx is None:
                return False
            try:
                ipr.neigh("del", dst=neigh.ip, lladdr=neigh.mac, ifindex=idx)
            except Exception as e:  # noqa: BLE001
                if _is_errno(e, errno.ENOENT, errno.ESRCH):
                    return False
                raise
            return True

    def fdb_entries(self, dev: str) -> list[FdbEntry]:
        with self._ipr() as ipr:
            idx = self._index(ipr, dev)
            if idx is None:
                return []
            return [FdbEntry(dev, m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST"))
                    for m in ipr.fdb("dump", ifindex=idx)
                    if m["ifindex"] == idx and m.get_attr("NDA_DST") and m.get_attr("NDA_LLADDR")]

    def add_fdb(self, entry: FdbEntry) -> None:
        with self._ipr() as ipr:
            idx = self._index(ipr, entry.dev)
            if idx is None:
                raise OSError(errno.ENODEV, f"{entry.dev} not found")
            try:
                ipr.fdb("append", ifindex=idx, lladdr=entry.mac, dst=entry.dst)
            except Exception as e:  # noqa: BLE001 - there already
                if not _is_errno(e, errno.EEXIST):
                    raise

    def delete_fdb(self, entry: FdbEntry) -> bool:
        with self._ipr() as ipr:
            idx = self._index(ipr, entry.dev)
            if idx is None:
                return False
            try:
                ipr.fdb("del", ifindex=idx, lladdr=entry.mac, dst=entry.dst)
            except Exception as e:  # noqa: BLE001
                if _is_errno(e, errno.ENOENT, errno.ESRCH):
                    return False
                raise
            return True


# ---------------------------------------------------------------- fake
class FakeNetlink:
    """In-memory ``Netlink``: namespaces are dicts of links; records calls; can fail on demand.

    ``netns_paths`` is the set of pod namespace paths that "exist"; ``fail``
    maps a method name to an exception raised the next time it is called.
    """

    NODE = ""

    def __init__(self, netns_paths: set[str] | None = None):
        self.lock = threading.Lock()
        self.netns_paths = set(netns_paths or ())
        self.links: dict[str, dict[str, LinkInfo]] = {self.NODE: {}}
        self.routes: dict[str, list[tuple[str, str | None]]] = {}
        self.ip_forward = False
        self.calls: list[tuple] = []
        self.fail: dict[str, BaseException] = {}
        self._next = 100
        self.mtus: dict[str, int] = {}
        self.vxlans: dict[str, VxlanSpec] = {}
        self.node_routes: dict[str, tuple[RouteEntry, int]] = {}
        self.neighs: dict[tuple[str, str], NeighEntry] = {}
        self.fdb: set[FdbEntry] = set()

    def add_netns(self, path: str) -> None:
        with self.lock:
            self.netns_paths.add(path)
            self.links.setdefault(path, {"lo": LinkInfo("lo", 1, kind="loopback")})

    def remove_netns(self, path: str) -> None:
        with self.lock:
            self.netns_paths.discard(path)
            gone = self.links.pop(path, {})
            # Deleting a namespace deletes its veth ends and so their peers.
            for link in gone.values():
                peer = getattr(link, "_peer", None)
                if peer:
                    self.links[self.NODE].pop(peer, None)

    def _call(self, name: str, *args) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise self.fail.pop(name)

    def _ns(self, netns: str) -> dict[str, LinkInfo]:
        if netns not in self.netns_paths:
            raise NetnsNotFound(netns)
        return self.links.setdefault(netns, {"lo": LinkInfo("lo", 1, kind="loopback")})

    def _mac(self) -> str:
        self._next += 1
        return "0a:58:00:00:%02x:%02x" % (self._next >> 8 & 0xFF, self._next & 0xFF)

    def ensure_bridge(self, name: str, address: str | None, mtu: int | None = None) -> LinkInfo:
        with self.lock:
            self._call("ensure_bridge", name, address)
            node = self.links[self.NODE]
            br = node.get(name)
            if br is None:
                br = node[name] = LinkInfo(name, self._next, bridge_mac(address) if address else self._mac(),
                                           kind="bridge")
            if br.kind != "bridge":
                raise OSError(errno.EEXIST, f"{name} exists and is not a bridge")
            if address and address not in br.addresses:
                br.addresses.append(address)
            br.up = True
            return br

    def enable_ip_forward(self) -> None:
        with self.lock:
            self._call("enable_ip_forward")
            self.ip_forward = True

    def link(self, name: str) -> LinkInfo | None:
        with self.lock:
            return self.links[self.NODE].get(name)

    def add_veth(self, host_name: str, netns: str, ifname: str, mtu: int | None = None) -> tuple[LinkInfo, LinkInfo]:
        with self.lock:
            self._call("add_veth", host_name, netns, ifname)
            pod = self._ns(netns)
            node = self.links[self.NODE]
            if host_name in node:
                raise FileExistsError(errno.EEXIST, f"{host_name} exists")
            if ifname in pod:
                raise FileExistsError(errno.EEXIST, f"{ifname} already exists in {netns}")
            host = node[host_name] = LinkInfo(host_name, self._next, self._mac(), kind="veth")
            inside = pod[ifname] = LinkInfo(ifname, self._next + 1, self._mac(), kind="veth")
            host._peer = (netns, ifname)  # type: ignore[attr-defined]
            inside._peer = host_name  # type: ignore[attr-defined]
            return host, inside

    def attach(self, host_name: str, bridge: str, hairpin: bool) -> None:
        with self.lock:
            self._call("attach", host_name, bridge, hairpin)
            node = self.links[self.NODE]
            if host_name not in node or bridge not in node:
                raise OSError(errno.ENODEV, f"{host_name} or {bridge} not found")
            link = node[host_name]
            link.master, link.hairpin, link.up = bridge, hairpin, True

    def configure_pod(self, netns: str, ifname: str, address: str, routes: list[tuple[str, str | None]]) -> None:
        with self.lock:
            self._call("configure_pod", netns, ifname, address, routes)
            pod = self._ns(netns)
            if ifname not in pod:
                raise OSError(errno.ENODEV, f"{ifname} not found in {netns}")
            pod["lo"].up = True
            if address not in pod[ifname].addresses:
                pod[ifname].addresses.append(address)
            pod[ifname].up = True
            self.routes[netns] = list(routes)

    def pod_link(self, netns: str, ifname: str) -> LinkInfo | None:
        with self.lock:
            return self._ns(netns).get(ifname)

    def delete_link(self, name: str) -> bool:
        with self.lock:
            self._call("delete_link", name)
            link = self.links[self.NODE].pop(name, None)
            if link is None:
                return False
            peer = getattr(link, "_peer", None)
            if peer and peer[0] in self.links:
                self.links[peer[0]].pop(peer[1], None)
            self._drop_link(name)         # and the routes and entries on it, as the kernel does
            return True

    # ------------------------------------------------ the network agent's state
    # ``node_routes`` maps dst -> (RouteEntry, protocol); a replace of an equal route keeps the stored
    # object, any other write stores a new one (tests check "unchanged" by identity). Deleting a link
    # drops its routes, neighbours and FDB entries, as the kernel does.
    def add_link(self, name: str, *, kind: str = "veth", mtu: int = 1500, addresses: list[str] | None = None,
                 up: bool = True) -> LinkInfo:
        """Test set-up: a node-namespace link (the fabric interface)."""
        with self.lock:
            link = self.links[self.NODE][name] = LinkInfo(name, self._next, self._mac(), kind=kind, up=up,
                                                          addresses=list(addresses or []))
            self.mtus[name] = mtu
            return link

    def _node_link(self, name: str) -> LinkInfo:
        link = self.links[self.NODE].get(name)
        if link is None:
            raise OSError(errno.ENODEV, f"{name} not found")
        return link

    def link_mtu(self, name: str) -> int | None:
        with self.lock:
            if name not in self.links[self.NODE]:
                return None
            return self.mtus.get(name, 1500)

    def link_with_address(self, ip: str) -> str | None:
        with self.lock:
            for link in self.links[self.NODE].values():
                if any(a.split("/")[0] == ip for a in link.addresses):
                    return link.name
            return None

    def vxlan(self, name: str) -> VxlanInfo | None:
        with self.lock:
            return self._vxlan_locked(name)

    def _vxlan_locked(self, name: str) -> VxlanInfo | None:
        link = self.links[self.NODE].get(name)
        if link is None:
            return None
        if link.kind != "vxlan":
            raise OSError(errno.EEXIST, f"{name} exists and is not a vxlan device")
        v = self.vxlans[name]
        return VxlanInfo(name, link.index, link.mac, v.vni, v.port, v.local, v.dev, False, self.mtus[name],
                         link.up, list(link.addresses))

    def ensure_vxlan(self, spec: VxlanSpec) -> VxlanInfo:
        with self.lock:
            self._call("ensure_vxlan", spec)
            info = self._vxlan_locked(spec.name)
            if info is not None and not info.compatible(spec):
                self._drop_link(spec.name)
                info = None
            if info is None:
                self._node_link(spec.dev)
                self._next += 1
                self.links[self.NODE][spec.name] = LinkInfo(spec.name, self._next, spec.mac, kind="vxlan")
                self.vxlans[spec.name] = spec
                self.mtus[spec.name] = spec.mtu
            link = self.links[self.NODE][spec.name]
            self.mtus[spec.name] = spec.mtu
            link.addresses = [spec.address]
            link.up = True
            return self._vxlan_locked(spec.name)

    def _drop_link(self, name: str) -> None:
        self.links[self.NODE].pop(name, None)
        self.vxlans.pop(name, None)
        self.node_routes = {d: r for d, r in self.node_routes.items() if r[0].dev != name}
        self.neighs = {k: n for k, n in self.neighs.items() if n.dev != name}
        self.fdb = {e for e in self.fdb if e.dev != name}

    def owned_routes(self, protocol: int) -> list[RouteEntry]:
        with self.lock:
            return [r for r, proto in self.node_routes.values() if proto == protocol]

    def replace_route(self, route: RouteEntry, protocol: int) -> None:
        with self.lock:
            self._call("replace_route", route)
            self._node_link(route.dev)
            old = self.node_routes.get(route.dst)
            if old is not None and old[0] == route and old[1] == protocol:
                return                    # the kernel's replace of an identical route changes nothing
            self.node_routes[route.dst] = (route, protocol)

    def delete_route(self, route: RouteEntry, protocol: int) -> bool:
        with self.lock:
            self._call("delete_route", route)
            old = self.node_routes.get(route.dst)
            if old is None or old[1] != protocol:
                return False
            del self.node_routes[route.dst]
            return True

    def neighbours(self, dev: str) -> list[NeighEntry]:
        with self.lock:
            return [n for n in self.neighs.values() if n.dev == dev]

    def replace_neighbour(self, neigh: NeighEntry) -> None:
        with self.lock:
            self._call("replace_neighbour", neigh)
            self._node_link(neigh.dev)
            if self.neighs.get((neigh.dev, neigh.ip)) != neigh:
                self.neighs[(neigh.dev, neigh.ip)] = neigh

    def delete_neighbour(self, neigh: NeighEntry) -> bool:
        with self.lock:
            self._call("delete_neighbour", neigh)
            return self.neighs.pop((neigh.dev, neigh.ip), None) is not None

    def fdb_entries(self, dev: str) -> list[FdbEntry]:
        with self.lock:
            return sorted((e for e in self.fdb if e.dev == dev), key=lambda e: (e.mac, e.dst))

    def add_fdb(self, entry: FdbEntry) -> None:
        with self.lock:
            self._call("add_fdb", entry)
            self._node_link(entry.dev)
            self.fdb.add(entry)

    def delete_fdb(self, entry: FdbEntry) -> bool:
        with self.lock:
            self._call("delete_fdb", entry)
            if entry not in self.fdb:
                return False
            self.fdb.discard(entry)
            return True


__all__ = ["Netlink", "RealNetlink", "FakeNetlink", "LinkInfo", "NetnsNotFound", "netns_socket", "bridge_mac",
           "RouteEntry", "NeighEntry", "FdbEntry", "VxlanSpec", "VxlanInfo"]
