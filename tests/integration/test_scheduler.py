"""The scheduler as a separate process against a real API server process, with Node objects and no kubelet.

Nodes are created by the test and given capacity/allocatable and a Ready
condition through nodes/status, exactly what a kubelet would write; pods are
created through the API and watched until bound. Every scheduler process is
started with ``python -m deploy.cli scheduler`` and stopped in a finally
block; every wait is bounded.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from api import resources as R
from client.rest import Client
from scheduler.testing import expr, make_node, make_pod, required_affinity
from tests.conftest import ApiServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def wait_for(cond, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class SchedulerProc:
    """One `pocketkube scheduler` process."""

    def __init__(self, url: str, log_dir: str, *args: str, name: str = "scheduler"):
        self.log_path = os.path.join(log_dir, f"{name}-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "scheduler", "--server", url, *args],
                                     cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


@pytest.fixture
def api(tmp_path):
    s = ApiServer(str(tmp_path)).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(api):
    with Client(server=api.url, timeout=10) as c:
        yield c


@pytest.fixture
def schedulers(api, tmp_path):
    """Start schedulers with ``start(*args)``; all are stopped at the end whatever happens."""
    procs: list[SchedulerProc] = []

    def start(*args: str, name: str = "scheduler") -> SchedulerProc:
        p = SchedulerProc(api.url, str(tmp_path), *args, name=name)
        procs.append(p)
        return p

    try:
        yield start
    finally:
        for p in procs:
            p.stop()


def add_node(client: Client, name: str, **kw) -> dict:
    """Create a Node and write the status a kubelet would (capacity, allocatable, Ready)."""
    node = make_node(name, **kw)
    status = node.pop("status")
    for k in ("uid", "resourceVersion"):
        node["metadata"].pop(k)
    created = client.create(R.NODES, node)
    created["status"] = status
    return client.update_status(R.NODES, created)


def add_pod(client: Client, name: str, **kw) -> dict:
    pod = make_pod(name, **kw)
    for k in ("uid", "resourceVersion"):
        pod["metadata"].pop(k)
    pod.pop("status")
    return client.create(R.PODS, pod)


def node_of(client: Client, name: str, ns: str = "default") -> str | None:
    return client.get(R.PODS, name, ns)["spec"].get("nodeName")


def wait_bound(client: Client, name: str, timeout: float = 10.0) -> str:
    return wait_for(lambda: node_of(client, name), timeout, what=f"pod {name} to be bound")


def scheduled_condition(client: Client, name: str) -> dict | None:
    for c in client.get(R.PODS, name, "default")["status"].get("conditions") or ():
        if c["type"] == "PodScheduled":
            return c
    return None


def wait_unschedulable(client: Client, name: str, timeout: float = 10.0) -> str:
    def msg():
        c = scheduled_condition(client, name)
        return c and c["status"] == "False" and c["reason"] == "Unschedulable" and c["message"]

    return wait_for(msg, timeout, what=f"pod {name} to be marked unschedulable")


def events_for(client: Client, name: str, reason: str) -> list[dict]:
    items = client.list(R.EVENTS, "default", field_selector=f"involvedObject.name={name}")["items"]
    return [e for e in items if e["reason"] == reason]


def lease_holder(client: Client) -> str:
    try:
        return client.get(R.LEASES, "kube-scheduler", "kube-system")["spec"].get("holderIdentity") or ""
    except Exception:
        return ""


# --------------------------------------------------------------------- tests
def test_resource_fit_to_the_last_millicore(client, schedulers):
    add_node(client, "n1", cpu="1", memory="1Gi", pods=10)
    schedulers()
    add_pod(client, "a", cpu="999m", memory="1023Mi")
    assert wait_bound(client, "a") == "n1"
    add_pod(client, "b", cpu="1m", memory="1Mi")  # exactly what is left
    assert wait_bound(client, "b") == "n1"
    add_pod(client, "c", cpu="1m")
    assert wait_unschedulable(client, "c") == "0/1 nodes are available: 1 Insufficient cpu."
    add_pod(client, "d", memory="1")  # one byte too many
    assert wait_unschedulable(client, "d") == "0/1 nodes are available: 1 Insufficient memory."
    assert node_of(client, "c") is None and node_of(client, "d") is None


def test_unschedulable_message_event_and_scheduled_event(client, schedulers):
    add_node(client, "small-1", cpu="1")
    add_node(client, "small-2", cpu="1")
    add_node(client, "gpu", cpu="16", taints=[GPU])
    schedulers()
    add_pod(client, "big", cpu="2")
    msg = "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."
    assert wait_unschedulable(client, "big") == msg
    ev = wait_for(lambda: events_for(client, "big", "FailedScheduling"), 10, what="FailedScheduling event")[0]
    assert ev["type"] == "Warning" and ev["message"] == msg
    assert ev["involvedObject"]["kind"] == "Pod" and ev["source"]["component"] == "default-scheduler"
    add_pod(client, "ok", cpu="500m")
    node = wait_bound(client, "ok")
    assert node.startswith("small-")
    ev = wait_for(lambda: events_for(client, "ok", "Scheduled"), 10, what="Scheduled event")[0]
    assert ev["type"] == "Normal" and ev["message"] == f"Successfully assigned default/ok to {node}"
    cond = scheduled_condition(client, "ok")
    assert cond["status"] == "True"


def test_taints_and_tolerations(client, schedulers):
    add_node(client, "plain", cpu="4")
    add_node(client, "gpu", cpu="4", labels={"accel": "gpu"}, taints=[GPU])
    add_node(client, "evict", cpu="4", labels={"accel": "gpu"},
             taints=[{"key": "maintenance", "effect": "NoExecute"}])
    schedulers()
    tol = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    add_pod(client, "tolerant", node_selector={"accel": "gpu"}, tolerations=tol)
    assert wait_bound(client, "tolerant") == "gpu"
    add_pod(client, "intolerant", node_selector={"accel": "gpu"})
    assert wait_unschedulable(client, "intolerant") == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {maintenance: }.")
    for i in range(4):
        add_pod(client, f"free-{i}")
    assert {wait_bound(client, f"free-{i}") for i in range(4)} == {"plain"}
    add_pod(client, "everything", tolerations=[{"operator": "Exists"}], node_selector={"accel": "gpu"})
    assert wait_bound(client, "everything") in ("gpu", "evict")


def test_node_affinity(client, schedulers):
    add_node(client, "a", labels={"zone": "a", "cores": "4"})
    add_node(client, "b", labels={"zone": "b", "cores": "16"})
    add_node(client, "c", labels={"zone": "c"})
    schedulers()
    add_pod(client, "in-b", affinity=required_affinity([expr("zone", "In", "b", "x")]))
    add_pod(client, "gt-8", affinity=required_affinity([expr("cores", "Gt", "8")]))
    add_pod(client, "lt-8", affinity=required_affinity([expr("cores", "Lt", "8")]))
    add_pod(client, "no-cores", affinity=required_affinity([expr("cores", "DoesNotExist")]))
    add_pod(client, "not-ab", affinity=required_affinity([expr("zone", "NotIn", "a", "b")]))
    add_pod(client, "or", affinity=required_affinity([expr("zone", "In", "nowhere")], [expr("cores", "Exists"),
                                                                                        expr("zone", "In", "a")]))
    expected = {"in-b": "b", "gt-8": "b", "lt-8": "a", "no-cores": "c", "not-ab": "c", "or": "a"}
    assert {name: wait_bound(client, name) for name in expected} == expected
    add_pod(client, "nowhere", affinity=required_affinity([expr("zone", "In", "z")]))
    assert wait_unschedulable(client, "nowhere") == \
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."


def test_spreading_by_service_and_owner(client, schedulers):
    # one big node the resource scores prefer, two small ones: only spreading evens them out
    add_node(client, "big", cpu="64", memory="256Gi")
    add_node(client, "small-1", cpu="8", memory="32Gi")
    add_node(client, "small-2", cpu="8", memory="32Gi")
    client.create(R.SERVICES, {"metadata": {"name": "web", "namespace": "default"},
                               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    schedulers()
    for i in range(6):
        add_pod(client, f"web-{i}", cpu="10m", labels={"app": "web"})
        wait_bound(client, f"web-{i}")
    by_service = Counter(node_of(client, f"web-{i}") for i in range(6))
    assert sorted(by_service.values()) == [2, 2, 2], by_service
    for i in range(6):
        add_pod(client, f"rs-{i}", cpu="10m", owner="api")
        wait_bound(client, f"rs-{i}")
    by_owner = Counter(node_of(client, f"rs-{i}") for i in range(6))
    assert sorted(by_owner.values()) == [2, 2, 2], by_owner


def test_rescheduled_when_a_node_is_added(client, schedulers):
    add_node(client, "small", cpu="1")
    schedulers()
    add_pod(client, "p", cpu="2")
    wait_unschedulable(client, "p")
    time.sleep(1.5)
    add_node(client, "large", cpu="4")
    t0 = time.monotonic()
    assert wait_bound(client, "p", timeout=10) == "large"
    assert time.monotonic() - t0 < 5  # moved by the node event (the safety-net retry is 5 min away)
    cond = scheduled_condition(client, "p")
    assert cond["status"] == "True"


def test_rescheduled_when_a_bound_pod_is_deleted(client, schedulers):
    add_node(client, "n", cpu="1")
    schedulers()
    add_pod(client, "first", cpu="800m")
    wait_bound(client, "first")
    add_pod(client, "second", cpu="800m")
    wait_unschedulable(client, "second")
    client.delete(R.PODS, "first", "default", grace_period_seconds=0)
    assert wait_bound(client, "second", timeout=10) == "n"


def test_other_scheduler_names_are_left_alone(client, schedulers):
    add_node(client, "n")
    schedulers("--scheduler-name", "custom", "--leader-elect", "false")
    add_pod(client, "default-one")
    add_pod(client, "custom-one", scheduler_name="custom")
    assert wait_bound(client, "custom-one") == "n"
    time.sleep(1)
    assert node_of(client, "default-one") is None


def test_leader_failover_after_sigkill(client, schedulers):
    add_node(client, "n1", cpu="8")
    add_node(client, "n2", cpu="8")
    leader = schedulers("--identity", "sched-a", name="a")
    wait_for(lambda: lease_holder(client) == "sched-a", 15, what="sched-a to lead")
    standby = schedulers("--identity", "sched-b", name="b")
    add_pod(client, "before", cpu="100m")
    wait_bound(client, "before")
    time.sleep(3)  # the standby has seen the lease renewed at least once
    assert lease_holder(client) == "sched-a" and standby.alive()
    leader.kill()
    t_kill = time.monotonic()
    add_pod(client, "after", cpu="100m")
    wait_bound(client, "after", timeout=25)
    took = time.monotonic() - t_kill
    print(f"standby bound a pod {took:.1f}s after the leader was SIGKILLed")
    assert lease_holder(client) == "sched-b"
    # the lease runs out 15 s after the leader's last renewal, which came before the kill
    assert took <= 15.5, f"standby bound {took:.1f}s after the leader was killed"
    lease = client.get(R.LEASES, "kube-scheduler", "kube-system")["spec"]
    assert lease["leaseTransitions"] == 1 and lease["leaseDurationSeconds"] == 15


def test_leader_that_lost_the_lease_does_not_bind(client, schedulers):
    """A frozen leader (SIGSTOP) loses the lease; thawed, it must not bind anything."""
    add_node(client, "n1", cpu="8")
    a = schedulers("--identity", "sched-a", name="a")
    wait_for(lambda: lease_holder(client) == "sched-a", 15, what="sched-a to lead")
    schedulers("--identity", "sched-b", name="b")
    time.sleep(2.5)
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: lease_holder(client) == "sched-b", 25, interval=0.2, what="sched-b to take over")
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    for i in range(10):
        add_pod(client, f"p{i}", cpu="100m")
    for i in range(10):
        wait_bound(client, f"p{i}")
    reporters = wait_for(lambda: [e.get("reportingInstance") for i in range(10)
                                  for e in events_for(client, f"p{i}", "Scheduled")]
                         if all(events_for(client, f"p{i}", "Scheduled") for i in range(10)) else None,
                         15, interval=0.3, what="Scheduled events")
    assert set(reporters) == {"sched-b"} and len(reporters) == 10
    assert a.alive()


def test_clean_shutdown_hands_over_at_once(client, schedulers):
    add_node(client, "n1")
    a = schedulers("--identity", "sched-a", name="a")
    wait_for(lambda: lease_holder(client) == "sched-a", 15, what="sched-a to lead")
    schedulers("--identity", "sched-b", name="b")
    time.sleep(1)
    a.stop()  # SIGTERM: releases the lease
    t0 = time.monotonic()
    add_pod(client, "p")
    wait_bound(client, "p", timeout=15)
    assert time.monotonic() - t0 < 6
    assert lease_holder(client) == "sched-b"


def test_restarted_scheduler_does_not_double_book(client, schedulers):
    add_node(client, "n1", cpu="1", pods=10)
    add_node(client, "n2", cpu="1", pods=10)
    first = schedulers("--leader-elect", "false", name="first")
    for name in ("a", "b"):
        add_pod(client, name, cpu="600m")
    assert {wait_bound(client, "a"), wait_bound(client, "b")} == {"n1", "n2"}
    first.kill()
    add_pod(client, "c", cpu="600m")   # fits nowhere: 400m left on each node
    add_pod(client, "d", cpu="400m")   # fits exactly on one of them
    schedulers("--leader-elect", "false", name="second")
    wait_bound(client, "d")
    assert wait_unschedulable(client, "c") == "0/2 nodes are available: 2 Insufficient cpu."
    for node in ("n1", "n2"):
        pods = client.list(R.PODS, "default", field_selector=f"spec.nodeName={node}")["items"]
        total = sum(int(p["spec"]["containers"][0]["resources"]["requests"]["cpu"][:-1]) for p in pods)
        assert total <= 1000


def test_kubeconfig_with_token_auth(tmp_path):
    """`--kubeconfig` alone: the informers, the binds and the events all carry the token."""
    from client.kubeconfig import write_kubeconfig

    token_file = tmp_path / "tokens.csv"
    token_file.write_text("s3cret-token,admin,1,system:masters\n")
    data = tmp_path / "auth"
    data.mkdir()
    server = ApiServer(str(data), token_file=str(token_file)).start()
    sched = None
    try:
        kubeconfig = write_kubeconfig(str(tmp_path / "kubeconfig"), server.url, "s3cret-token")
        with Client(server=server.url, token="s3cret-token", timeout=10) as c:
            add_node(c, "n1")
            log = open(tmp_path / "sched.log", "wb")
            sched = subprocess.Popen([sys.executable, "-m", "deploy.cli", "scheduler", "--kubeconfig", kubeconfig],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            add_pod(c, "p")
            assert wait_bound(c, "p", timeout=15) == "n1"
            wait_for(lambda: events_for(c, "p", "Scheduled"), 10, what="Scheduled event")
    finally:
        if sched is not None:
            sched.terminate()
            try:
                sched.wait(15)
            except subprocess.TimeoutExpired:
                sched.kill()
                sched.wait(5)
        server.stop()


def test_bad_flags_fail_fast(api):
    for args in (["--weights", "Bogus=1"], ["--leader-elect", "maybe"], ["--kubeconfig", "/nonexistent/kubeconfig"]):
        r = subprocess.run([sys.executable, "-m", "deploy.cli", "scheduler", *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip()


def test_survives_an_api_server_restart(tmp_path, client, schedulers, api):
    add_node(client, "n1", cpu="4")
    sched = schedulers()
    add_pod(client, "before")
    wait_bound(client, "before")
    api.kill()
    time.sleep(1)
    restarted = ApiServer(api.data_dir, port=api.port).start()
    try:
        add_node(client, "n2", cpu="64", memory="256Gi")
        add_pod(client, "after", cpu="32")  # only fits on the node created after the restart
        assert wait_bound(client, "after", timeout=30) == "n2"
        assert sched.alive()
    finally:
        restarted.stop()
