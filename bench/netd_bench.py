#!/usr/bin/env python3
"""Network agent benchmark: convergence when many Nodes appear at once, and one change among many.

For each backend (host-gw, vxlan) and each size (default 100 and 1,000
Nodes) it starts, from scratch, a real API server (SQLite, bound to the host
end of a test link) and one node network namespace holding a bridge ``fab0``
that plays the fabric interface (an address in a /20 of 100.64.0.0/10 that
no route of the machine uses; nothing is ever sent on it: the remote nodes
are Node objects only, no kubelets, as the issue asks). Its own Node is made
by hand with a podCIDR from the cluster CIDR 10.240.0.0/12, then
``pocketkube netd`` runs in the namespace and publishes its annotations.
Then, in the same run:

burst          N Nodes (podCIDR + flannel annotations, public IPs in the
               /20) are created from 8 threads as fast as the API server
               takes them; ``converge_s`` = from the first create sent to
               the kernel event that completes the state (the Nth route,
               and for vxlan also the Nth neighbour and FDB entry), read
               from ``ip -ts monitor route neigh`` inside the namespace
               (its timestamps, so polling costs nothing); ``create_s`` is
               how long the creates alone took (the API floor);
raw baseline   the same N routes (+ neighbour and FDB entries for vxlan)
               loaded with ``ip -batch`` / ``bridge -batch`` into a
               throw-away namespace with the same devices: the kernel's own
               cost (``raw_s``), and ``converge_over_raw``;
one change     ``--changes`` times: patch one Node's annotation (host-gw:
               its public IP, so its route's gateway moves; vxlan: its
               VtepMAC, so its neighbour and FDB entries move), start the
               clock just before the PATCH is sent, stop it at the monitor's
               timestamp of the new entry; p50/p99 (``change_p99_ms``,
               target <= 100 ms at 1,000), beside the same one-entry change
               done by hand with ``ip route replace`` (``raw_change_ms``);
restart        netd stopped and started again with N Nodes present: time to
               its "converged" log line and the number of kernel route and
               neighbour events meanwhile (``restart_kernel_events``, must
               be 0: a restart adopts and rewrites nothing);
delete         all N Nodes deleted: time until the kernel holds none of
               their entries (``delete_converge_s``).

Targets (issue 15): ``converge_s`` <= 10 s at 1,000; ``change_p99_ms`` <=
100 ms at 1,000. Everything runs in namespaces this script creates
(``pk-bench-*``), removed in ``finally``; no iptables rule anywhere, no
traffic outside them. Needs root and iproute2. Progress on stderr, one JSON
line on stdout.

Usage: netd_bench.py [--sizes 100,1000] [--backends host-gw,vxlan] [--changes 40]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from api import resources as R  # noqa: E402
from bench.common import pct  # noqa: E402
from client.rest import Client  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.e2e.netns import used_networks  # noqa: E402

CLUSTER_CIDR = ipaddress.ip_network("10.240.0.0/12")
ANN = "flannel.alpha.coreos.com/"
MONITOR_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (.*)$")


def log(msg: str) -> None:
    print(f"[netd_bench] {msg}", file=sys.stderr, flush=True)


def run(*args: str, input: bytes | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:7])} exited {p.returncode}: {p.stderr.decode(errors='replace')[:400]}")
    return p


def free_net(prefix: int, skip: int = 0) -> ipaddress.IPv4Network:
    used = [u for u in used_networks() if u.version == 4]
    cands = list(ipaddress.ip_network("100.64.0.0/10").subnets(new_prefix=prefix))[skip:]
    random.shuffle(cands)
    for net in cands:
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /{prefix} in 100.64.0.0/10")


def pod_cidr(i: int) -> str:
    """Node i's block; 0 is the benchmark's own node."""
    return str(ipaddress.ip_network((int(CLUSTER_CIDR.network_address) + i * 256, 24)))


def vtep_mac(i: int, gen: int = 0) -> str:
    return "02:%02x:%02x:%02x:%02x:%02x" % (gen & 0xFF, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF, 0x42)


def node_body(i: int, backend: str, public_ip: str, mac: str) -> dict:
    data = json.dumps({"VNI": 1, "VtepMAC": mac}) if backend == "vxlan" else "null"
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"bn-{i}", "annotations": {
                ANN + "backend-type": backend, ANN + "backend-data": data, ANN + "public-ip": public_ip,
                ANN + "kube-subnet-manager": "true"}},
            "spec": {"podCIDR": pod_cidr(i), "podCIDRs": [pod_cidr(i)]},
            "status": {"addresses": [{"type": "InternalIP", "address": public_ip}]}}


def monitor_ts(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()   # ip -ts prints local wall time


class Env:
    """An API server, the node namespace with its fabric bridge, netd and a kernel-event monitor."""

    def __init__(self, backend: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.backend = backend
        self.ns = f"pk-bench-{tag}-netd"
        self.raw_ns = f"pk-bench-{tag}-raw"
        self.host_if, self.node_if = f"pkbh{tag}", f"pkbn{tag}"
        self.tmp = tempfile.mkdtemp(prefix="pk-netd-bench-")
        self.procs: list[subprocess.Popen] = []
        self.netd: subprocess.Popen | None = None
        self.netd_runs = 0
        self.monitor: subprocess.Popen | None = None
        self.made_ns: list[str] = []
        self.client: Client | None = None

    # ------------------------------------------------------------ set-up
    def setup(self) -> "Env":
        link = free_net(30, skip=64)
        h = list(link.hosts())
        self.host_ip, self.node_ip = str(h[0]), str(h[1])
        self.fabric = free_net(20)
        self.hosts = [str(a) for a in self.fabric.hosts()]
        self.own_ip = self.hosts[0]
        run("ip", "netns", "add", self.ns)
        self.made_ns.append(self.ns)
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.node_if, "netns", self.ns)
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        for argv in (("link", "set", "lo", "up"), ("addr", "add", f"{self.node_ip}/30", "dev", self.node_if),
                     ("link", "set", self.node_if, "up"), ("link", "add", "fab0", "type", "bridge"),
                     ("addr", "add", f"{self.own_ip}/{self.fabric.prefixlen}", "dev", "fab0"),
                     ("link", "set", "fab0", "up")):
            run("ip", "-n", self.ns, *argv)
        self.port = free_port()
        self.url = f"http://{self.host_ip}:{self.port}"
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "apiserver", "--bind-address", self.host_ip, "--port",
             str(self.port), "--data-dir", os.path.join(self.tmp, "data")],
            stdout=open(os.path.join(self.tmp, "apiserver.log"), "ab"), stderr=subprocess.STDOUT, cwd=ROOT))
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("API server did not start")
            time.sleep(0.05)
        self.client = Client(server=self.url, timeout=60)
        self.client.create(R.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bn-0"},
                                     "spec": {"podCIDR": pod_cidr(0), "podCIDRs": [pod_cidr(0)]}})
        self.client.patch(R.NODES, "bn-0", {"status": {"addresses": [{"type": "InternalIP", "address": self.own_ip}]}},
                          subresource="status")
        self.monitor_path = os.path.join(self.tmp, "monitor.txt")
        self.monitor = subprocess.Popen(["ip", "-n", self.ns, "-ts", "monitor", "route", "neigh"],
                                        stdout=open(self.monitor_path, "ab"), stderr=subprocess.DEVNULL)
        self.procs.append(self.monitor)
        self.start_netd()
        return self

    def start_netd(self) -> float:
        self.netd_runs += 1
        path = os.path.join(self.tmp, f"netd-{self.netd_runs}.log")
        self.netd_log = path
        t = time.time()
        self.netd = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "deploy.cli", "netd", "--node-name", "bn-0",
             "--server", self.url, "--backend", self.backend, "--iface", "fab0", "--public-ip", self.own_ip,
             "--cluster-cidr", str(CLUSTER_CIDR)],
            stdout=open(path, "ab"), stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(self.netd)
        self.wait(self.published, 60, "netd to publish its node's annotations")
        return t

    def stop_netd(self) -> None:
        if self.netd is not None and self.netd.poll() is None:
            self.netd.terminate()
            self.netd.wait(20)

    def published(self) -> bool:
        self.check_netd()
        node = self.client.get(R.NODES, "bn-0")
        anns = node["metadata"].get("annotations") or {}
        conds = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}
        return anns.get(ANN + "backend-type") == self.backend and \
            conds.get("NetworkUnavailable", {}).get("status") == "False"

    def check_netd(self) -> None:
        if self.netd is not None and self.netd.poll() is not None:
            with open(self.netd_log, errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"netd exited {self.netd.returncode}:\n{tail}")

    @staticmethod
    def wait(fn, timeout: float, what: str, interval: float = 0.05):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    # ------------------------------------------------------------ kernel state
    def kernel(self) -> dict:
        """Counts of the entries netd owns for remote nodes: routes into the cluster CIDR, neighbours, FDB."""
        routes = [r for r in json.loads(run("ip", "-n", self.ns, "-j", "-4", "route", "show", "root",
                                            str(CLUSTER_CIDR)).stdout or b"[]") if r.get("dst") != pod_cidr(0)]
        out = {"routes": len(routes)}
        if self.backend == "vxlan":
            neigh = json.loads(run("ip", "-n", self.ns, "-j", "neigh", "show", "dev", "flannel.1",
                                   check=False).stdout or b"[]")
            fdb = json.loads(run("bridge", "-n", self.ns, "-j", "fdb", "show", "dev", "flannel.1",
                                 check=False).stdout or b"[]")
            out["neigh"] = len([n for n in neigh if "PERMANENT" in (n.get("state") or [])])
            out["fdb"] = len([f for f in fdb if f.get("dst")])
        return out

    def complete(self, n: int) -> bool:
        self.check_netd()
        k = self.kernel()
        return all(v == n for v in k.values())

    def events(self, since: float) -> list[tuple[float, str]]:
        out = []
        with open(self.monitor_path, errors="replace") as f:
            for line in f:
                m = MONITOR_LINE.match(line.rstrip("\n"))
                if m:
                    t = monitor_ts(m.group(1))
                    if t >= since:
                        out.append((t, m.group(2)))
        return out

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(15)
        for ns in self.made_ns:
            run("ip", "netns", "del", ns, check=False)
        run("ip", "link", "del", self.host_if, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ------------------------------------------------------------------ raw baseline
def raw_load(env: Env, n: int) -> tuple[float, float]:
    """(seconds to load n nodes' entries with ip -batch / bridge -batch, ms for one ``ip route replace``)."""
    ns = env.raw_ns
    run("ip", "netns", "add", ns)
    env.made_ns.append(ns)
    try:
        run("ip", "-n", ns, "link", "add", "fab0", "type", "bridge")
        run("ip", "-n", ns, "addr", "add", f"{env.own_ip}/{env.fabric.prefixlen}", "dev", "fab0")
        run("ip", "-n", ns, "link", "set", "fab0", "up")
        ip_batch, fdb_batch = [], []
        if env.backend == "vxlan":
            run("ip", "-n", ns, "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "local",
                env.own_ip, "dev", "fab0", "nolearning")
            run("ip", "-n", ns, "link", "set", "flannel.1", "mtu", "1450", "up")
            run("ip", "-n", ns, "addr", "add", f"{ipaddress.ip_network(pod_cidr(0)).network_address}/32",
                "dev", "flannel.1")
        for i in range(1, n + 1):
            ip = env.hosts[i]
            if env.backend == "vxlan":
                gw = str(ipaddress.ip_network(pod_cidr(i)).network_address)
                ip_batch.append(f"neigh replace {gw} lladdr {vtep_mac(i)} dev flannel.1 nud permanent")
                ip_batch.append(f"route replace {pod_cidr(i)} via {gw} dev flannel.1 onlink")
                fdb_batch.append(f"fdb replace {vtep_mac(i)} dev flannel.1 dst {ip}")
            else:
                ip_batch.append(f"route replace {pod_cidr(i)} via {ip} dev fab0")
        t = time.monotonic()
        run("ip", "-n", ns, "-batch", "-", input=("\n".join(ip_batch) + "\n").encode())
        if fdb_batch:
            run("bridge", "-n", ns, "-batch", "-", input=("\n".join(fdb_batch) + "\n").encode())
        full = time.monotonic() - t
        one = []
        for k in range(5):
            i = 1 + k
            t = time.monotonic()
            if env.backend == "vxlan":
                gw = str(ipaddress.ip_network(pod_cidr(i)).network_address)
                run("ip", "-n", ns, "neigh", "replace", gw, "lladdr", vtep_mac(i, 9), "dev", "flannel.1", "nud",
                    "permanent")
            else:
                run("ip", "-n", ns, "route", "replace", pod_cidr(i), "via", env.hosts[n + 1 + k], "dev", "fab0")
            one.append((time.monotonic() - t) * 1000)
        return full, sorted(one)[len(one) // 2]
    finally:
        run("ip", "netns", "del", ns, check=False)
        env.made_ns.remove(ns)


# ------------------------------------------------------------------ the measurement
def create_all(client: Client, bodies: list[dict]) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: client.create(R.NODES, b), bodies))


