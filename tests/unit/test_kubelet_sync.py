"""Unit tests: the kubelet's per-pod sync against in-memory fakes of the runtime, CNI and API client.

The real runtime, plugin and API server are covered by tests/e2e/test_kubelet.py;
here the decisions of ``PodSyncer.sync`` are checked fast and without root:
what it asks the runtime and the network plugin to do, and what status it writes.
"""
from __future__ import annotations

import itertools
import threading
import time

import pytest

from client.cache import Store
from client.events import EventRecorder, FakeEventSink
from kubelet.pods import PodSyncer, SandboxError
from kubelet.runtime.client import RuntimeCallError


class FakeRuntime:
    def __init__(self):
        self.sandboxes: dict[str, dict] = {}
        self.containers: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.ids = itertools.count(1)
        self.images = {"pocketkube/host"}

    def call(self, method: str, call_timeout=None, **p):
        self.calls.append((method, p))
        return getattr(self, method)(**p)

    def list_sandboxes(self, namespace=None, name=None):
        return {"items": [dict(s) for s in self.sandboxes.values()
                          if (namespace is None or s["pod"]["namespace"] == namespace)
                          and (name is None or s["pod"]["name"] == name)]}

    def list_containers(self, sandbox_id=None):
        return {"items": [dict(c) for c in self.containers.values()
                          if sandbox_id is None or c["sandbox_id"] == sandbox_id]}

    def run_sandbox(self, pod, hostname, network, labels, annotations=None):
        sid = f"sb{next(self.ids)}"
        self.sandboxes[sid] = {"id": sid, "pod": pod, "hostname": hostname, "network": network, "state": "ready",
                               "netns_path": f"/proc/{sid}/ns/net", "created_at": time.time(), "pid": 1,
                               "labels": labels, "annotations": annotations or {}}
        return dict(self.sandboxes[sid])          # the whole record, as the real daemon answers

    def create_container(self, sandbox_id, name, attempt, **spec):
        if spec.get("image") not in self.images:
            raise RuntimeCallError(f'image "{spec.get("image")}" not found', "ImageNotFound")
        cid = f"c{next(self.ids)}"
        self.containers[cid] = {"id": cid, "sandbox_id": sandbox_id, "name": name, "attempt": attempt,
                                "state": "created", "exit_code": None, "reason": "", "created_at": time.time(),
                                "started_at": "", "finished_at": "", "started_ts": 0.0, "finished_ts": 0.0,
                                "spec": spec, "labels": spec.get("labels", {}), "message": ""}
        return {"id": cid}

    def start_container(self, id):
        c = self.containers[id]
        c.update(state="running", started_at="2026-01-01T00:00:00Z", started_ts=time.time(), pid=42)
        return dict(c)                            # the whole record, as the real daemon answers

    def exit(self, name: str, code: int, ago: float = 0.0) -> None:
        for c in self.containers.values():
            if c["name"] == name and c["state"] == "running":
                c.update(state="exited", exit_code=code, reason="Completed" if code == 0 else "Error",
                         finished_at="2026-01-01T00:00:05Z", finished_ts=time.time() - ago)

    def stop_container(self, id, timeout=0):
        c = self.containers[id]
        if c["state"] == "running":
            c.update(state="exited", exit_code=137, reason="Error", finished_ts=time.time())
        return {"exit_code": c["exit_code"]}

    def remove_container(self, id):
        self.containers.pop(id, None)
        return {}

    def stop_sandbox(self, id):
        for c in self.containers.values():
            if c["sandbox_id"] == id and c["state"] == "running":
                c.update(state="exited", exit_code=137, finished_ts=time.time())
        self.sandboxes[id]["state"] = "notready"
        return {}

    def remove_sandbox(self, id):
        self.stop_sandbox(id)
        for cid in [c for c, v in self.containers.items() if v["sandbox_id"] == id]:
            del self.containers[cid]
        del self.sandboxes[id]
        return {}


