"""Node IPAM and taints by condition: a real controller-manager process against a real API server.

The test plays the kubelets and the network agent: it creates Node objects
(without ``spec.podCIDR``, as a kubelet started without ``--pod-cidr`` does)
and patches ``nodes/status`` with the conditions a kubelet or agent would
post. Each test runs its own API server (embedded SQLite) and
controller-manager; a restart is a SIGTERM and a new process on the same
server.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from api import resources as R
from api.kinds.node import TAINT_NETWORK_UNAVAILABLE, TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE
from client.errors import Conflict, NotFound
from client.rest import Client
from tests.conftest import ApiServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ControllerManager:
    def __init__(self, server_url: str, log_path: str, *args: str):
        self.server_url = server_url
        self.log_path = log_path
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "ControllerManager":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "controller-manager", "--server", self.server_url,
             "--log-level", "debug", *self.args], stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


@pytest.fixture
def env(tmp_path):
    server = ApiServer(str(tmp_path)).start()
    client = Client(server=server.url)
    started: list[ControllerManager] = []

    def controller_manager(*args: str) -> ControllerManager:
        cm = ControllerManager(server.url, str(tmp_path / f"controller-manager-{len(started)}.log"), *args)
        started.append(cm)
        return cm.start()

    try:
        yield client, controller_manager
    finally:
        client.close()
        for cm in started:
            cm.stop()
        server.stop()


def wait_for(fn, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except NotFound:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def add_node(client, name, pod_cidr=None):
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    return client.create(R.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec})


def pod_cidr(client, name):
    spec = client.get(R.NODES, name).get("spec") or {}
    if spec.get("podCIDR"):
        assert spec.get("podCIDRs") == [spec["podCIDR"]]
    return spec.get("podCIDR")


def wait_cidr(client, name, timeout=15.0):
    return wait_for(lambda: pod_cidr(client, name), timeout, what=f"node {name}'s podCIDR")


def events_about(client, name, reason):
    return [e for e in client.list(R.EVENTS, "default").get("items") or []
            if e.get("reason") == reason and (e.get("involvedObject") or {}).get("name") == name]


def test_blocks_in_order_restart_reoccupies(env):
    client, controller_manager = env
    cm = controller_manager("--allocate-node-cidrs")
    got = []
    for name in ("node-a", "node-b", "node-c"):
        add_node(client, name)
        got.append(wait_cidr(client, name))
    assert got == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]

    cm.stop()
    # While it is down: a kubelet with --pod-cidr registers, and a node without one.
    add_node(client, "node-fixed", "10.244.3.0/24")
    add_node(client, "node-d")
    time.sleep(0.3)
    assert pod_cidr(client, "node-d") is None
    controller_manager("--allocate-node-cidrs")
    # Every held block was occupied first: the new node gets the first free one, not .0.
    assert wait_cidr(client, "node-d") == "10.244.4.0/24"
    assert [pod_cidr(client, n) for n in ("node-a", "node-b", "node-c", "node-fixed")] == [
        "10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]


def test_service_range_excluded_exhaustion_event_then_a_deleted_nodes_block_is_reused(env):
    client, controller_manager = env
    # 4 blocks, the first inside the service range: 3 for nodes.
    cm = controller_manager("--allocate-node-cidrs", "--cluster-cidr", "10.100.0.0/22",
                            "--service-cluster-ip-range", "10.100.0.0/24")
    for name, want in (("n1", "10.100.1.0/24"), ("n2", "10.100.2.0/24"), ("n3", "10.100.3.0/24")):
        add_node(client, name)
        assert wait_cidr(client, name) == want
    add_node(client, "n4")
    ev = wait_for(lambda: events_about(client, "n4", "CIDRNotAvailable"), what="a CIDRNotAvailable event")[0]
    assert ev["type"] == "Normal"
    assert ev["message"] == "Node n4 status is now: CIDRNotAvailable"
    assert ev["involvedObject"]["kind"] == "Node"
    assert ev["source"]["component"] == "cidrAllocator"
    assert pod_cidr(client, "n4") is None
    time.sleep(0.5)  # retried with backoff meanwhile: still alive, still no block
    assert cm.alive(), cm.log()[-3000:]
    assert pod_cidr(client, "n4") is None

    client.delete(R.NODES, "n2")
    assert wait_cidr(client, "n4") == "10.100.2.0/24"  # the freed block, handed out at once
    assert cm.alive()
    # A node whose podCIDR is outside the cluster range is left alone, with a Warning.
    add_node(client, "stray", "10.200.0.0/24")
    ev = wait_for(lambda: events_about(client, "stray", "InvalidPodCIDR"), what="an InvalidPodCIDR event")[0]
    assert ev["type"] == "Warning" and "outside the cluster CIDR 10.100.0.0/22" in ev["message"]
    assert pod_cidr(client, "stray") == "10.200.0.0/24"
    assert "Traceback" not in cm.log()


def taints(client, name):
    return [(t["key"], t["effect"]) for t in (client.get(R.NODES, name).get("spec") or {}).get("taints") or []]


def set_conditions(client, name, *conds):
    client.patch(R.NODES, name, {"status": {"conditions": [
        {"type": t, "status": s, "reason": "Test", "message": "set by the test"} for t, s in conds]}},
        subresource="status", patch_type="strategic")


def test_taints_follow_conditions_and_unschedulable(env):
    client, controller_manager = env
    cm = controller_manager()  # the taint controller runs by default, IPAM off
    client.create(R.NODES, {"metadata": {"name": "w1"}, "spec": {
        "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}})
    # No Ready condition yet: unreachable, as the scheduler's rule.
    wait_for(lambda: taints(client, "w1") == [("dedicated", "NoSchedule"), (TAINT_UNREACHABLE, "NoSchedule")],
             what="unreachable taint")
    set_conditions(client, "w1", ("Ready", "True"), ("NetworkUnavailable", "True"))
    wait_for(lambda: taints(client, "w1") == [("dedicated", "NoSchedule"), (TAINT_NETWORK_UNAVAILABLE, "NoSchedule")],
             what="network-unavailable taint")
    added = [t for t in client.get(R.NODES, "w1")["spec"]["taints"] if t["key"] == TAINT_NETWORK_UNAVAILABLE][0]
    assert added.get("timeAdded")
    # The network agent comes up (a strategic patch merges conditions by type).
    set_conditions(client, "w1", ("NetworkUnavailable", "False"))
    wait_for(lambda: taints(client, "w1") == [("dedicated", "NoSchedule")], what="network-unavailable gone")
    client.patch(R.NODES, "w1", {"spec": {"unschedulable": True}})  # kubectl cordon
    set_conditions(client, "w1", ("Ready", "False"))
    wait_for(lambda: sorted(taints(client, "w1")) == sorted([
        ("dedicated", "NoSchedule"), (TAINT_NOT_READY, "NoSchedule"), (TAINT_UNSCHEDULABLE, "NoSchedule")]),
        what="not-ready + unschedulable")
    client.patch(R.NODES, "w1", {"spec": {"unschedulable": None}})
    set_conditions(client, "w1", ("Ready", "True"))
    wait_for(lambda: taints(client, "w1") == [("dedicated", "NoSchedule")], what="untainted again")
    # The taint patch relies on the server refusing a stale resourceVersion.
    node = client.get(R.NODES, "w1")
    set_conditions(client, "w1", ("MemoryPressure", "False"))
    with pytest.raises(Conflict):
        client.patch(R.NODES, "w1", {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                                     "spec": {"taints": None}}, patch_type="strategic")
    # All taints removed by the controller ends with the field gone, not an error.
    client.patch(R.NODES, "w1", {"spec": {"taints": None}}, patch_type="strategic")
    set_conditions(client, "w1", ("NetworkUnavailable", "True"))
    wait_for(lambda: taints(client, "w1") == [(TAINT_NETWORK_UNAVAILABLE, "NoSchedule")], what="tainted again")
    set_conditions(client, "w1", ("NetworkUnavailable", "False"))
    wait_for(lambda: client.get(R.NODES, "w1")["spec"].get("taints") in (None, []), what="taints field gone")
    assert cm.alive() and "Traceback" not in cm.log()


def test_controllers_flag_turns_the_taint_controller_off(env):
    client, controller_manager = env
    cm = controller_manager("--controllers", "*,-nodelifecycle")
    client.create(R.NODES, {"metadata": {"name": "quiet"}})
    # Endpoints still run (a probe that the process is up and acting).
    client.create(R.SERVICES, {"metadata": {"name": "web", "namespace": "default"},
                               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    wait_for(lambda: client.get(R.ENDPOINTS, "web", "default"), what="endpoints of web")
    time.sleep(0.3)
    assert taints(client, "quiet") == []
    assert cm.alive()


def test_bad_flags_exit_2_with_a_clear_message():
    r = subprocess.run([sys.executable, "-m", "deploy.cli", "controller-manager", "--server", "http://127.0.0.1:1",
                        "--cluster-cidr", "10.244.0.0/16", "--node-cidr-mask-size", "12"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--node-cidr-mask-size 12 must be at least the --cluster-cidr prefix length (16)" in r.stderr
