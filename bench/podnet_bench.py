#!/usr/bin/env python3
"""Pod network benchmark: pod-to-pod TCP throughput and latency, pocketkube against a hand-built replica.

For each backend (``host-gw``, then ``vxlan``) it starts a real two-node
cluster (``pocketkube up --nodes 2 --backend B`` on a throwaway data
directory, a free node network and port, ``--no-host-routes``; ``down
--purge`` at the end, always) and, in the same run, a hand-built replica of
exactly the same path with no pocketkube process involved:

* a fabric namespace with a bridge, two node namespaces each with one veth
  into it (MTU 1500, as the cluster's fabric), and a third port standing for
  the machine's veth (in a namespace of its own: the replica never touches the
  machine's namespace);
* in each node namespace a ``cni0`` bridge holding the gateway (first
  address of the node's /24) and IP forwarding on, pod namespaces whose
  ``eth0`` is a veth with its host end on ``cni0`` (hairpin on), the pod MTU
  and the bridge MTU those of the cluster's pods (read from the cluster);
* host-gw: per remote node ``podCIDR via <node IP> dev <fabric if>``;
* vxlan: ``flannel.1`` created inside each node namespace (``vxlan id 1
  dstport 8472 nolearning local <node IP> dev <fabric if>``, MTU fabric − 50,
  the podCIDR's network address /32), per remote node a permanent neighbour
  (its subnet address -> its VTEP MAC), an FDB entry (its VTEP MAC -> its node
  IP) and ``podCIDR via <subnet address> dev flannel.1 onlink`` — flannel's
  and the network agent's recipe;

and, beside them, the bare veth pair between two namespaces (the floor).

Paths measured, per backend: ``same_node`` (two pods on node 1) and
``cross_node`` (a pod on node 2 to the pod on node 1), each on pocketkube and on
the replica; plus ``bare_veth``. Tools: TCP throughput with ``iperf3 -c -t S
-J`` (one stream, receiver's rate from the JSON), latency with ``qperf
tcp_lat`` (1-byte ping-pong over TCP; qperf reports half the round trip).
qperf's client and server are pinned to one CPU (``taskset``, ``--lat-cpu``,
default the last): on this two-core VM a cross-CPU wake-up costs ~30 µs and
the scheduler's placement flips from run to run, which made the figure
bimodal (8 µs or 40 µs for the same veth pair); pinned, it is stable and the
same for every path. iperf3 is left to the scheduler (it needs both cores).

How the pocketkube side is driven (lowest overhead that still measures the pod
path): the servers are real pods pinned with ``spec.nodeName`` (image
``pocketkube/host``, containers ``iperf3 -s`` and ``qperf``); the clients run
with ``nsenter --net`` in the network namespace of a client pod (a ``sleep``
pod on the same or the other node; its namespace is found from the node's
runtime, ``list_sandboxes`` -> ``netns_path``), so every packet takes the
pod's eth0, the node's cni0, the node's routes / flannel.1 and the fabric,
and no API server, exec relay or log read is in the timed loop. Replica
servers and clients run the same binaries the same way (``nsenter --net``).

Rounds are interleaved (replica and pocketkube alternate, the first of each
round swaps) because the machine is shared and noisy; each figure is the
median over rounds, every round's values are listed too. Ratios:
``gbps_ratio`` = pocketkube / replica throughput (target >= 0.95);
``lat_ratio`` = pocketkube / replica latency (lower is better; the target
>= 0.95x in speed is ``lat_ratio <= 1.053``); both as ratios of the medians
and, ``*_paired``, as the median of the per-round ratios (each pair measured
back to back, so a drift in the machine's background load cancels).

Everything runs in namespaces this script (or ``pocketkube up``) creates:
the replica's are ``pk-<tag>-…`` and deleted in ``finally``; no iptables rule
in the machine's namespace; no traffic outside those namespaces (the replica
has no link to the machine's namespace at all). Needs root, iproute2,
iperf3, qperf (Debian: ``apt-get install iperf3 qperf``).

Usage: podnet_bench.py [--rounds 5] [--seconds 3] [--backends host-gw,vxlan] [--replica-only]
"""
from __future__ import annotations

