"""e2e fixtures: a real API server, controller-manager and proxy around one node namespace.

The API server binds only the host end of the node link (its
``--bind-address`` takes one address), which the root namespace reaches
as a local address and the node namespace over the veth; the
controller-manager runs in the root namespace, the proxy inside the node
namespace (``ip netns exec NODE python -m deploy.cli proxy``), as it would
on a node. Pods are stand-ins (``tests.e2e.netns``) whose API objects the
test creates and whose status (podIP, Ready) it writes through
``pods/NAME/status``, playing the kubelet.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from api import resources as R
from client.rest import Client
from tests.conftest import free_port, need
from tests.e2e.netns import Node, dnat_targets, have_root_tools, in_ns, kill_proc, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Proc:
    """One component process with its log file; stopped by PID."""

    def __init__(self, args: list[str], log_path: str):
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None:
            if kill and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            kill_proc(self.proc, 10)
            self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Cluster:
    def __init__(self, node: Node, tmp: str):
        self.node = node
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://{node.host_ip}:{self.port}"
        self.apiserver = Proc([sys.executable, "-m", "deploy.cli", "apiserver", "--bind-address", node.host_ip,
                               "--port", str(self.port), "--data-dir", os.path.join(tmp, "data")],
                              os.path.join(tmp, "apiserver.log"))
        self.cm = Proc([sys.executable, "-m", "deploy.cli", "controller-manager", "--server", self.url],
                       os.path.join(tmp, "controller-manager.log"))
        self.proxy = Proc(in_ns(node.ns, sys.executable, "-m", "deploy.cli", "proxy", "--node-name", "node-1",
                                "--server", self.url, "--cluster-cidr", "10.244.0.0/16",
                                "--min-sync-period", "0.1"),
                          os.path.join(tmp, "proxy.log"))
        self.client: Client | None = None

    def start_apiserver(self) -> None:
        self.apiserver.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.apiserver.proc.poll() is not None:
                raise RuntimeError("apiserver exited: " + self.apiserver.log()[-2000:])
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("apiserver not ready: " + self.apiserver.log()[-2000:])

    def start(self) -> "Cluster":
        self.start_apiserver()
        self.client = Client(server=self.url)
        self.client.create(R.NODES, {"metadata": {"name": "node-1"}, "spec": {"podCIDR": self.node.pod_cidr}})
        self.cm.start()
        self.proxy.start()
        wait_until(lambda: "sync done" in self.proxy.log(), timeout=20, what="first proxy sync")
        return self

    def stop(self) -> None:
        if self.client:
            self.client.close()
        for p in (self.proxy, self.cm, self.apiserver):
            p.stop()

    # ------------------------------------------------------------ helpers
    def service(self, name: str, selector: dict | None, ports: list[dict], **spec) -> dict:
        body = {"metadata": {"name": name, "namespace": "default"}, "spec": {"ports": ports, **spec}}
        if selector:
            body["spec"]["selector"] = selector
        return self.client.create(R.SERVICES, body)

    def pod(self, name: str, labels: dict, ready: bool = True):
        pod = self.node.add_pod(name)
        self.client.create(R.PODS, {
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"nodeName": "node-1", "containers": [{"name": "echo", "image": "pocketkube/host", "ports": [
                {"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 5353,
                                                           "protocol": "UDP"}]}]},
        })
        self.set_ready(name, ready)
        return pod

    def set_ready(self, name: str, ready: bool) -> None:
        ip = self.node.pods[name].ip
        self.client.patch(R.PODS, name, {"status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}},
            "default", subresource="status")

    def wait_programmed(self, vip: str, port: int, pods: list[str], proto: str = "tcp", target: int = 8080,
                        timeout: float = 20.0) -> None:
        """Until the node's iptables send ``vip:port`` to exactly these pods."""
        want = {f"{self.node.pods[p].ip}:{target}" for p in pods}
        wait_until(lambda: dnat_targets(self.node.iptables_save("nat"), vip, port, proto) == want,
                   timeout=timeout, interval=0.1, what=f"{vip}:{port} -> {sorted(want)}")


@pytest.fixture(scope="package")
def cluster(tmp_path_factory):
    ok, why = have_root_tools("iptables-restore", "iptables-save", "conntrack")
    need(ok, why)
    node = Node()
    c = None
    try:
        node.setup()
        node.add_outside()
        c = Cluster(node, str(tmp_path_factory.mktemp("e2e")))
        c.start()
        yield c
    finally:
        if c is not None:
            c.stop()
        errors = node.destroy()
        assert not errors, errors


@pytest.fixture(scope="session", params=["host-gw", "vxlan"])
def multinode(request, tmp_path_factory):
    """A real `pocketkube up --nodes 3 --backend <param>` cluster with an outside namespace on its fabric
    (tests.e2e.multinode), shared by the whole suite: one cluster per backend, torn down when pytest moves on
    to the next backend (or at the end)."""
    ok, why = have_root_tools("iptables-restore", "iptables-save", "nsenter", "openssl", "bridge")
    need(ok, why)
    from tests.e2e.multinode import fixture as multinode_fixture

    yield from multinode_fixture(str(tmp_path_factory.mktemp(f"multinode-{request.param}")), request.param)
