"""e2e fixture for cluster DNS: `pocketkube dns` inside the node namespace of ``tests/e2e/conftest.py``'s cluster.

It listens on the node's address, port 53 (the node namespace is ours, so
port 53 there touches nothing of the machine's), registers that address in
kube-system/kube-dns, and the proxy already running in the node namespace
DNATs 10.96.0.10:53 to it. Stand-in pods get a resolv.conf the way the
kubelet will write one, placed at ``/etc/netns/<pod-ns>/resolv.conf``,
which ``ip netns exec`` bind-mounts over /etc/resolv.conf for processes it
starts in that namespace; every such file and its directory is removed on
teardown, and /etc/netns itself when this fixture created it. The process is stopped by PID.
"""
from __future__ import annotations

import os
import shutil
import sys

import httpx
import pytest

from tests.e2e.conftest import Proc
from tests.e2e.netns import dnat_targets, in_ns, wait_until

CLUSTER_DNS = "10.96.0.10"


def resolv_conf(namespace: str = "default", domain: str = "cluster.local") -> str:
    return (f"nameserver {CLUSTER_DNS}\n"
            f"search {namespace}.svc.{domain} svc.{domain} {domain}\n"
            "options ndots:5 timeout:2 attempts:2\n")


class ClusterDNS:
    def __init__(self, cluster, tmp: str):
        self.cluster = cluster
        self.node = cluster.node
        self.health_port = 8053
        self.proc = Proc(in_ns(self.node.ns, sys.executable, "-m", "addons.dns.main", "--server", cluster.url,
                               "--listen", f"{self.node.node_ip}:53", "--health-port", str(self.health_port),
                               "--node-name", "node-1", "--log-level", "debug"),
                         os.path.join(tmp, "dns.log"))
        self._netns_dirs: list[str] = []
        self._made_etc_netns = False

    def health(self, path: str) -> int:
        try:
            return httpx.get(f"http://{self.node.node_ip}:{self.health_port}{path}", timeout=1).status_code
        except httpx.HTTPError:
            return 0

    def start(self) -> "ClusterDNS":
        self.proc.start()
        wait_until(lambda: self.health("/ready") == 200 or self.proc.proc.poll() is not None, timeout=30,
                   what="dns ready")
        if self.proc.proc.poll() is not None:
            raise RuntimeError("dns exited: " + self.proc.log()[-2000:])
        self.wait_reachable()
        return self

    def registered(self) -> list:
        """This process's (ip, nodeName) pairs in kube-system/kube-dns; [] while the registrar has not written it."""
        from api import resources as R
        from client.errors import NotFound
        try:
            ep = self.cluster.client.get(R.ENDPOINTS, "kube-dns", "kube-system")
        except NotFound:
            return []
        return [(a["ip"], a.get("nodeName")) for s in ep.get("subsets") or [] for a in s.get("addresses") or []]

    def wait_reachable(self, timeout: float = 30.0) -> None:
        """Ready (caches synced) is not yet reachable: wait for the registration and the proxy's DNATs.

        /ready says the caches are synced; the registrar writes the Endpoints on
        its own thread and the proxy programs 10.96.0.10 after that, so a pod
        started at once could send its first queries into nothing (and glibc
        then waits out its timeouts for every search domain).
        """
        wait_until(lambda: (self.node.node_ip, "node-1") in self.registered(), timeout=timeout,
                   what="kube-dns endpoints with this DNS")
        for proto in ("udp", "tcp"):
            wait_until(lambda: dnat_targets(self.node.iptables_save("nat"), CLUSTER_DNS, 53, proto)
                       == {f"{self.node.node_ip}:53"}, timeout=timeout, what=f"kube-dns DNAT ({proto})")

    def give_resolv_conf(self, pod_ns: str, namespace: str = "default") -> str:
        if not os.path.isdir("/etc/netns"):
            os.mkdir("/etc/netns")
            self._made_etc_netns = True
        d = os.path.join("/etc/netns", pod_ns)
        os.makedirs(d, exist_ok=True)
        self._netns_dirs.append(d)
        path = os.path.join(d, "resolv.conf")
        with open(path, "w") as f:
            f.write(resolv_conf(namespace))
        return path

    def stop(self) -> None:
        self.proc.stop()
        for d in self._netns_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._netns_dirs = []
        if self._made_etc_netns:
            try:
                os.rmdir("/etc/netns")        # only if we made it and it is empty again
            except OSError:
                pass
            self._made_etc_netns = False


@pytest.fixture(scope="module")
def cluster_dns(cluster, tmp_path_factory):
    d = ClusterDNS(cluster, str(tmp_path_factory.mktemp("dns")))
    try:
        d.start()
        yield d
    finally:
        d.stop()
