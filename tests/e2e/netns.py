"""Small helpers for e2e tests: a node network namespace with a bridge, stand-in pods, clients.

Everything follows docs/design.md's safety rules for a shared machine:

* every namespace is named ``pk-<tag>-...`` with a random tag, every veth
  ``pk<role><tag>`` or ``veth<hash>`` (15 characters at most);
* the only link into the machine's own namespace is one veth pair whose two
  addresses sit in a /30 picked from 100.64.0.0/16 after checking it
  overlaps no address or route already present; the node namespace has no
  default route, so nothing it does can leave the namespaces made here;
* no iptables rule is ever added in the machine's namespace (the proxy under
  test runs inside the node namespace);
* every process started here (echo servers, clients) is bounded in time and
  count, and killed by PID on teardown;
* ``Teardown`` runs every undo step even after failures and is idempotent;
  deleting a namespace removes the veth ends inside it, and the host end of
  the link is deleted explicitly.

Layout made by ``Node``::

    host (root ns) pkh<tag> 100.64.X.1/30 ──veth── pkn<tag> 100.64.X.2/30  node ns pk-<tag>-node
                                                   cni0 10.244.1.1/24 (bridge, gateway)
                                                     ├─ veth<hash> ──veth── eth0 10.244.1.N/24  pod ns pk-<tag>-<pod>
                                                     └─ ...
    outside ns pk-<tag>-out  eth0 100.64.X.6/30 ──veth── pko<tag> 100.64.X.5/30 (node ns)

The node also routes the service CIDR onto ``cni0``: a real node has a
default route, so traffic to a cluster IP without endpoints reaches the
filter table's REJECT instead of failing routing ("no route to host").
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

LINK_SPACE = ipaddress.ip_network("100.64.0.0/16")


def run(*args: str, check: bool = True, timeout: float = 30.0, input: bytes | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), capture_output=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
    return p


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def nsrun(ns: str, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return run(*in_ns(ns, *args), check=check, timeout=timeout)


def have_root_tools(*tools: str) -> tuple[bool, str]:
    import shutil

    if os.geteuid() != 0:
        return False, "needs root (network namespaces, veths, iptables)"
    for t in ("ip", *tools):
        if shutil.which(t) is None:
            return False, f"{t} not found (apt-get install iproute2 iptables conntrack)"
    return True, ""


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the machine's namespace already has an address or route in."""
    from deploy.system import parse_used_networks

    items: list[dict] = []
    for args in (["ip", "-4", "-j", "addr"], ["ip", "-4", "-j", "route", "show", "table", "all"]):
        try:
            items += json.loads(run(*args).stdout or b"[]")
        except (RuntimeError, ValueError):
            continue
    return parse_used_networks(items)


def pick_link_subnet() -> ipaddress.IPv4Network:
    """A free /29 in 100.64.0.0/16 (two /30 links: host<->node and node<->outside)."""
    used = used_networks()
    candidates = list(LINK_SPACE.subnets(new_prefix=29))
    random.shuffle(candidates)
    for net in candidates[:4096]:
        if net.network_address == LINK_SPACE.network_address:
            continue  # 100.64.0.0/24 is the default of `pocketkube up`; leave it to that
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /29 in 100.64.0.0/16 for a test link")


class Teardown:
    """LIFO undo steps; ``run()`` executes all of them, ignoring failures; idempotent."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], None]]] = []

    def add(self, what: str, fn: Callable[[], None]) -> None:
        self.steps.append((what, fn))

    def run(self) -> list[str]:
        errors = []
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep undoing the rest
                errors.append(f"{what}: {e}")
        return errors


def kill_proc(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def del_netns(name: str) -> None:
    # Kill anything still running in the namespace that this run started is the
    # caller's job (by PID); here only the namespace goes.
    run("ip", "netns", "del", name, check=False)


# ----------------------------------------------------------------- programs
ECHO_SERVER = r"""
import socket, sys, threading, time
name, tcp_port, udp_port, lifetime = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
end = time.monotonic() + lifetime
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", tcp_port)); s.listen(256); s.settimeout(1.0)
    while time.monotonic() < end:
        try:
            c, addr = s.accept()
        except socket.timeout:
            continue
        try:
            c.sendall(f"{name} {addr[0]}\n".encode())
        except OSError:
            pass
        c.close()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", udp_port)); u.settimeout(1.0)
    while time.monotonic() < end:
        try:
            data, addr = u.recvfrom(512)
        except socket.timeout:
            continue
        u.sendto(f"{name} {addr[0]}\n".encode(), addr)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
