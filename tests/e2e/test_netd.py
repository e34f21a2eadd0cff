"""netd end to end: three node namespaces on a fabric bridge, one real `pocketkube netd` in each, both backends.

Layout (all made here, every name ``pk-<tag>-...``)::

    machine ns  pkh<tag> 100.64.X.1 ─veth─┐
                                          br0  (fabric ns pk-<tag>-fab)
    node ns pk-<tag>-<b>n1  eth0 .2 ─veth─┤
    node ns pk-<tag>-<b>n2  eth0 .3 ─veth─┤      (host-gw: .2-.4, vxlan: .5-.7)
    node ns pk-<tag>-<b>n3  eth0 .4 ─veth─┘
      each node: cni0 10.244.<i>.1/24 ─veth─ eth0 10.244.<i>.2 in pod ns pk-<tag>-<b>p<i> (an echo server)

The API server binds the machine's end of its fabric veth (the only link
into the machine's namespace; no route or iptables rule is added there);
the test creates the Node objects with podCIDRs and InternalIPs itself, as
the controller-manager and a kubelet would, and plays nothing else: routes,
the VXLAN device, neighbour and FDB entries are netd's. Run as root.
"""
from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from api import resources as R
from client.errors import NotFound
from client.rest import Client
from tests.conftest import free_port, need
from tests.e2e.conftest import Proc
from tests.e2e.netns import (CLIENT, ECHO_SERVER, LINK_SPACE, Teardown, del_netns, have_root_tools, in_ns,
                             kill_proc, nsrun, run, used_networks, wait_until)

BACKENDS = ["host-gw", "vxlan"]
PROTO = "75"


def pick_fabric_subnet() -> ipaddress.IPv4Network:
    """A free /28 in 100.64.0.0/16 (the machine's end and two sets of three nodes)."""
    used = used_networks()
    candidates = [n for n in LINK_SPACE.subnets(new_prefix=28) if n.network_address != LINK_SPACE.network_address
                  and not n.overlaps(ipaddress.ip_network("100.64.0.0/24"))]
    random.shuffle(candidates)
    for net in candidates[:2048]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /28 in 100.64.0.0/16 for the test fabric")