import argparse
import glob
import ipaddress
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import log  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.e2e.netns import Teardown, used_networks  # noqa: E402

IPERF_PORT = 5201
QPERF_PORT = 19765
FABRIC_MTU = 1500
VXLAN_OVERHEAD = 50
VNI, VXLAN_PORT = 1, 8472
CNI_MTU = {"host-gw": FABRIC_MTU, "vxlan": FABRIC_MTU - VXLAN_OVERHEAD}
LAT_TARGET = round(1 / 0.95, 3)
# qperf's client and server share one CPU (see the module doc); None = let the scheduler place them
LAT_CPU: int | None = (os.cpu_count() or 1) - 1


def pinned(argv: list[str]) -> list[str]:
    return argv if LAT_CPU is None else ["taskset", "-c", str(LAT_CPU), *argv]


# ------------------------------------------------------------------ helpers
def sh(*args: str, check: bool = True, timeout: float = 60.0) -> str:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {(p.stderr or p.stdout).strip()[:800]}")
    return p.stdout


def ns_path(name: str) -> str:
    return f"/run/netns/{name}"


def in_net(path: str, *args: str) -> list[str]:
    return ["nsenter", f"--net={path}", "--", *args]


def free_subnet(prefix: int) -> ipaddress.IPv4Network:
    """A /prefix in 100.64.0.0/10 that overlaps no address or route of the machine's namespace (not
    100.64.0.0/24, `pocketkube up`'s default)."""
    used = used_networks()
    space = ipaddress.ip_network("100.64.0.0/10")
    size = 1 << (32 - prefix)
    for _ in range(4096):
        net = ipaddress.ip_network((int(space.network_address) + random.randrange(space.num_addresses // size) * size,
                                    prefix))
        if net.overlaps(ipaddress.ip_network("100.64.0.0/24")):
            continue
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /{prefix} in 100.64.0.0/10")


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# -------------------------------------------------------------- measurements
def start_servers(path: str, td: Teardown, what: str) -> None:
    """iperf3 and qperf servers in a network namespace (the replica's and the bare pair's pods)."""
    for argv in (["iperf3", "-s", "-p", str(IPERF_PORT)], pinned(["qperf", "-lp", str(QPERF_PORT)])):
        p = subprocess.Popen(in_net(path, *argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        td.add(f"stop {argv[0]} in {what}", lambda p=p: (p.terminate(), p.wait(5)))


def throughput(path: str, ip: str, seconds: float) -> float:
    """Gbit/s received, one TCP stream of ``seconds`` from the namespace at ``path`` to ``ip``."""
    out = sh(*in_net(path, "iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-J",
                     "--connect-timeout", "3000"), timeout=seconds + 30)
    doc = json.loads(out)
    if "error" in doc:
        raise RuntimeError(f"iperf3 to {ip}: {doc['error']}")
    return doc["end"]["sum_received"]["bits_per_second"] / 1e9


def latency(path: str, ip: str, seconds: float) -> float:
    """qperf tcp_lat (1-byte messages): microseconds, half the round trip as qperf reports it."""
    out = sh(*in_net(path, *pinned(["qperf", "-lp", str(QPERF_PORT), "-t", str(int(max(1, seconds))), "-vu", ip,
                                     "tcp_lat"])),
             timeout=seconds + 30)
    m = re.search(r"latency\s*=\s*([\d.]+)\s*(ns|us|ms|sec)", out)
    if not m:
        raise RuntimeError(f"qperf to {ip}: no latency in {out!r}")
    return float(m.group(1)) * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "sec": 1e6}[m.group(2)]


def wait_reachable(path: str, ip: str, timeout: float = 60.0) -> None:
    """Bounded: a 1-second iperf3 run (which also warms the path) until one succeeds."""
    deadline = time.monotonic() + timeout
    err: Exception | None = None
    while time.monotonic() < deadline:
        try:
            throughput(path, ip, 1)
            return
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            err = e
            time.sleep(0.5)
    raise RuntimeError(f"{ip} not reachable from {path} within {timeout:.0f}s: {err}")


def node_sysctls(path: str) -> dict:
    """The node namespace's settings the bridged and routed path depends on (compared like the links)."""
    out = {}
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/rp_filter"):
        try:
            out[key.rsplit("/", 1)[1]] = sh(*in_net(path, "cat", f"/proc/sys/{key}")).strip()
        except RuntimeError:
            out[key.rsplit("/", 1)[1]] = None
    return out


def netfilter(path: str) -> dict:
    """Rules in the node namespace (the proxy's, on pocketkube; none on the replica): not compared, it is
    what pocketkube adds to the path, listed so a ratio below target can be read against it."""
    try:
        rules = [ln for ln in sh(*in_net(path, "iptables-save")).splitlines() if ln.startswith("-A")]
    except (RuntimeError, FileNotFoundError):
        return {}
    return {"iptables_rules": len(rules)}


def link_info(path: str, name: str) -> dict:
    """MTU and (for a vxlan device) its parameters, for the path check in the output."""
    try:
        doc = json.loads(sh(*in_net(path, "ip", "-d", "-j", "link", "show", "dev", name)))[0]
    except (RuntimeError, ValueError, IndexError):
        return {}
    out = {"mtu": doc.get("mtu")}
    data = (doc.get("linkinfo") or {}).get("info_data") or {}
    if (doc.get("linkinfo") or {}).get("info_kind") == "vxlan":
        for k in ("id", "port", "learning", "proxy", "l2miss", "l3miss", "udp_csum", "udp_zero_csum6_tx", "ttl",
                  "tos", "ageing"):
            if k in data:
                out[k] = data[k]
    if (doc.get("linkinfo") or {}).get("info_slave_kind") == "bridge":
        out["hairpin"] = ((doc.get("linkinfo") or {}).get("info_slave_data") or {}).get("hairpin")
    return out


# ------------------------------------------------------------------- replica
class Bare:
    """Two namespaces joined by one veth pair, MTU 1500: the floor for any pod path."""

    def __init__(self, tag: str, net: ipaddress.IPv4Network):
        self.a, self.b = f"pk-{tag}-bva", f"pk-{tag}-bvb"
        hosts = net.hosts()
        self.ip_a, self.ip_b = str(next(hosts)), str(next(hosts))
        self.tag = tag

    def build(self, td: Teardown) -> None:
        for n in (self.a, self.b):
            sh("ip", "netns", "add", n)
            td.add(f"netns {n}", lambda n=n: sh("ip", "netns", "del", n, check=False))
            sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"pkba{self.tag}", "netns", self.a, "mtu", str(FABRIC_MTU), "type", "veth", "peer",
           "name", f"pkbb{self.tag}", "netns", self.b, "mtu", str(FABRIC_MTU))
        for n, dev, ip in ((self.a, f"pkba{self.tag}", self.ip_a), (self.b, f"pkbb{self.tag}", self.ip_b)):
            sh("ip", "-n", n, "addr", "add", f"{ip}/30", "dev", dev)
            sh("ip", "-n", n, "link", "set", dev, "up")
        start_servers(ns_path(self.b), td, self.b)


class Replica:
    """The cluster's data path built by hand: fabric namespace + bridge, two node namespaces with cni0,
    three pods (a, b on node 1; c on node 2), host-gw routes or flannel.1 devices. See the module doc."""

    POD_CIDRS = ("10.244.0.0/24", "10.244.1.0/24")   # what node IPAM hands the first two nodes

    def __init__(self, tag: str, backend: str, fabric: ipaddress.IPv4Network, pod_mtu: int):
        self.tag, self.backend, self.pod_mtu = tag, backend, pod_mtu
        self.fabric_ns = f"pk-{tag}-rfab"
        self.nodes = [f"pk-{tag}-rn{i}" for i in (1, 2)]
        hosts = fabric.hosts()
        self.host_ip = str(next(hosts))    # the machine's end of the cluster's fabric: here a namespace of its own
        self.host_ns = f"pk-{tag}-rhst"
        self.node_ips = [str(next(hosts)), str(next(hosts))]
        self.prefix = fabric.prefixlen
        self.fabric_if = "eth0"            # the node's interface on the fabric (the agent's --iface)
        self.pods: dict[str, tuple[str, str]] = {}   # pod -> (netns name, ip)
        self.vtep_macs: list[str] = []

    def build(self, td: Teardown) -> None:
        t = self.tag
        self.td = td
        sh("ip", "netns", "add", self.fabric_ns)
        td.add(f"netns {self.fabric_ns}", lambda: sh("ip", "netns", "del", self.fabric_ns, check=False))
        sh("ip", "-n", self.fabric_ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.fabric_ns, "link", "add", "fab0", "mtu", str(FABRIC_MTU), "type", "bridge")
        sh("ip", "-n", self.fabric_ns, "link", "set", "fab0", "up")
        # the cluster's fabric bridge has a third port, the machine's veth (the API server's address); the
        # replica has it too, ending in a namespace of its own, so the bridge floods and learns the same way
        sh("ip", "netns", "add", self.host_ns)
        td.add(f"netns {self.host_ns}", lambda: sh("ip", "netns", "del", self.host_ns, check=False))
        sh("ip", "link", "add", "eth0", "netns", self.host_ns, "mtu", str(FABRIC_MTU), "type", "veth", "peer", "name",
           f"pkrh{t}", "netns", self.fabric_ns, "mtu", str(FABRIC_MTU))
        sh("ip", "-n", self.fabric_ns, "link", "set", f"pkrh{t}", "master", "fab0")
        sh("ip", "-n", self.fabric_ns, "link", "set", f"pkrh{t}", "up")
        sh("ip", "-n", self.host_ns, "addr", "add", f"{self.host_ip}/{self.prefix}", "dev", "eth0")
        sh("ip", "-n", self.host_ns, "link", "set", "eth0", "up")
        for i, node in enumerate(self.nodes):
            sh("ip", "netns", "add", node)
            td.add(f"netns {node}", lambda node=node: sh("ip", "netns", "del", node, check=False))
            sh("ip", "-n", node, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            far = f"pkrf{i + 1}{t}"
            sh("ip", "link", "add", self.fabric_if, "netns", node, "mtu", str(FABRIC_MTU), "type", "veth", "peer",
               "name", far, "netns", self.fabric_ns, "mtu", str(FABRIC_MTU))
            sh("ip", "-n", self.fabric_ns, "link", "set", far, "master", "fab0")
            sh("ip", "-n", self.fabric_ns, "link", "set", far, "up")
            sh("ip", "-n", node, "addr", "add", f"{self.node_ips[i]}/{self.prefix}", "dev", self.fabric_if)
            sh("ip", "-n", node, "link", "set", self.fabric_if, "up")
            cidr = ipaddress.ip_network(self.POD_CIDRS[i])
            gw = cidr.network_address + 1
            sh("ip", "-n", node, "link", "add", "cni0", "mtu", str(self.pod_mtu), "type", "bridge")
            sh("ip", "-n", node, "addr", "add", f"{gw}/{cidr.prefixlen}", "dev", "cni0")
            sh("ip", "-n", node, "link", "set", "cni0", "up")
        self._pod("a", 0, 2)
        self._pod("b", 0, 3)
        self._pod("c", 1, 2)
        if self.backend == "host-gw":
            for i, node in enumerate(self.nodes):
                j = 1 - i
                sh("ip", "-n", node, "route", "add", self.POD_CIDRS[j], "via", self.node_ips[j], "dev", self.fabric_if)
        else:
            for i, node in enumerate(self.nodes):
                net = ipaddress.ip_network(self.POD_CIDRS[i]).network_address
                sh("ip", "-n", node, "link", "add", "flannel.1", "mtu", str(FABRIC_MTU - VXLAN_OVERHEAD), "type",
                   "vxlan", "id", str(VNI), "local", self.node_ips[i], "dev", self.fabric_if, "dstport", str(VXLAN_PORT),
                   "nolearning")
                sh("ip", "-n", node, "addr", "add", f"{net}/32", "dev", "flannel.1")
                sh("ip", "-n", node, "link", "set", "flannel.1", "up")
                self.vtep_macs.append(json.loads(sh("ip", "-n", node, "-j", "link", "show", "flannel.1"))[0]["address"])
            for i, node in enumerate(self.nodes):
                j = 1 - i
                peer_net = str(ipaddress.ip_network(self.POD_CIDRS[j]).network_address)
                sh("ip", "-n", node, "neigh", "replace", peer_net, "lladdr", self.vtep_macs[j], "dev", "flannel.1",
                   "nud", "permanent")
                sh("bridge", "-n", node, "fdb", "replace", self.vtep_macs[j], "dev", "flannel.1", "dst",
                   self.node_ips[j], "self", "permanent")
                sh("ip", "-n", node, "route", "add", self.POD_CIDRS[j], "via", peer_net, "dev", "flannel.1", "onlink")
        start_servers(ns_path(self.pods["a"][0]), td, "replica pod a")

    def _pod(self, name: str, node_i: int, host: int) -> None:
        node = self.nodes[node_i]
        ns = f"pk-{self.tag}-rp{name}"
        cidr = ipaddress.ip_network(self.POD_CIDRS[node_i])
        ip, gw = str(cidr.network_address + host), str(cidr.network_address + 1)
        sh("ip", "netns", "add", ns)
        # the pod's namespace goes before the node's (teardown is LIFO), taking its veth with it
        self.td.add(f"netns {ns}", lambda: sh("ip", "netns", "del", ns, check=False))
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        hv = f"vethr{name}{self.tag}"
        sh("ip", "link", "add", hv, "netns", node, "mtu", str(self.pod_mtu), "type", "veth", "peer", "name", "eth0",
           "netns", ns, "mtu", str(self.pod_mtu))
        sh("ip", "-n", node, "link", "set", hv, "master", "cni0")
        sh("ip", "-n", node, "link", "set", hv, "type", "bridge_slave", "hairpin", "on")
        sh("ip", "-n", node, "link", "set", hv, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{cidr.prefixlen}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", gw, "dev", "eth0")
        self.pods[name] = (ns, ip)

    def path_info(self) -> dict:
        node1 = ns_path(self.nodes[0])
        info = {"fabric_if": link_info(node1, self.fabric_if), "cni0": link_info(node1, "cni0"),
                "pod_eth0": link_info(ns_path(self.pods["a"][0]), "eth0"),
                "host_veth": link_info(node1, f"vethra{self.tag}"), "node_sysctls": node_sysctls(node1),
                "netfilter": netfilter(node1)}
        if self.backend == "vxlan":
            info["flannel.1"] = link_info(node1, "flannel.1")
        return info


# ---------------------------------------------------------------- pocketkube
class Cluster:
    """`pocketkube up --nodes 2 --backend B` on a throwaway data dir, with the three benchmark pods."""

    def __init__(self, backend: str, tmp: str):
        self.backend = backend
        self.data = os.path.join(tmp, f"pk-{backend}")
        self.node_network = str(free_subnet(28))
        self.port = free_port()
        self.client = None
        self.nodes: list[str] = []
        self.pods: dict[str, tuple[str, str]] = {}   # pod -> (netns path, ip)
        self.up_s = float("nan")

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def up(self) -> None:
        t = time.monotonic()
        r = self.cli("up", "--nodes", "2", "--backend", self.backend, "--data-dir", self.data, "--node-network",
                     self.node_network, "--port", str(self.port), "--no-host-routes")
        self.up_s = time.monotonic() - t
        if r.returncode != 0:
            raise RuntimeError(f"pocketkube up --backend {self.backend} failed ({r.returncode}):\n"
                               + (r.stdout + r.stderr)[-3000:])
        from client.kubeconfig import load_config
        from client.rest import Client

        self.client = Client(load_config(os.path.join(self.data, "kubeconfig")), timeout=10)

    def down(self) -> str:
        if self.client is not None:
            self.client.close()
            self.client = None
        r = self.cli("down", "--data-dir", self.data, "--purge")
        return "" if r.returncode == 0 else (r.stdout + r.stderr)[-1000:]

    def start_pods(self, timeout: float = 120) -> None:
        from api import resources as R

        nodes = sorted(n["metadata"]["name"] for n in self.client.list(R.NODES)["items"])
        if len(nodes) < 2:
            raise RuntimeError(f"expected 2 nodes, the API server lists {nodes}")
        self.nodes = nodes[:2]

        def pod(name: str, node: str, containers: list[dict]) -> dict:
            return {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default", "labels": {"app": "podnet-bench"}},
                    "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": containers}}

        def ctr(name: str, command: list[str]) -> dict:
            return {"name": name, "image": "pocketkube/host", "command": command}

        self.client.create(R.PODS, pod("srv", self.nodes[0], [ctr("iperf3", ["iperf3", "-s", "-p", str(IPERF_PORT)]),
                                                              ctr("qperf", pinned(["qperf", "-lp", str(QPERF_PORT)]))]), "default")
        self.client.create(R.PODS, pod("cli-same", self.nodes[0], [ctr("idle", ["sleep", "86400"])]), "default")
        self.client.create(R.PODS, pod("cli-cross", self.nodes[1], [ctr("idle", ["sleep", "86400"])]), "default")
        deadline = time.monotonic() + timeout
        ips: dict[str, str] = {}
        while time.monotonic() < deadline and len(ips) < 3:
            for p in self.client.list(R.PODS, "default", label_selector="app=podnet-bench")["items"]:
                st = p.get("status") or {}
                ready = [c for c in st.get("containerStatuses") or [] if c.get("ready")]
                if st.get("phase") == "Running" and st.get("podIP") and len(ready) == len(p["spec"]["containers"]):
                    ips[p["metadata"]["name"]] = st["podIP"]
            time.sleep(0.3)
        if len(ips) < 3:
            raise RuntimeError(f"benchmark pods not all Running with an IP within {timeout:.0f}s: {ips}")
        for name, ip in ips.items():
            self.pods[name] = (self.netns_of(name), ip)

    def netns_of(self, pod: str) -> str:
        """The pod sandbox's network namespace, from the node's runtime (any runtime of this data dir)."""
        from kubelet.runtime.client import RuntimeClient

        socks = glob.glob(os.path.join(self.data, "**", "runtime.sock"), recursive=True)
        for sock in socks:
            try:
                items = RuntimeClient(sock, timeout=10).call("list_sandboxes", namespace="default", name=pod)["items"]
            except Exception:  # noqa: BLE001 - another node's runtime, or one going away
                continue
            for sb in items:
                if sb.get("state") == "ready" and sb.get("netns_path"):
                    return sb["netns_path"]
        raise RuntimeError(f"no ready sandbox for pod {pod} in the runtimes {socks}")

    def node_netns(self, node: str) -> str | None:
        from deploy.state import short_id

        sid = short_id(self.data)
        names = [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]
        for cand in (f"pk-{sid}-{node}", f"pk-{sid}-node"):
            if cand in names:
                return ns_path(cand)
        return None

    def path_info(self) -> dict:
        info: dict = {"pod_eth0": link_info(self.pods["srv"][0], "eth0")}
        node = self.node_netns(self.nodes[0])
        if node is None:
            return info
        info["cni0"] = link_info(node, "cni0")
        info["node_sysctls"] = node_sysctls(node)
        info["netfilter"] = netfilter(node)
        try:
            ports = json.loads(sh(*in_net(node, "ip", "-j", "link", "show", "master", "cni0")) or "[]")
        except (RuntimeError, ValueError):
            ports = []
        if ports:
            info["host_veth"] = link_info(node, ports[0]["ifname"])
        if self.backend == "vxlan":
            info["flannel.1"] = link_info(node, "flannel.1")
        from api import resources as R

        # the fabric interface: the one node 1 reaches node 2's InternalIP through
        peer = [a["address"] for a in (self.client.get(R.NODES, self.nodes[1]).get("status") or {}).get("addresses")
                or [] if a.get("type") == "InternalIP"]
        try:
            dev = json.loads(sh(*in_net(node, "ip", "-j", "route", "get", peer[0])))[0].get("dev") if peer else None
        except (RuntimeError, ValueError, IndexError):
            dev = None
        if dev:
            info["fabric_if"] = link_info(node, dev)
        return info


def pod_mtu(cluster: Cluster | None, backend: str) -> int:
    if cluster is not None:
        got = link_info(cluster.pods["srv"][0], "eth0").get("mtu")
        if got:
            return int(got)
    return CNI_MTU[backend]


# ---------------------------------------------------------------------- main
def measure(path: str, ip: str, seconds: float, tries: int = 3) -> tuple[float, float]:
    """One round of one path; a failed run (a server still finishing the last test) is retried, bounded."""
    for i in range(tries):
        try:
            return throughput(path, ip, seconds), latency(path, ip, min(seconds, 2))
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            if i == tries - 1:
                raise
            log(f"retrying {ip} from {path}: {e}")
            time.sleep(1)
    raise AssertionError("unreachable")


def compare_paths(pk: dict, rep: dict) -> list[str]:
    """Where the cluster's path differs from the replica's (MTUs, vxlan parameters): should be empty."""
    diffs = []
    for dev in sorted(set(pk) | set(rep)):
        a, b = pk.get(dev), rep.get(dev)
        if a is None or b is None:
            continue
        for k in sorted(set(a) | set(b)):
            if k in ("ageing",) or dev == "netfilter":
                continue
            if a.get(k) != b.get(k):
                diffs.append(f"{dev}.{k}: pocketkube {a.get(k)!r} replica {b.get(k)!r}")
    return diffs


def run_backend(backend: str, tag: str, args: argparse.Namespace, tmp: str, out: dict) -> None:
    td = Teardown()
    cluster = Cluster(backend, tmp) if not args.replica_only else None
    key = backend.replace("-", "_")
    res: dict = {}
    out[key] = res
    try:
        if cluster is not None:
            log(f"[{backend}] pocketkube up --nodes 2 --backend {backend} --data-dir {cluster.data}")
            try:
                cluster.up()
                res["up_s"] = round(cluster.up_s, 1)
                cluster.start_pods()
            except Exception as e:  # noqa: BLE001 - report it and measure the replica anyway
                res["pocketkube_error"] = str(e)[-2000:]
                log(f"[{backend}] pocketkube side failed: {e}")
                err = cluster.down()
                if err:
                    res["down_error"] = err
                cluster = None
        mtu = pod_mtu(cluster, backend)
        rep = Replica(tag + ("g" if backend == "host-gw" else "x"), backend, free_subnet(28), mtu)
        log(f"[{backend}] replica (pod MTU {mtu}) and bare veth pair")
        rep.build(td)
        bare = Bare(tag + ("g" if backend == "host-gw" else "x"), free_subnet(30))
        bare.build(td)
        cases: dict[str, tuple[str, str]] = {
            "bare_veth": (ns_path(bare.a), bare.ip_b),
            "replica_same_node": (ns_path(rep.pods["b"][0]), rep.pods["a"][1]),
            "replica_cross_node": (ns_path(rep.pods["c"][0]), rep.pods["a"][1]),
        }
        if cluster is not None:
            cases["pk_same_node"] = (cluster.pods["cli-same"][0], cluster.pods["srv"][1])
            cases["pk_cross_node"] = (cluster.pods["cli-cross"][0], cluster.pods["srv"][1])
            pk_info, rep_info = cluster.path_info(), rep.path_info()
            res["path"] = {"pocketkube": pk_info, "replica": rep_info,
                           "differences": compare_paths(pk_info, rep_info)}
            res["nodes"] = cluster.nodes
        else:
            res["path"] = {"replica": rep.path_info()}
        for name, (path, ip) in cases.items():
            wait_reachable(path, ip)
        samples: dict[str, dict[str, list[float]]] = {c: {"gbps": [], "lat_us": []} for c in cases}
        for r in range(args.rounds):
            order = ["bare_veth"]
            for p in ("same_node", "cross_node"):
                pair = [f"replica_{p}"] + ([f"pk_{p}"] if cluster is not None else [])
                order += pair if r % 2 == 0 else pair[::-1]
            for c in order:
                g, lat = measure(*cases[c], args.seconds)
                samples[c]["gbps"].append(round(g, 3))
                samples[c]["lat_us"].append(round(lat, 2))
            log(f"[{backend}] round {r + 1}/{args.rounds}: " + ", ".join(
                f"{c} {samples[c]['gbps'][-1]:.2f} Gbit/s {samples[c]['lat_us'][-1]:.1f} us" for c in order))
        for c, s in samples.items():
            res[c] = {"gbps": round(median(s["gbps"]), 2), "lat_us": round(median(s["lat_us"]), 2),
                      "rounds_gbps": s["gbps"], "rounds_lat_us": s["lat_us"]}
        if cluster is not None:
            for p in ("same_node", "cross_node"):
                pk, rp = res[f"pk_{p}"], res[f"replica_{p}"]
                res[f"{p}_gbps_ratio"] = round(pk["gbps"] / rp["gbps"], 3)
                res[f"{p}_lat_ratio"] = round(pk["lat_us"] / rp["lat_us"], 3)
                # the same, round by round (each pair measured back to back), then the median: steadier
                # than the ratio of medians when the machine's background load drifts during the run
                res[f"{p}_gbps_ratio_paired"] = round(median(
                    [a / b for a, b in zip(pk["rounds_gbps"], rp["rounds_gbps"])]), 3)
                res[f"{p}_lat_ratio_paired"] = round(median(
                    [a / b for a, b in zip(pk["rounds_lat_us"], rp["rounds_lat_us"])]), 3)
    finally:
        if cluster is not None:
            log(f"[{backend}] pocketkube down --purge")
            err = cluster.down()
            if err:
                res["down_error"] = err
        errs = td.run()
        if errs:
            res["teardown_errors"] = errs


def main() -> None:
    global LAT_CPU
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=3.0, help="iperf3 run length (latency: min(this, 2) s)")
    ap.add_argument("--backends", default="host-gw,vxlan")
    ap.add_argument("--replica-only", action="store_true", help="measure only the replica and the bare pair")
    ap.add_argument("--lat-cpu", type=int, default=LAT_CPU,
                    help="CPU the latency client and server share (default: the last one); -1: unpinned")
    args = ap.parse_args()
    LAT_CPU = None if args.lat_cpu < 0 else args.lat_cpu
    if os.geteuid() != 0:
        print("podnet_bench: needs root", file=sys.stderr)
        sys.exit(2)
    missing = [t for t in ("ip", "bridge", "nsenter", "iperf3", "qperf") if shutil.which(t) is None]
    if missing:
        print(f"podnet_bench: missing {', '.join(missing)} (apt-get install iproute2 util-linux iperf3 qperf)",
              file=sys.stderr)
        sys.exit(2)
    tag = uuid.uuid4().hex[:4]
    tmp = tempfile.mkdtemp(prefix="pk-podnet-bench-")
    out: dict = {"bench": "podnet", "rounds": args.rounds, "seconds": args.seconds,
                 "tools": {"throughput": f"iperf3 -t {args.seconds:g} -J, one TCP stream, receiver rate",
                           "latency": "qperf tcp_lat, 1-byte messages, half round trip, client and server "
                                      + (f"on CPU {LAT_CPU}" if LAT_CPU is not None else "unpinned")},
                 "lat_ratio_target_max": LAT_TARGET, "gbps_ratio_target_min": 0.95}
    failed = False
    try:
        for b in [x.strip() for x in args.backends.split(",") if x.strip()]:
            if b not in CNI_MTU:
                raise SystemExit(f"unknown backend {b!r}")
            try:
                run_backend(b, tag, args, tmp, out)
            except Exception as e:  # noqa: BLE001 - keep the other backend's figures
                failed = True
                out.setdefault(b.replace("-", "_"), {})["error"] = f"{type(e).__name__}: {e}"[-2000:]
                log(f"[{b}] failed: {e}")
            if "pocketkube_error" in out.get(b.replace("-", "_"), {}):
                failed = True
    finally:
        left = [line.split()[0] for line in sh("ip", "netns", "list", check=False).splitlines()
                if line.startswith(f"pk-{tag}") or "-podnet-" in line]
        if left:
            out["leftover_netns"] = left
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    for b in ("host_gw", "vxlan"):
        r = out.get(b) or {}
        for k in ("cross_node_gbps_ratio", "cross_node_lat_ratio", "same_node_gbps_ratio", "same_node_lat_ratio",
                  "cross_node_gbps_ratio_paired", "cross_node_lat_ratio_paired"):
            if k in r:
                summary[f"{b}_{k}"] = r[k]
    out["summary"] = summary
    out["load_avg"] = os.getloadavg()[0]
    print(json.dumps(out))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