class FakeResult:
    def __init__(self, ip):
        self.ip = ip

    def pod_ip(self):
        return self.ip


class FakeNetwork:
    def __init__(self):
        self.added: dict[str, str] = {}
        self.deleted: list[str] = []
        self.fail: Exception | None = None
        self.n = 1

    def add(self, cid, netns, ifname, args, runtime_config=None):
        if self.fail:
            raise self.fail
        self.n += 1
        self.added[cid] = f"10.244.1.{self.n}"
        return FakeResult(self.added[cid])

    def delete(self, cid, netns, ifname, args):
        self.deleted.append(cid)

    def cached_result(self, cid, ifname="eth0"):
        return FakeResult(self.added[cid]) if cid in self.added and cid not in self.deleted else None

    def load(self):
        class L:
            plugins = [{"type": "fake"}]
        return L()


class FakeClient:
    def __init__(self):
        self.status: dict[str, dict] = {}
        self.events: list[tuple[str, str]] = []
        self.deleted: list[tuple] = []

    def patch(self, rt, name, body, namespace=None, subresource=None):
        self.status[name] = body["status"]
        return {}

    def patch_status(self, rt, name, status, namespace=None):
        return self.patch(rt, name, {"status": status}, namespace, subresource="status")

    def create_event(self, obj, reason, message, **kw):
        self.events.append((reason, message))

    def delete(self, rt, name, namespace=None, grace_period_seconds=None, preconditions=None):
        self.deleted.append((name, grace_period_seconds, preconditions))


def make_pod(name="web", policy="Always", image="pocketkube/host", **extra) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", **extra.pop("metadata", {})},
            "spec": {"nodeName": "n1", "restartPolicy": policy, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": image, "args": ["sleep", "1"],
                                     "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}],
                     **extra},
            "status": {}}


@pytest.fixture
def kl(tmp_path):
    pods = Store()
    rt, net, client = FakeRuntime(), FakeNetwork(), FakeClient()
    s = PodSyncer(client=client, pods_store=pods, services_store=Store(), runtime=rt, network=net, node_name="n1",
                  node_ip="100.64.0.2", root_dir=str(tmp_path), events=False)
    s.pods_, s.rt, s.net, s.api = pods, rt, net, client
    return s