"""

CLIENT = r"""
import json, socket, sys, time
host, port, count, proto, per_timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
deadline = time.monotonic() + float(sys.argv[6])
counts, errors, sources, times = {}, {}, {}, []
for _ in range(count):
    if time.monotonic() > deadline:
        errors["deadline"] = errors.get("deadline", 0) + 1
        break
    t = time.monotonic()
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=per_timeout)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(per_timeout)
            s.connect((host, port)); s.send(b"hi"); data = s.recv(256); s.close()
        name, _, src = data.decode().strip().partition(" ")
        counts[name] = counts.get(name, 0) + 1
        sources[src] = sources.get(src, 0) + 1
    except Exception as e:
        key = type(e).__name__
        errors[key] = errors.get(key, 0) + 1
    times.append(time.monotonic() - t)
print(json.dumps({"counts": counts, "errors": errors, "sources": sources, "max_s": max(times or [0])}))
"""


@dataclass
class Pod:
    name: str
    ns: str
    ip: str
    host_veth: str
    server: subprocess.Popen | None = None


@dataclass
class Node:
    """A node namespace with a bridge and a link to the host (see the module docstring)."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    pod_cidr: str = "10.244.1.0/24"
    service_cidr: str = "10.96.0.0/12"
    teardown: Teardown = field(default_factory=Teardown)
    make_bridge: bool = True          # False: the kubelet's CNI plugin creates cni0 itself

    def __post_init__(self) -> None:
        self.ns = f"pk-{self.tag}-node"
        self.host_if = f"pkh{self.tag}"
        self.node_if = f"pkn{self.tag}"
        self.pods: dict[str, Pod] = {}
        self._pod_net = ipaddress.ip_network(self.pod_cidr)
        self.gateway = str(self._pod_net.network_address + 1)
        self._next_ip = 2
        self.outside_ns: str | None = None

    # ------------------------------------------------------------- set-up
    def setup(self) -> "Node":
        try:
            self._setup()
        except BaseException:
            self.destroy()
            raise
        return self

    def _setup(self) -> None:
        link = pick_link_subnet()
        hosts = list(link.hosts())
        self.link = link
        self.host_ip, self.node_ip = str(hosts[0]), str(hosts[1])        # .1, .2 of the first /30
        self.node_out_ip, self.outside_ip = str(hosts[4]), str(hosts[5])  # .5, .6 of the second /30
        run("ip", "netns", "add", self.ns)
        self.teardown.add(f"netns {self.ns}", lambda: del_netns(self.ns))
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.node_if, "netns", self.ns)
        self.teardown.add(f"link {self.host_if}", lambda: run("ip", "link", "del", self.host_if, check=False))
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        n = self.ns
        nsrun(n, "ip", "link", "set", "lo", "up")
        nsrun(n, "ip", "addr", "add", f"{self.node_ip}/30", "dev", self.node_if)
        nsrun(n, "ip", "link", "set", self.node_if, "up")
        # No ICMP redirects: traffic to a cluster IP comes in and goes out on cni0,
        # and redirects would both mislead pods and eat the per-host ICMP budget
        # that the REJECT of a service without endpoints needs.
        for conf in ("all", "default"):
            nsrun(n, "sysctl", "-qw", f"net.ipv4.conf.{conf}.send_redirects=0")
        nsrun(n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if self.make_bridge:
            nsrun(n, "ip", "link", "add", "cni0", "type", "bridge")
            nsrun(n, "ip", "addr", "add", f"{self.gateway}/{self._pod_net.prefixlen}", "dev", "cni0")
            nsrun(n, "ip", "link", "set", "cni0", "up")
            nsrun(n, "ip", "route", "add", self.service_cidr, "dev", "cni0")

    def add_outside(self) -> str:
        """A namespace standing in for a client outside the cluster, linked to the node only."""
        out = f"pk-{self.tag}-out"
        run("ip", "netns", "add", out)
        self.teardown.add(f"netns {out}", lambda: del_netns(out))
        veth = f"pko{self.tag}"
        nsrun(self.ns, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", out)
        nsrun(self.ns, "ip", "addr", "add", f"{self.node_out_ip}/30", "dev", veth)
        nsrun(self.ns, "ip", "link", "set", veth, "up")
        nsrun(out, "ip", "link", "set", "lo", "up")
        nsrun(out, "ip", "addr", "add", f"{self.outside_ip}/30", "dev", "eth0")
        nsrun(out, "ip", "link", "set", "eth0", "up")
        self.outside_ns = out
        return out

    def add_pod(self, name: str, tcp_port: int = 8080, udp_port: int = 5353, lifetime: float = 900.0) -> Pod:
        """A pod namespace on the bridge, with an echo server that answers with its name."""
        ip = str(self._pod_net.network_address + self._next_ip)
        self._next_ip += 1
        ns = f"pk-{self.tag}-{name}"[:40]
        host_veth = "veth" + hashlib.sha256(ns.encode()).hexdigest()[:8]
        run("ip", "netns", "add", ns)
        self.teardown.add(f"netns {ns}", lambda: del_netns(ns))
        nsrun(self.ns, "ip", "link", "add", host_veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        nsrun(self.ns, "ip", "link", "set", host_veth, "master", "cni0")
        nsrun(self.ns, "ip", "link", "set", host_veth, "type", "bridge_slave", "hairpin", "on")
        nsrun(self.ns, "ip", "link", "set", host_veth, "up")
        nsrun(ns, "ip", "link", "set", "lo", "up")
        nsrun(ns, "ip", "addr", "add", f"{ip}/{self._pod_net.prefixlen}", "dev", "eth0")
        nsrun(ns, "ip", "link", "set", "eth0", "up")
        nsrun(ns, "ip", "route", "add", "default", "via", self.gateway)
        pod = Pod(name, ns, ip, host_veth)
        proc = subprocess.Popen(in_ns(ns, sys.executable, "-c", ECHO_SERVER, name, str(tcp_port), str(udp_port),
                                      str(lifetime)), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.teardown.add(f"echo server {name}", lambda: kill_proc(proc))
        line = proc.stdout.readline() if proc.stdout else b""
        if b"ready" not in line:
            raise RuntimeError(f"echo server in {ns} did not start")
        pod.server = proc
        self.pods[name] = pod
        return pod

    def connect(self, ns: str, host: str, port: int, count: int = 1, proto: str = "tcp",
                per_timeout: float = 2.0, deadline: float = 60.0) -> dict:
        """Open ``count`` connections (or UDP exchanges) from ``ns``; returns counts per pod and errors."""
        p = run(*in_ns(ns, sys.executable, "-c", CLIENT, host, str(port), str(count), proto, str(per_timeout),
                       str(deadline)), timeout=deadline + 30)
        return json.loads(p.stdout)

    def iptables_save(self, table: str | None = None) -> str:
        args = ["iptables-save"] + (["-t", table] if table else [])
        return nsrun(self.ns, *args).stdout.decode()

    def destroy(self) -> list[str]:
        return self.teardown.run()


def wait_until(fn: Callable[[], object], timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def dnat_targets(save_text: str, vip: str, port: int, proto: str = "tcp") -> set[str]:
    """The ``ip:port`` DNAT destinations reachable from a cluster IP's service chain in ``iptables-save``."""
    chains: dict[str, list[str]] = {}
    for line in save_text.splitlines():
        if line.startswith("-A "):
            chains.setdefault(line.split()[1], []).append(line)
    svc = None
    for rule in chains.get("KUBE-SERVICES", []):
        if f"-d {vip}/32" in rule and f"--dport {port} " in rule + " " and f"-p {proto}" in rule:
            svc = rule.split("-j ")[-1].strip()
    if svc is None:
        return set()
    out = set()
    for rule in chains.get(svc, []):
        target = rule.split("-j ")[-1].strip()
        if target.startswith("KUBE-SEP-"):
            for r in chains.get(target, []):
                if "--to-destination" in r:
                    out.add(r.split("--to-destination ")[1].split()[0])
    return out


__all__ = ["Node", "Pod", "Teardown", "run", "nsrun", "in_ns", "wait_until", "dnat_targets", "have_root_tools",
           "pick_link_subnet", "kill_proc"]
