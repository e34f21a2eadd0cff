"""e2e: a real three-node `pocketkube up --nodes 3` cluster per backend (host-gw, vxlan), issue 15's network tests.

Every test runs once per backend against the suite's shared cluster
(``multinode`` in tests/e2e/conftest.py, tests/e2e/multinode.py): one
server pod per node (``srv-<node>``, pinned by ``spec.nodeName``), clients
run inside pods' network namespaces or in the outside namespace on the
fabric. What is checked:

* pod to pod across nodes, TCP and UDP, the server sees the client pod's own
  IP (no NAT); a UDP datagram of exactly pod MTU - 28 bytes with DF set
  arrives whole, one byte more does not leave, and eth0's MTU is the
  backend's (1500 host-gw, 1450 vxlan); 1 MB across nodes arrives intact;
* a ClusterIP from a pod on every node to backends only on the other nodes;
  NodePort on every node from the outside namespace with the backend
  elsewhere (Cluster), and Local: the client's address kept, answered only
  by the node with the backend; DNS from a pod on every node;
* a network agent restart changes nothing in the kernel (no route event,
  the same routes, neighbours and FDB); `node add` / `node remove` leaves
  no route, FDB or neighbour entry for the node on the others; 200
  add/remove cycles of Node objects (API only) leave no kernel state;
* supervision: kill -9 of every component once; each comes back, the pods
  keep running (the same sandbox processes) and still answer.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from api import resources as R
from tests.e2e.multinode import SERVER, pocketkube
from tests.e2e.netns import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(multinode):
    """srv-<node> on every node, labelled node=<node> and not-<other>=y for every other node."""
    nodes = multinode.nodes
    pods = {}
    for n in nodes:
        labels = {"app": "mn", "node": n, **{f"not-{o}": "y" for o in nodes if o != n}}
        multinode.client.create(R.PODS, {
            "metadata": {"name": f"srv-{n}", "namespace": "default", "labels": labels},
            "spec": {"nodeName": n, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "srv", "image": "pocketkube/host",
                                     "command": [sys.executable, "-c", SERVER, f"srv-{n}", "1200"]}]}},
            "default")
    for n in nodes:
        pods[n] = multinode.wait_running(f"srv-{n}")
    yield pods
    for n in nodes:
        multinode.delete_pod(f"srv-{n}")


def ip(pod: dict) -> str:
    return pod["status"]["podIP"]


def eventually(fn, timeout=30.0, what="condition"):
    return wait_until(fn, timeout=timeout, interval=0.3, what=what)


# ---------------------------------------------------------------- pod to pod
def test_pod_to_pod_across_nodes_tcp_and_udp_keep_the_source(multinode, servers):
    nodes = multinode.nodes
    cidrs = {n: multinode.client.get(R.NODES, n)["spec"]["podCIDR"] for n in nodes}

    for n in nodes:
        assert ipaddress.ip_address(ip(servers[n])) in ipaddress.ip_network(cidrs[n]), (n, ip(servers[n]), cidrs)
    for a in nodes:
        for b in nodes:
            if a == b:
                continue
            for proto, port in (("tcp", 8080), ("udp", 5353)):
                r = multinode.connect(servers[a], ip(servers[b]), port, proto)
                assert r["ok"], (a, b, proto, r)
                name, src = r["answer"].split()[:2]
                assert name == f"srv-{b}" and src == ip(servers[a]), (a, b, proto, r)


def test_mtu_follows_the_backend_and_a_full_datagram_arrives_whole(multinode, servers):
    want = {"host-gw": 1500, "vxlan": 1450}[multinode.backend]
    assert multinode.mtu == want
    for n, pod in servers.items():
        assert multinode.eth0_mtu(pod) == want, n
    a, b = servers["node-1"], servers["node-2"]
    r = multinode.connect(a, ip(b), 5353, "udp", size=want - 28)
    assert r["ok"] and r["answer"].split() == ["srv-node-2", ip(a), str(want - 28)], r
    r = multinode.connect(a, ip(b), 5353, "udp", size=want - 27)       # one byte more: DF, does not fit
    assert not r["ok"] and "Message too long" in r["error"], r


def test_one_megabyte_across_nodes(multinode, servers):
    r = multinode.connect(servers["node-1"], ip(servers["node-3"]), 8081, "bulk", size=1 << 20, timeout=20)
    assert r["ok"], r
    n, got, sent = r["answer"].split()
    assert int(n) == 1 << 20 and got == sent


# ---------------------------------------------------------------- services
def _service(multinode, name: str, selector: dict, **spec) -> dict:
    body = {"metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": selector, "ports": [{"name": "who", "port": 80, "targetPort": 8080}], **spec}}
    return multinode.client.create(R.SERVICES, body, "default")


def test_cluster_ip_from_every_node_to_backends_on_the_others(multinode, servers):
    nodes = multinode.nodes
    vips = {n: _service(multinode, f"far-{n}", {f"not-{n}": "y"})["spec"]["clusterIP"] for n in nodes}
    try:
        for n in nodes:
            want = {f"srv-{o}" for o in nodes if o != n}
            seen: set[str] = set()

            def both():
                r = multinode.connect(servers[n], vips[n], 80)
                if r["ok"]:
                    seen.add(r["answer"].split()[0])
                return seen == want
            eventually(both, 40, f"{vips[n]} from {n} answered by {sorted(want)}; seen {seen}")
    finally:
        for n in nodes:
            multinode.client.delete(R.SERVICES, f"far-{n}", "default")


def test_node_port_cluster_and_local(multinode, servers):
    nodes = multinode.nodes
    backend_node = nodes[-1]
    cl = _service(multinode, "np-cluster", {"node": backend_node}, type="NodePort")
    lo = _service(multinode, "np-local", {"node": backend_node}, type="NodePort", externalTrafficPolicy="Local")
    try:
        pc, pl = cl["spec"]["ports"][0]["nodePort"], lo["spec"]["ports"][0]["nodePort"]
        out = multinode.outside_ip
        for n in nodes:                      # Cluster: every node answers, through the backend elsewhere
            r = eventually(lambda: (lambda x: x if x["ok"] else None)(
                multinode.connect(None, multinode.node_ip(n), pc)), 40, f"NodePort {pc} on {n}")
            assert r["answer"].split()[0] == f"srv-{backend_node}", r
            if n != backend_node:
                assert r["answer"].split()[1] != out, r          # masqueraded so the reply comes back this way
        # Local: the client's own address reaches the pod; only the node with the backend answers
        r = eventually(lambda: (lambda x: x if x["ok"] else None)(
            multinode.connect(None, multinode.node_ip(backend_node), pl)), 40, "Local NodePort")
        assert r["answer"].split() == [f"srv-{backend_node}", out], r
        for n in nodes:
            if n != backend_node:
                r = multinode.connect(None, multinode.node_ip(n), pl, timeout=1.5)
                assert not r["ok"], (n, r)
    finally:
        for name in ("np-cluster", "np-local"):
            multinode.client.delete(R.SERVICES, name, "default")


def test_dns_from_every_node(multinode, servers):
    for n, pod in servers.items():
        r = eventually(lambda: (lambda x: x if x["ok"] and x["a"] else None)(
            multinode.dns(pod, "kubernetes.default.svc.cluster.local")), 30, f"DNS from {n}")
        assert r["a"] == ["10.96.0.1"], (n, r)


# ---------------------------------------------------------------- the agent and the kernel
def _all_state(multinode) -> dict:
    return {n: multinode.kernel_state(n) for n in multinode.nodes}


def _pid(multinode, key: str) -> int | None:
    from deploy.procs import read_pid

    return read_pid(multinode.settings.layout.pidfile(key))


def _alive(pid: int | None, marker: str) -> bool:
    from deploy.system import RealSystem

    return RealSystem().alive(pid, marker)


def test_netd_restart_changes_nothing_in_the_kernel(multinode, servers):
    before = _all_state(multinode)
    assert all(len(s["routes"]) == len(multinode.nodes) - 1 for s in before.values()), before
    marker = multinode.settings.layout.marker
    monitor = subprocess.Popen(["ip", "-n", multinode.node_ns("node-2"), "monitor", "route"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        old = _pid(multinode, "node-2/netd")
        os.kill(old, signal.SIGTERM)
        eventually(lambda: _pid(multinode, "node-2/netd") != old and _alive(_pid(multinode, "node-2/netd"), marker),
                   20, "the supervisor to restart node-2's netd")
        time.sleep(3.0)                               # its first sync (it adopts) and more
    finally:
        monitor.terminate()
        events = monitor.communicate(timeout=10)[0].decode()
    assert events.strip() == "", events
    assert _all_state(multinode) == before
    r = multinode.connect(servers["node-2"], ip(servers["node-3"]), 8080)
    assert r["ok"] and r["answer"].split()[1] == ip(servers["node-2"]), r


def _mentions(state: dict, *needles: str) -> list[str]:
    return [line for kind in state.values() for line in kind if any(x in line for x in needles)]


def test_node_add_and_remove_leave_nothing_on_the_others(multinode, servers):
    r = pocketkube("node", "add", "--data-dir", multinode.data_dir, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    new = multinode.nodes[-1]
    assert new == "node-4"
    node = multinode.client.get(R.NODES, new)
    cidr, nip = node["spec"]["podCIDR"], multinode.node_ip(new)
    vtep = json.loads(node["metadata"]["annotations"].get("flannel.alpha.coreos.com/backend-data") or "null")
    mac = (vtep or {}).get("VtepMAC", "no-mac").lower()
    subnet_addr = cidr.split("/")[0]
    pod = multinode.run_pod("on-4", new)
    try:
        r = multinode.connect(servers["node-1"], ip(pod), 8080)
        assert r["ok"] and r["answer"].split() == ["on-4", ip(servers["node-1"])], r
        for n in ("node-1", "node-2", "node-3"):
            assert _mentions(multinode.kernel_state(n), cidr), n
    finally:
        r = pocketkube("node", "remove", new, "--data-dir", multinode.data_dir, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert new not in multinode.nodes
    needles = (cidr, nip + " ", subnet_addr + " ", mac) if multinode.backend == "vxlan" else (cidr, nip + " ")
    for n in multinode.nodes:
        eventually(lambda: not _mentions(multinode.kernel_state(n), *needles), 20,
                   f"{n} forgets {new}: {_mentions(multinode.kernel_state(n), *needles)}")
    host_routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, timeout=10).stdout
    assert cidr not in host_routes and f"via {nip} " not in host_routes
    assert multinode.settings.node_netns(new) not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                                    text=True).stdout
    from client.errors import NotFound

    with pytest.raises(NotFound):
        multinode.client.get(R.NODES, new)


def test_two_hundred_node_object_cycles_leave_no_kernel_state(multinode):
    backend = multinode.backend
    ghost_ip = str(multinode.subnet.broadcast_address - 2)
    cidr = "10.244.200.0/24"
    mac = "02:42:ac:11:00:c8"

    def body(i: int) -> dict:
        ann = {"flannel.alpha.coreos.com/backend-type": backend,
               "flannel.alpha.coreos.com/backend-data": json.dumps({"VNI": 1, "VtepMAC": mac})
               if backend == "vxlan" else "null",
               "flannel.alpha.coreos.com/public-ip": ghost_ip,
               "flannel.alpha.coreos.com/kube-subnet-manager": "true"}
        return {"metadata": {"name": f"ghost-{i}", "annotations": ann}, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}

    needles = (cidr, ghost_ip + " ", mac) if backend == "vxlan" else (cidr,)
    # one that stays long enough is programmed everywhere: the check below is not vacuous
    multinode.client.create(R.NODES, body(0))
    for n in multinode.nodes:
        eventually(lambda: _mentions(multinode.kernel_state(n), cidr), 20, f"{n} routes the ghost")
    multinode.client.delete(R.NODES, "ghost-0")
    t = time.monotonic()
    for i in range(1, 201):
        multinode.client.create(R.NODES, body(i))
        multinode.client.delete(R.NODES, f"ghost-{i}")
    took = time.monotonic() - t
    for n in multinode.nodes:
        eventually(lambda: not _mentions(multinode.kernel_state(n), *needles), 30,
                   f"{n} holds nothing of the ghosts: {_mentions(multinode.kernel_state(n), *needles)}")
    assert not [x["metadata"]["name"] for x in multinode.client.list(R.NODES)["items"]
                if x["metadata"]["name"].startswith("ghost-")]
    print(f"200 Node create/delete cycles in {took:.1f}s")


# ---------------------------------------------------------------- supervision
def test_supervision_kill_9_each_component_once(multinode, servers):
    lay = multinode.settings.layout
    marker = lay.marker
    keys = ["apiserver", "controller-manager", "scheduler", "dns", "node-2/kubelet", "node-2/proxy", "node-2/netd",
            "node-3/kubelet"]
    sandboxes = {n: multinode.sandbox_pid(p) for n, p in servers.items()}
    from deploy.supervise import read_restarts

    restarts0 = read_restarts(lay)
    old = {k: _pid(multinode, k) for k in keys}
    assert all(_alive(p, marker) for p in old.values()), old
    for k in keys:
        os.kill(old[k], signal.SIGKILL)

    def back():
        return all(_pid(multinode, k) != old[k] and _alive(_pid(multinode, k), marker) for k in keys)
    eventually(back, 30, "every killed component restarted by the supervisor")
    r = eventually(lambda: (lambda x: x if x.returncode == 0 else None)(
        pocketkube("status", "--data-dir", multinode.data_dir, timeout=30)), 60, "pocketkube status all well")
    restarts = read_restarts(lay)
    for k in keys:
        assert restarts.get(k, 0) == restarts0.get(k, 0) + 1, (k, restarts)
        line = next(x for x in r.stdout.splitlines() if x.split()[:1] == [k])
        assert line.split()[2] == "running" and line.split()[-1] == str(restarts[k]), line
    for n in multinode.nodes:
        assert f"node {n} ({multinode.node_ip(n)}): Ready" in r.stdout, r.stdout
    with open(lay.log("supervisor")) as f:
        text = f.read()
    assert all(f"restarted {k}: pid" in text for k in keys), text
    # the pods kept running: the same sandboxes, still answering across nodes
    assert {n: multinode.sandbox_pid(p) for n, p in servers.items()} == sandboxes
    eventually(lambda: multinode.connect(servers["node-1"], ip(servers["node-2"]), 8080)["ok"], 20, "pods answer")