def test_new_pod_gets_a_sandbox_network_containers_and_a_running_status(kl):
    kl.pods_.add(make_pod())
    assert kl.sync("default/web") is None
    (sb,) = kl.rt.sandboxes.values()
    assert sb["network"] == "pod" and sb["hostname"] == "web"
    assert kl.net.added == {sb["id"]: "10.244.1.2"}
    (c,) = kl.rt.containers.values()
    assert c["state"] == "running" and "IP=10.244.1.2" in c["spec"]["env"]
    files = dict((dst, src) for src, dst in c["spec"]["files"])
    assert set(files) == {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
    assert "10.244.1.2\tweb" in open(files["/etc/hosts"]).read()
    st = kl.api.status["web"]
    assert st["phase"] == "Running" and st["podIP"] == "10.244.1.2" and st["hostIP"] == "100.64.0.2"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    # a second sync changes nothing (idempotent) and writes no status
    before = (len(kl.rt.containers), len(kl.rt.sandboxes))
    kl.api.status.clear()
    kl.sync("default/web")
    assert (len(kl.rt.containers), len(kl.rt.sandboxes)) == before and kl.api.status == {}


def test_crash_waits_for_back_off_then_restarts_with_the_next_attempt(kl):
    kl.pods_.add(make_pod())
    kl.sync("default/web")
    kl.rt.exit("main", 1)
    retry = kl.sync("default/web")
    assert 9 < retry <= 10                                  # the first back-off is 10 s
    st = kl.api.status["web"]["containerStatuses"][0]
    assert st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert st["lastState"]["terminated"]["exitCode"] == 1
    for c in kl.rt.containers.values():                     # 10 s later
        c["finished_ts"] -= 10.5
    assert kl.sync("default/web") is None
    running = [c for c in kl.rt.containers.values() if c["state"] == "running"]
    assert [c["attempt"] for c in running] == [1]
    assert kl.api.status["web"]["containerStatuses"][0]["restartCount"] == 1
    kl.rt.exit("main", 1)
    assert 19 < kl.sync("default/web") <= 20                # then 20 s


def test_never_and_success_ends_the_pod_and_releases_its_network(kl):
    kl.pods_.add(make_pod(policy="Never"))
    kl.sync("default/web")
    kl.rt.exit("main", 0)
    kl.sync("default/web")
    assert kl.api.status["web"]["phase"] == "Succeeded"
    (sb,) = kl.rt.sandboxes.values()
    assert sb["state"] == "notready" and kl.net.deleted == [sb["id"]]
    assert [c["state"] for c in kl.rt.containers.values()] == ["exited"]    # kept for `logs`


def test_unknown_image_is_err_image_pull(kl):
    kl.pods_.add(make_pod(image="nosuch/image:1"))
    retry = kl.sync("default/web")
    st = kl.api.status["web"]
    assert st["phase"] == "Pending" and retry == 10.0
    w = st["containerStatuses"][0]["state"]["waiting"]
    assert w["reason"] == "ErrImagePull" and "nosuch/image:1" in w["message"]
    assert not kl.rt.containers


def test_deletion_stops_everything_then_completes_the_delete(kl):
    kl.pods_.add(make_pod())
    kl.sync("default/web")
    pod = make_pod(metadata={"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0})
    kl.pods_.add(pod)
    kl.sync("default/web")
    for t in threading.enumerate():
        if t.name.startswith("terminate-"):
            t.join(5)
    assert not kl.rt.sandboxes and not kl.rt.containers
    assert len(kl.net.deleted) == 1
    assert kl.api.deleted == [("web", 0, {"uid": "uid-web"})]


def test_gone_pod_is_torn_down(kl):
    kl.pods_.add(make_pod())
    kl.sync("default/web")
    kl.pods_.delete("default/web")
    kl.sync("default/web")
    assert not kl.rt.sandboxes and len(kl.net.deleted) == 1


def test_cni_failure_is_an_event_and_a_retry_not_a_crash(kl):
    sink = FakeEventSink()
    kl.recorder = EventRecorder(sink, "kubelet", host="n1")  # not started: flush writes on this thread
    kl.net.fail = RuntimeError("plugin exploded")
    kl.pods_.add(make_pod())
    with pytest.raises(SandboxError, match="plugin exploded"):
        kl.sync("default/web")
    assert not kl.rt.sandboxes                              # the half-made sandbox is removed
    st = kl.api.status["web"]
    assert st["phase"] == "Pending" and "plugin exploded" in st["message"]
    assert kl.recorder.flush(5)
    assert sink.reasons() == ["FailedCreatePodSandBox"]
    assert sink.events[0]["involvedObject"]["name"] == "web" and sink.events[0]["source"]["component"] == "kubelet"


def test_runtime_errors_surface_to_the_worker(kl):
    kl.pods_.add(make_pod())

    def broken(*a, **k):
        raise RuntimeCallError("runtime down", "Unavailable")
    kl.rt.call = broken
    with pytest.raises(RuntimeCallError):
        kl.sync("default/web")


def test_a_pod_start_asks_the_runtime_only_what_it_must(kl):
    kl.pods_.add(make_pod())
    kl.sync("default/web")
    # no image lookup (create answers ImageNotFound) and no re-list after the start (start answers the record)
    assert [m for m, _ in kl.rt.calls] == ["list_sandboxes", "run_sandbox", "create_container", "start_container"]
    assert kl.api.status["web"]["containerStatuses"][0]["state"].get("running")
    # a steady-state resync reads the pod's sandboxes and containers once and changes nothing
    kl.rt.calls.clear()
    kl.sync("default/web")
    assert [m for m, _ in kl.rt.calls] == ["list_sandboxes", "list_containers"]


def test_the_pleg_does_not_resync_a_new_pod_for_its_own_start_but_does_for_an_exit(kl):
    kl.pods_.add(make_pod())
    kl.sync("default/web")
    kl.rt.calls.clear()
    kl.pleg.relist()                             # sees the sandbox and container this sync made: nothing new
    assert kl.queue.len() == 0
    kl.rt.exit("main", 1)
    kl.pleg.relist()
    assert kl.queue.len() == 1 and kl.queue.get() == "default/web"


def test_a_new_containers_probes_start_with_it_and_readiness_starts_false(kl):
    probe = {"exec": {"command": ["true"]}, "initialDelaySeconds": 3600, "periodSeconds": 3600}
    pod = make_pod()
    pod["spec"]["containers"][0].update(readinessProbe=probe, livenessProbe=probe)
    kl.pods_.add(pod)
    try:
        kl.sync("default/web")
        (c,) = kl.rt.containers.values()
        # the workers exist after the very sync that started the container (no second sync needed) ...
        assert {(k[2], w.container_id) for k, w in kl.probes._workers.items()} == \
            {("readiness", c["id"]), ("liveness", c["id"])}
        # ... and until the readiness probe has succeeded the container is not ready (Kubernetes' initial state)
        st = kl.api.status["web"]
        assert st["phase"] == "Running" and st["containerStatuses"][0]["ready"] is False
        assert {x["type"]: x["status"] for x in st["conditions"]}["Ready"] == "False"
    finally:
        kl.probes.remove_pod("uid-web")


def test_a_restarted_kubelet_reads_the_ip_from_the_cni_cache_and_the_start_from_the_sandbox(kl, tmp_path):
    kl.pods_.add(make_pod())
    kl.sync("default/web")
    first = kl.api.status["web"]
    (sb,) = kl.rt.sandboxes.values()
    assert sb["annotations"]["pocketkube.io/start-time"] == first["startTime"]
    assert not list(tmp_path.rglob("network.json"))          # no kubelet-side copy of the network record
    # a new kubelet over the same runtime and network, before its first status write reached the cache
    pods = Store()
    pods.add(make_pod())
    again = PodSyncer(client=kl.api, pods_store=pods, services_store=Store(), runtime=kl.rt, network=kl.net,
                      node_name="n1", node_ip="100.64.0.2", root_dir=str(tmp_path), events=False)
    kl.api.status.clear()
    again.sync("default/web")
    st = kl.api.status["web"]
    assert st["podIP"] == "10.244.1.2" and st["startTime"] == first["startTime"]
    assert len(kl.rt.sandboxes) == 1 and len(kl.rt.containers) == 1


def test_a_finished_pod_whose_network_is_gone_keeps_its_reported_ip(kl, tmp_path):
    kl.pods_.add(make_pod(policy="Never"))
    kl.sync("default/web")
    kl.rt.exit("main", 0)
    kl.sync("default/web")
    assert kl.api.status["web"]["podIP"] == "10.244.1.2"
    pod = make_pod(policy="Never")
    pod["status"] = dict(kl.api.status["web"])
    pods = Store()
    pods.add(pod)
    again = PodSyncer(client=kl.api, pods_store=pods, services_store=Store(), runtime=kl.rt, network=kl.net,
                      node_name="n1", node_ip="100.64.0.2", root_dir=str(tmp_path), events=False)
    kl.api.status.clear()
    again.sync("default/web")                       # the DEL removed the attachment: the status keeps the IP
    assert kl.api.status["web"]["phase"] == "Succeeded" and kl.api.status["web"]["podIP"] == "10.244.1.2"
