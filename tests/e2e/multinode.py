"""The multi-node e2e fixture: a real `pocketkube up --nodes N --backend B` cluster and an "outside" namespace.

Shared by the whole suite (``tests/e2e/conftest.py``'s session-scoped
``multinode`` fixture, one cluster per backend), so later issues (machines,
workload controllers, ingress, NetworkPolicy) build on the same cluster.

What it makes, following docs/design.md's safety rules for a shared machine:

* the cluster itself, exactly as a user gets it (``python -m deploy.cli up
  --nodes N --backend B``), with a data directory under pytest's tmp, a free
  API port, a free /28 of 100.64.0.0/16 as the fabric (never the default
  100.64.0.0/24), and ``--no-host-routes`` when another cluster on this
  machine already routes the pod or service ranges;
* an "outside" client namespace ``pk-<tag>-out`` plugged into the fabric
  bridge with the subnet's last address and no route but the fabric's: it
  plays the world for NodePort (later ingress and LoadBalancer) tests;
* teardown, even after a failure: ``pocketkube down --purge``, then the
  outside namespace; it checks that ``ip netns list`` shows none of them.

Pods run the built-in ``pocketkube/host`` image (the host's filesystem, so
the host's Python) with ``SERVER`` below, pinned to a node by
``spec.nodeName``. ``exec`` runs a command in a pod's network namespace from
the machine (``nsenter --net=/proc/<pause pid>/ns/net``, the pause PID from
the node's runtime), which is what a client in the pod sends and sees.
"""
from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
import sys
import time
import uuid

from api import resources as R
from tests.e2e.netns import LINK_SPACE, run, used_networks, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_IMAGE = "pocketkube/host"

# One program per pod: TCP 8080 answers "<name> <peer ip>\n"; TCP 8081 reads to EOF and answers
# "<bytes> <sha256>"; UDP 5353 answers "<name> <peer ip> <datagram length>". Bounded lifetime.
SERVER = r"""
import hashlib, socket, sys, threading, time
name = sys.argv[1]
end = time.monotonic() + float(sys.argv[2])
def who():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080)); s.listen(128); s.settimeout(1.0)
    while time.monotonic() < end:
        try:
            c, a = s.accept()
        except socket.timeout:
            continue
        try:
            c.sendall(f"{name} {a[0]}\n".encode())
        except OSError:
            pass
        c.close()
def bulk():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8081)); s.listen(16); s.settimeout(1.0)
    while time.monotonic() < end:
        try:
            c, a = s.accept()
        except socket.timeout:
            continue
        c.settimeout(20)
        h, n = hashlib.sha256(), 0
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                h.update(b); n += len(b)
            c.sendall(f"{n} {h.hexdigest()}\n".encode())
        except OSError:
            pass
        c.close()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353)); u.settimeout(1.0)
    while time.monotonic() < end:
        try:
            d, a = u.recvfrom(65535)
        except socket.timeout:
            continue
        u.sendto(f"{name} {a[0]} {len(d)}".encode(), a)
threading.Thread(target=bulk, daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
who()
"""

# A client run inside a pod's (or the outside) namespace: one exchange, the answer or the error as JSON.
CLIENT = r"""
import json, socket, sys
host, port, proto, size, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
try:
    if proto == "tcp":
        s = socket.create_connection((host, port), timeout=timeout)
        data = b""
        while not data.endswith(b"\n"):
            b = s.recv(256)
            if not b:
                break
            data += b
    elif proto == "bulk":
        import hashlib, os
        payload = os.urandom(size)
        s = socket.create_connection((host, port), timeout=timeout)
        s.sendall(payload); s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            b = s.recv(256)
            if not b:
                break
            data += b
        data = (data.decode().strip() + " " + hashlib.sha256(payload).hexdigest()).encode()
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout)
        s.setsockopt(socket.IPPROTO_IP, 10, 2)          # IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF, never fragment
        s.connect((host, port)); s.send(b"x" * size); data = s.recv(65535)
    print(json.dumps({"ok": True, "answer": data.decode().strip()}))
except Exception as e:
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
"""

DNS_QUERY = r"""
import json, sys
from dnslib import DNSRecord, QTYPE
try:
    r = DNSRecord.parse(DNSRecord.question(sys.argv[1], "A").send(sys.argv[2], 53, timeout=3))
    print(json.dumps({"ok": True, "a": [str(x.rdata) for x in r.rr if x.rtype == QTYPE.A]}))
except Exception as e:
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
"""