class Fabric:
    def __init__(self, tmp: str):
        self.tag = uuid.uuid4().hex[:6]
        self.tmp = tmp
        self.td = Teardown()
        self.ns = f"pk-{self.tag}-fab"
        self.net = pick_fabric_subnet()
        self.hosts = [str(h) for h in self.net.hosts()]
        self.host_ip = self.hosts[0]
        self.host_if = f"pkh{self.tag}"

    def setup(self) -> "Fabric":
        run("ip", "netns", "add", self.ns)
        self.td.add(f"netns {self.ns}", lambda: del_netns(self.ns))
        nsrun(self.ns, "ip", "link", "set", "lo", "up")
        nsrun(self.ns, "ip", "link", "add", "br0", "type", "bridge")
        nsrun(self.ns, "ip", "link", "set", "br0", "up")
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "host", "netns", self.ns)
        self.td.add(f"link {self.host_if}", lambda: run("ip", "link", "del", self.host_if, check=False))
        nsrun(self.ns, "ip", "link", "set", "host", "master", "br0", "up")
        run("ip", "addr", "add", f"{self.host_ip}/{self.net.prefixlen}", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        self.port = free_port()
        self.url = f"http://{self.host_ip}:{self.port}"
        self.apiserver = Proc([sys.executable, "-m", "deploy.cli", "apiserver", "--bind-address", self.host_ip,
                               "--port", str(self.port), "--data-dir", os.path.join(self.tmp, "data")],
                              os.path.join(self.tmp, "apiserver.log")).start()
        self.td.add("apiserver", self.apiserver.stop)
        self.client = Client(server=self.url)
        self.td.add("client", self.client.close)
        wait_until(self._ready, timeout=20, what="the API server")
        return self

    def _ready(self) -> bool:
        if self.apiserver.proc.poll() is not None:
            raise RuntimeError("apiserver exited: " + self.apiserver.log()[-2000:])
        try:
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class NodeNet:
    """One node namespace, its stand-in pod, its Node object and its netd."""

    def __init__(self, fab: Fabric, backend: str, i: int, ip: str):
        self.fab, self.backend, self.i, self.ip = fab, backend, i, ip
        b = backend[0]                                  # h / v
        self.name = f"{backend}-n{i}"
        self.ns = f"pk-{fab.tag}-{b}n{i}"
        self.pod_ns = f"pk-{fab.tag}-{b}p{i}"
        self.cidr = f"10.244.{i}.0/24"
        self.gateway = f"10.244.{i}.1"
        self.pod_ip = f"10.244.{i}.2"
        self.mtu = 1450 if backend == "vxlan" else 1500
        self.netd: Proc | None = None
        self.starts = 0

    def setup(self) -> None:
        td, tag, b = self.fab.td, self.fab.tag, self.backend[0]
        run("ip", "netns", "add", self.ns)
        td.add(f"netns {self.ns}", lambda: del_netns(self.ns))
        fab_if = f"{b}n{self.i}{tag}"
        nsrun(self.fab.ns, "ip", "link", "add", fab_if, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        nsrun(self.fab.ns, "ip", "link", "set", fab_if, "master", "br0", "up")
        n = self.ns
        for conf in ("all", "default"):     # IPv4 only: no link-local addresses arriving late in the monitors
            nsrun(n, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")
        nsrun(n, "ip", "link", "set", "lo", "up")
        nsrun(n, "ip", "addr", "add", f"{self.ip}/{self.fab.net.prefixlen}", "dev", "eth0")
        nsrun(n, "ip", "link", "set", "eth0", "up")
        nsrun(n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # the pod network as the kubelet's CNI plugin leaves it: cni0 with the gateway, MTU per backend
        nsrun(n, "ip", "link", "add", "cni0", "mtu", str(self.mtu), "type", "bridge")
        nsrun(n, "ip", "addr", "add", f"{self.gateway}/24", "dev", "cni0")
        nsrun(n, "ip", "link", "set", "cni0", "up")
        run("ip", "netns", "add", self.pod_ns)
        td.add(f"netns {self.pod_ns}", lambda: del_netns(self.pod_ns))
        veth = f"vp{self.i}{tag}"
        nsrun(n, "ip", "link", "add", veth, "mtu", str(self.mtu), "type", "veth", "peer", "name", "eth0",
              "netns", self.pod_ns)
        nsrun(n, "ip", "link", "set", veth, "master", "cni0", "up")
        p = self.pod_ns
        nsrun(p, "ip", "link", "set", "lo", "up")
        nsrun(p, "ip", "link", "set", "eth0", "mtu", str(self.mtu))
        nsrun(p, "ip", "addr", "add", f"{self.pod_ip}/24", "dev", "eth0")
        nsrun(p, "ip", "link", "set", "eth0", "up")
        nsrun(p, "ip", "route", "add", "default", "via", self.gateway)
        proc = subprocess.Popen(in_ns(p, sys.executable, "-c", ECHO_SERVER, self.name, "8080", "5353", "120"),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        td.add(f"echo server {self.name}", lambda: kill_proc(proc))
        if b"ready" not in (proc.stdout.readline() if proc.stdout else b""):
            raise RuntimeError(f"echo server in {p} did not start")
        # the Node as a kubelet registers it and the controller-manager gives it a range
        c = self.fab.client
        c.create(R.NODES, {"metadata": {"name": self.name},
                           "spec": {"podCIDR": self.cidr, "podCIDRs": [self.cidr]}})
        td.add(f"node {self.name}", lambda: self.delete_node())
        c.patch(R.NODES, self.name, {"status": {"addresses": [{"type": "InternalIP", "address": self.ip}]}},
                subresource="status")
        self.start_netd()

    def delete_node(self) -> None:
        try:
            self.fab.client.delete(R.NODES, self.name)
        except NotFound:
            pass

    def start_netd(self) -> None:
        self.starts += 1
        self.netd = Proc(in_ns(self.ns, sys.executable, "-m", "deploy.cli", "netd", "--node-name", self.name,
                               "--server", self.fab.url, "--backend", self.backend, "--resync-period", "1"),
                         os.path.join(self.fab.tmp, f"netd-{self.name}-{self.starts}.log")).start()
        self.fab.td.add(f"netd {self.name}", self.netd.stop)

    def stop_netd(self) -> None:
        assert self.netd is not None and self.netd.proc is not None
        self.netd.proc.send_signal(signal.SIGTERM)
        assert self.netd.proc.wait(10) == 0
        self.netd.stop()

    # ------------------------------------------------------------ kernel views
    def sh(self, *args: str) -> str:
        return nsrun(self.ns, *args).stdout.decode()

    def routes(self) -> list[dict]:
        return json.loads(self.sh("ip", "-j", "route", "show", "proto", PROTO) or "[]")

    def neighs(self) -> list[dict]:
        if self.backend != "vxlan":
            return []
        return json.loads(self.sh("ip", "-j", "neigh", "show", "dev", "flannel.1", "nud", "permanent") or "[]")

    def fdb(self) -> list[dict]:
        if self.backend != "vxlan":
            return []
        return [e for e in json.loads(self.sh("bridge", "-j", "fdb", "show", "dev", "flannel.1") or "[]")
                if e.get("dst")]

    def snapshot(self) -> tuple[tuple[str, ...], ...]:
        """Routes, permanent neighbours, FDB and the device, each as sorted lines (a dump's order follows
        the kernel's hash tables, which may be rehashed when unrelated entries come and go)."""
        out = [self.sh("ip", "route"), self.sh("ip", "neigh", "show", "nud", "permanent")]
        if self.backend == "vxlan":
            out += [self.sh("bridge", "fdb", "show", "dev", "flannel.1"), self.sh("ip", "-d", "link", "show",
                                                                                  "flannel.1")]
        return tuple(tuple(sorted(o.splitlines())) for o in out)

    def connect(self, host: str, proto: str = "tcp", count: int = 3) -> dict:
        p = run(*in_ns(self.pod_ns, sys.executable, "-c", CLIENT, host, "8080" if proto == "tcp" else "5353",
                       str(count), proto, "2", "10"), timeout=40)
        return json.loads(p.stdout)


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    ok, why = have_root_tools("bridge")
    need(ok, why)
    fab = Fabric(str(tmp_path_factory.mktemp("netd")))
    try:
        fab.setup()
        yield fab
    finally:
        errors = fab.td.run()
        left = run("ip", "netns", "list").stdout.decode()
        assert fab.tag not in left, left
        assert not errors, errors


@pytest.fixture(scope="module", params=BACKENDS)
def cluster(request, fabric):
    backend = request.param
    first = 1 if backend == "host-gw" else 4
    nodes = [NodeNet(fabric, backend, i, fabric.hosts[first + i - 1]) for i in (1, 2, 3)]
    for n in nodes:
        n.setup()
    try:
        wait_until(lambda: all(_published(fabric.client, n) for n in nodes), timeout=20,
                   what="every netd to publish its node")
        wait_until(lambda: all(len(n.routes()) == 2 for n in nodes), timeout=10, what="two routes per node")
    except AssertionError:
        raise AssertionError("\n".join(n.netd.log()[-3000:] for n in nodes if n.netd)) from None
    yield nodes
    for n in nodes:
        if n.netd is not None and n.netd.proc is not None:
            n.netd.stop()
        n.delete_node()                 # the next backend's agents start from a clean list


def _published(client: Client, n: NodeNet) -> bool:
    node = client.get(R.NODES, n.name)
    ann = node["metadata"].get("annotations") or {}
    conds = {c["type"]: c for c in node.get("status", {}).get("conditions") or []}
    nu = conds.get("NetworkUnavailable") or {}
    return (ann.get("flannel.alpha.coreos.com/backend-type") == n.backend
            and nu.get("status") == "False" and nu.get("reason") == "NetdIsUp")


def test_annotations_published(cluster, fabric):
    for n in cluster:
        ann = fabric.client.get(R.NODES, n.name)["metadata"]["annotations"]
        assert ann["flannel.alpha.coreos.com/public-ip"] == n.ip          # the Node's InternalIP by default
        assert ann["flannel.alpha.coreos.com/kube-subnet-manager"] == "true"
        data = json.loads(ann["flannel.alpha.coreos.com/backend-data"])
        if n.backend == "vxlan":
            [link] = json.loads(n.sh("ip", "-j", "link", "show", "flannel.1"))
            assert data == {"VNI": 1, "VtepMAC": link["address"]}
        else:
            assert data is None


def test_kernel_state(cluster):
    n1, others = cluster[0], cluster[1:]
    routes = {r["dst"]: r for r in n1.routes()}
    assert set(routes) == {o.cidr for o in others}
    for o in others:
        r = routes[o.cidr]
        if n1.backend == "host-gw":
            assert (r["gateway"], r["dev"]) == (o.ip, "eth0"), r
        else:
            assert (r["gateway"], r["dev"], "onlink" in r.get("flags", [])) == (o.cidr.split("/")[0], "flannel.1",
                                                                                True), r
    if n1.backend != "vxlan":
        assert "flannel.1" not in n1.sh("ip", "link")
        return
    [d] = json.loads(n1.sh("ip", "-d", "-j", "link", "show", "flannel.1"))
    info = d["linkinfo"]["info_data"]
    assert (info["id"], info["port"], info["learning"], info["local"], info["link"], d["mtu"]) == \
        (1, 8472, False, n1.ip, "eth0", 1450), d
    text = n1.sh("ip", "-d", "link", "show", "flannel.1")
    assert "vxlan id 1 " in text and "dstport 8472 " in text and "nolearning" in text, text
    assert n1.sh("ip", "-4", "-o", "addr", "show", "dev", "flannel.1").split()[3] == "10.244.1.0/32"
    macs = {o.name: json.loads(o.sh("ip", "-j", "link", "show", "flannel.1"))[0]["address"] for o in others}
    assert {(e["dst"], e["lladdr"]) for e in n1.neighs()} == {(o.cidr.split("/")[0], macs[o.name]) for o in others}
    assert {(e["mac"], e["dst"]) for e in n1.fdb()} == {(macs[o.name], o.ip) for o in others}


def test_pod_to_pod_across_nodes_keeps_the_source_ip(cluster):
    for src in cluster:
        for dst in cluster:
            if dst is src:
                continue
            r = src.connect(dst.pod_ip)
            assert r["counts"] == {dst.name: 3} and r["sources"] == {src.pod_ip: 3}, (src.name, dst.name, r)
    u = cluster[0].connect(cluster[2].pod_ip, proto="udp")
    assert u["counts"] == {cluster[2].name: 3} and u["sources"] == {cluster[0].pod_ip: 3}, u


def test_full_size_segments_cross(cluster):
    """A TCP stream of 1 MB from pod 1 to pod 2 (full-MTU segments; over vxlan inside the 1450 budget)."""
    sink = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('0.0.0.0',9099));s.listen(1);s.settimeout(15);print('ready',flush=True)\n"
            "c,_=s.accept();c.settimeout(15);n=0\nwhile True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\n"
            "print(n,flush=True)")
    dst = cluster[1]
    proc = subprocess.Popen(in_ns(dst.pod_ns, sys.executable, "-c", sink), stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        send = (f"import socket\ns=socket.create_connection(('{dst.pod_ip}',9099),timeout=10)\n"
                "s.sendall(b'x'*1048576);s.close()")
        run(*in_ns(cluster[0].pod_ns, sys.executable, "-c", send), timeout=30)
        assert proc.stdout.readline().strip() == b"1048576"
    finally:
        kill_proc(proc)


def _monitor(ns: str, *what: str) -> subprocess.Popen:
    return subprocess.Popen(in_ns(ns, *what), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def test_restart_changes_nothing(cluster):
    n1 = cluster[0]
    before = n1.snapshot()
    monitors = [_monitor(n1.ns, "ip", "-4", "monitor", "route"), _monitor(n1.ns, "ip", "-4", "monitor", "neigh"),
                _monitor(n1.ns, "bridge", "monitor", "fdb"), _monitor(n1.ns, "ip", "monitor", "link")]
    try:
        time.sleep(0.3)                     # the monitors are listening
        n1.stop_netd()
        n1.start_netd()
        wait_until(lambda: '"full": true' in n1.netd.log(), timeout=15, what="the restarted netd's first sync")
        time.sleep(1.5)                     # and its first periodic resync (--resync-period 1)
    finally:
        for m in monitors:
            m.send_signal(signal.SIGTERM)
    seen = [m.communicate(timeout=5)[0].decode() for m in monitors]
    route_events, neigh_events, fdb_events, link_events = seen
    assert route_events == "", route_events
    # neighbour events on eth0 are the API connection's ARP; none may concern netd's entries
    assert [line for line in neigh_events.splitlines() if "flannel" in line] == [], neigh_events
    assert fdb_events == "", fdb_events
    assert [line for line in link_events.splitlines() if "flannel" in line] == [], link_events
    assert n1.snapshot() == before
    assert '"routes_set": 0' in n1.netd.log() and '"published": false' in n1.netd.log()


def test_drift_is_repaired(cluster):
    n2, n1 = cluster[1], cluster[0]
    n2.sh("ip", "route", "del", n1.cidr)
    if n2.backend == "vxlan":
        n2.sh("ip", "neigh", "del", n1.cidr.split("/")[0], "dev", "flannel.1")
    wait_until(lambda: any(r["dst"] == n1.cidr for r in n2.routes()) and
               (n2.backend != "vxlan" or len(n2.neighs()) == 2), timeout=10, what="the periodic resync's repair")
    r = n2.connect(n1.pod_ip)
    assert r["counts"] == {n1.name: 3}, r


def test_deleted_vxlan_device_is_recreated_with_its_mac(cluster, fabric):
    n2 = cluster[1]
    if n2.backend != "vxlan":
        assert "flannel.1" not in n2.sh("ip", "link")
        return
    mac = json.loads(fabric.client.get(R.NODES, n2.name)["metadata"]["annotations"][
        "flannel.alpha.coreos.com/backend-data"])["VtepMAC"]
    n2.sh("ip", "link", "del", "flannel.1")        # takes its routes, neighbours and FDB entries along
    wait_until(lambda: len(n2.routes()) == 2 and len(n2.neighs()) == 2 and len(n2.fdb()) == 2, timeout=10,
               what="flannel.1 and its entries back")
    assert json.loads(n2.sh("ip", "-j", "link", "show", "flannel.1"))[0]["address"] == mac
    for other in (cluster[0], cluster[2]):
        r = other.connect(n2.pod_ip)
        assert r["counts"] == {n2.name: 3}, r


def test_deleted_node_leaves_no_state(cluster, fabric):
    n3 = cluster[2]
    n3.stop_netd()
    n3.delete_node()

    def gone() -> bool:
        for n in cluster[:2]:
            if any(r["dst"] == n3.cidr for r in n.routes()):
                return False
            if any(e["dst"] == n3.cidr.split("/")[0] for e in n.neighs()):
                return False
            if any(e["dst"] == n3.ip for e in n.fdb()):
                return False
        return True

    wait_until(gone, timeout=10, what=f"{n3.name}'s routes, neighbours and FDB entries to go")
    for n in cluster[:2]:
        assert len(n.routes()) == 1
        assert len(n.neighs()) == (1 if n.backend == "vxlan" else 0) and len(n.fdb()) == len(n.neighs())
    r = cluster[0].connect(cluster[1].pod_ip)
    assert r["counts"] == {cluster[1].name: 3}, r