def measure(backend: str, n: int, changes: int) -> dict:
    env = Env(backend)
    res: dict = {"backend": backend, "nodes": n}
    try:
        env.setup()
        bodies = [node_body(i, backend, env.hosts[i], vtep_mac(i)) for i in range(1, n + 1)]
        t0 = time.time()
        create_all(env.client, bodies)
        res["create_s"] = round(time.time() - t0, 3)
        env.wait(lambda: env.complete(n), 120, f"the kernel to hold {n} nodes' entries")
        evs = env.events(t0)
        res["converge_s"] = round(max(t for t, _ in evs) - t0, 3) if evs else None
        res["raw_s"], res["raw_change_ms"] = (round(x, 4) for x in raw_load(env, n))
        res["converge_over_raw"] = round(res["converge_s"] / res["raw_s"], 1) if res["raw_s"] else None
        log(f"{backend} {n}: creates {res['create_s']}s, converged {res['converge_s']}s, raw load {res['raw_s']}s")
        # one change among n
        lat = []
        for k in range(changes):
            i = random.randint(1, n)
            if backend == "vxlan":
                new_mac = vtep_mac(i, k + 1)
                patch = {"metadata": {"annotations": {ANN + "backend-data": json.dumps({"VNI": 1, "VtepMAC": new_mac})}}}
                want = [f"lladdr {new_mac}", f"lladdr {new_mac}"]      # the neighbour, and the FDB entry
            else:
                new_ip = env.hosts[n + 1 + k]
                patch = {"metadata": {"annotations": {ANN + "public-ip": new_ip}}}
                want = [f"{pod_cidr(i)} via {new_ip} "]
            t = time.time()
            env.client.patch(R.NODES, f"bn-{i}", patch)

            def seen():
                hits = [ts for ts, line in env.events(t) if any(w in line for w in want[:1])]
                return hits if len(hits) >= len(want) else None
            hits = env.wait(seen, 30, f"change {k} in the kernel", interval=0.01)
            lat.append((max(hits[:len(want)]) - t) * 1000)
        res["change_p50_ms"] = round(pct(lat, 50), 1)
        res["change_p99_ms"] = round(pct(lat, 99), 1)
        res["change_p99_over_raw"] = round(res["change_p99_ms"] / res["raw_change_ms"], 1)
        log(f"{backend} {n}: one change p50 {res['change_p50_ms']} ms, p99 {res['change_p99_ms']} ms "
            f"(raw {res['raw_change_ms']} ms)")
        # restart: adopt, rewrite nothing
        before = env.kernel()
        env.stop_netd()
        t = env.start_netd()
        env.wait(lambda: env.complete(n), 60, "netd to converge again after its restart")
        time.sleep(1.0)
        res["restart_ready_s"] = round(time.time() - t, 2)
        res["restart_kernel_events"] = len([1 for ts, line in env.events(t) if "10.24" in line or "10.25" in line
                                            or "lladdr" in line])
        res["restart_state_same"] = env.kernel() == before
        # delete them all
        t = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda b: env.client.delete(R.NODES, b["metadata"]["name"]), bodies))
        env.wait(lambda: env.complete(0), 120, "the kernel to forget every node")
        res["delete_converge_s"] = round(time.time() - t, 2)
        log(f"{backend} {n}: restart {res['restart_ready_s']}s with {res['restart_kernel_events']} kernel events; "
            f"delete all {res['delete_converge_s']}s")
        return res
    finally:
        env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--backends", default="host-gw,vxlan")
    ap.add_argument("--changes", type=int, default=40)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("netd_bench.py needs root (network namespaces)")
    results = []
    for backend in args.backends.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            results.append(measure(backend, n, args.changes))
    out = {"bench": "netd", "results": results,
           "targets": {"converge_s_at_1000": 10.0, "change_p99_ms_at_1000": 100.0}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