def pick_fabric_subnet(prefix: int = 28) -> ipaddress.IPv4Network:
    """A free /28 in 100.64.0.0/16 (host end, up to 12 nodes, the outside's address), never 100.64.0.0/24."""
    used = used_networks()
    candidates = list(LINK_SPACE.subnets(new_prefix=prefix))
    random.shuffle(candidates)
    default = ipaddress.ip_network("100.64.0.0/24")
    for net in candidates:
        if net.overlaps(default):
            continue
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /{prefix} in {LINK_SPACE} for a test fabric")


def pocketkube(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout


class MultiNodeCluster:
    """A running `pocketkube up --nodes N --backend B` and the outside namespace; see the module docstring."""

    def __init__(self, tmp: str, backend: str, nodes: int = 3, host_routes: bool = True):
        from tests.conftest import free_port

        self.tmp = tmp
        self.backend = backend
        self.n = nodes
        self.data_dir = os.path.join(tmp, "pk")
        self.kubeconfig = os.path.join(self.data_dir, "kubeconfig")
        self.subnet = pick_fabric_subnet()
        self.port = free_port()
        self.host_routes = host_routes
        self.tag = uuid.uuid4().hex[:6]
        self.outside_ns = f"pk-{self.tag}-out"
        self.outside_if = f"pko{self.tag}"
        self.outside_ip = str(self.subnet.broadcast_address - 1)
        self.client = None
        self.settings = None
        self.up_output = ""
        self.up_seconds = 0.0

    # ------------------------------------------------------------ life cycle
    def up_args(self) -> list[str]:
        args = ["--data-dir", self.data_dir, "--nodes", str(self.n), "--backend", self.backend,
                "--node-network", str(self.subnet), "--port", str(self.port), "--timeout", "90"]
        return args + ([] if self.host_routes else ["--no-host-routes"])

    def start(self) -> "MultiNodeCluster":
        from client.kubeconfig import load_config
        from client.rest import Client
        from deploy.state import load_state

        t = time.monotonic()
        r = pocketkube("up", *self.up_args())
        self.up_seconds = time.monotonic() - t
        self.up_output = r.stdout + r.stderr
        if r.returncode != 0:
            raise RuntimeError(f"pocketkube up failed ({r.returncode}):\n{self.up_output}")
        self.settings = load_state(self.data_dir)
        self.client = Client(load_config(self.kubeconfig), timeout=10.0)
        self.add_outside()
        return self

    def add_outside(self) -> None:
        s = self.settings
        run("ip", "netns", "add", self.outside_ns)
        f = s.fabric_ns
        run("ip", "-n", f, "link", "add", self.outside_if, "type", "veth", "peer", "name", "eth0",
            "netns", self.outside_ns)
        run("ip", "-n", f, "link", "set", self.outside_if, "master", "br-fabric", "up")
        o = self.outside_ns
        run("ip", "-n", o, "link", "set", "lo", "up")
        run("ip", "-n", o, "addr", "add", f"{self.outside_ip}/{self.subnet.prefixlen}", "dev", "eth0")
        run("ip", "-n", o, "link", "set", "eth0", "up")

    def stop(self) -> list[str]:
        """Everything gone, even after a failure; returns what could not be undone."""
        errors = []
        if self.client is not None:
            self.client.close()
            self.client = None
        try:
            r = pocketkube("down", "--data-dir", self.data_dir, "--purge")
            if r.returncode != 0:
                errors.append(f"pocketkube down: {r.stdout}{r.stderr}")
        except Exception as e:  # noqa: BLE001
            errors.append(f"pocketkube down: {e}")
        run("ip", "netns", "del", self.outside_ns, check=False)
        left = netns_list()
        from deploy.state import short_id

        for name in (self.outside_ns, f"pk-{short_id(self.data_dir)}-"):
            if name in left:
                errors.append(f"namespace {name}* left behind: {left}")
        return errors

    # ------------------------------------------------------------ the nodes
    @property
    def nodes(self) -> list[str]:
        from deploy.state import load_state

        self.settings = load_state(self.data_dir)
        return self.settings.node_names

    def node_ip(self, node: str) -> str:
        return self.settings.ip_of(node)

    def node_ns(self, node: str) -> str:
        return self.settings.node_netns(node)

    @property
    def mtu(self) -> int:
        return self.settings.mtu

    def in_node(self, node: str, *cmd: str, check: bool = True, timeout: float = 30) -> str:
        return run("ip", "netns", "exec", self.node_ns(node), *cmd, check=check, timeout=timeout).stdout.decode()

    def in_outside(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.outside_ns, *cmd, check=False, timeout=timeout)

    # ------------------------------------------------------------ pods
    def run_pod(self, name: str, node: str, labels: dict | None = None, lifetime: float = 1200,
                namespace: str = "default", timeout: float = 60) -> dict:
        """A pod pinned to ``node`` serving ``SERVER``; returns it once Running with a podIP."""
        body = {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "srv", "image": HOST_IMAGE,
                                         "command": [sys.executable, "-c", SERVER, name, str(lifetime)],
                                         "ports": [{"containerPort": 8080}, {"containerPort": 8081},
                                                   {"containerPort": 5353, "protocol": "UDP"}]}]}}
        self.client.create(R.PODS, body, namespace)
        return self.wait_running(name, namespace, timeout)

    def wait_running(self, name: str, namespace: str = "default", timeout: float = 60) -> dict:
        def running():
            try:
                p = self.client.get(R.PODS, name, namespace)
            except Exception:  # noqa: BLE001
                return None
            st = p.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
            return p if st.get("phase") == "Running" and st.get("podIP") and ready else None
        return wait_until(running, timeout=timeout, interval=0.2, what=f"pod {name} Running")

    def delete_pod(self, name: str, namespace: str = "default", timeout: float = 30) -> None:
        from client.errors import NotFound

        try:
            self.client.delete(R.PODS, name, namespace, grace_period_seconds=0)
        except NotFound:
            return

        def gone():
            try:
                self.client.get(R.PODS, name, namespace)
                return False
            except NotFound:
                return True
        wait_until(gone, timeout=timeout, interval=0.2, what=f"pod {name} gone")

    def sandbox_pid(self, pod: dict) -> int:
        from kubelet.runtime.client import RuntimeClient

        node = pod["spec"]["nodeName"]
        rc = RuntimeClient(self.settings.layout.runtime_socket(node))
        uid = pod["metadata"]["uid"]
        sb = next(s for s in rc.call("list_sandboxes")["items"] if s["pod"]["uid"] == uid and s["state"] == "ready")
        return int(sb["pid"])

    def exec(self, pod: dict, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """``cmd`` in the pod's network namespace (from the machine: the host image's filesystem)."""
        return run("nsenter", f"--net=/proc/{self.sandbox_pid(pod)}/ns/net", "--", *cmd, check=False,
                   timeout=timeout)

    def connect(self, pod: dict | None, host: str, port: int, proto: str = "tcp", size: int = 2,
                timeout: float = 3.0) -> dict:
        """One exchange with a ``SERVER`` from ``pod`` (None: from the outside namespace)."""
        argv = [sys.executable, "-c", CLIENT, host, str(port), proto, str(size), str(timeout)]
        p = self.in_outside(*argv, timeout=timeout + 30) if pod is None else self.exec(pod, *argv,
                                                                                        timeout=timeout + 30)
        try:
            return json.loads(p.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"ok": False, "error": p.stderr.decode(errors="replace")}

    def dns(self, pod: dict, name: str, server: str = "10.96.0.10") -> dict:
        p = self.exec(pod, sys.executable, "-c", DNS_QUERY, name, server, timeout=20)
        try:
            return json.loads(p.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"ok": False, "error": p.stderr.decode(errors="replace")}

    def eth0_mtu(self, pod: dict) -> int:
        out = json.loads(self.exec(pod, "ip", "-j", "link", "show", "dev", "eth0").stdout or b"[]")
        return int(out[0]["mtu"])

    # ------------------------------------------------------------ kernel state
    def kernel_state(self, node: str) -> dict[str, list[str]]:
        """What the network agent owns on ``node``, as text: its routes, the VXLAN device's neighbours and FDB."""
        ns = self.node_ns(node)

        def lines(*cmd: str) -> list[str]:
            out = run("ip", "netns", "exec", ns, *cmd, check=False).stdout.decode()
            return sorted(x.strip() for x in out.splitlines() if x.strip())
        return {"routes": lines("ip", "route", "show", "proto", "75"),
                "neigh": lines("ip", "neigh", "show", "dev", "flannel.1", "nud", "permanent"),
                "fdb": [x for x in lines("bridge", "fdb", "show", "dev", "flannel.1") if " dst " in x],
                "link": [x.split(" mtu ")[1].split()[0] for x in lines("ip", "-o", "link", "show", "dev", "flannel.1")
                         if " mtu " in x]}


def fixture(tmp: str, backend: str, nodes: int = 3):
    """The body of the pytest fixture: up, yield, always down and clean."""
    from tests.e2e.test_up import host_routes_free

    c = MultiNodeCluster(tmp, backend, nodes, host_routes=host_routes_free())
    try:
        c.start()
        yield c
    finally:
        errors = c.stop()
        assert not errors, errors


__all__ = ["MultiNodeCluster", "fixture", "pick_fabric_subnet", "SERVER", "CLIENT"]
