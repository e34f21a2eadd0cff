"""Endpoints controller against fake stores and a recording client (no server)."""
from __future__ import annotations

import copy

import pytest

from api import resources as R
from client.cache import Store, namespace_index
from client.errors import Conflict, NotFound
from controllers.endpoints import (EndpointsController, canonical_subsets, compute_endpoints, compute_subsets,
                                   endpoints_equal, find_port)


def pod(name, ip="10.244.1.2", ready=True, labels=None, ns="default", node="node-1", ports=None, **spec):
    p = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {"app": "web"},
                     "resourceVersion": "1"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "ports": ports or []}], **spec},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }
    if ip:
        p["status"]["podIP"] = ip
    return p


def svc(name="web", selector=None, ports=None, ns="default", cluster_ip="10.96.0.20", **spec):
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"tier": "fe"}, "resourceVersion": "1"},
        "spec": {"selector": {"app": "web"} if selector is None else selector, "clusterIP": cluster_ip,
                 "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080,
                                                            "protocol": "TCP"}], **spec},
    }


class FakeClient:
    def __init__(self, endpoints: Store):
        self.endpoints = endpoints
        self.calls: list[tuple] = []
        self.rv = 100
        self.fail: Exception | None = None

    def _store(self, obj):
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        for s in obj.get("subsets") or []:  # the server defaults protocol
            for p in s.get("ports") or []:
                p.setdefault("protocol", "TCP")
        self.endpoints.add(obj)
        return obj

    def create(self, rt, obj, namespace=None):
        assert rt is R.ENDPOINTS
        self.calls.append(("create", obj["metadata"]["name"]))
        if self.fail:
            raise self.fail
        return self._store(obj)

    def update(self, rt, obj, namespace=None):
        self.calls.append(("update", obj["metadata"]["name"]))
        if self.fail:
            raise self.fail
        return self._store(obj)

    def delete(self, rt, name, namespace=None):
        self.calls.append(("delete", name))
        if self.endpoints.delete(f"{namespace}/{name}") is None:
            raise NotFound("gone")
        return {}


@pytest.fixture
def ctl():
    services = Store(indexers={"namespace": namespace_index})
    pods = Store(indexers={"namespace": namespace_index})
    endpoints = Store()
    c = EndpointsController(FakeClient(endpoints), services, pods, endpoints, workers=1)
    return c


def drain(c: EndpointsController) -> None:
    while c.queue.len():
        c.process_one(timeout=0)


# ------------------------------------------------------------ computing
def test_ready_and_not_ready_addresses_with_target_ref_and_node():
    subsets = compute_subsets(svc(), [pod("a", "10.244.1.3"), pod("b", "10.244.1.2", ready=False),
                                      pod("c", "10.244.1.4")])
    assert subsets == [{
        "addresses": [
            {"ip": "10.244.1.3", "nodeName": "node-1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}},
            {"ip": "10.244.1.4", "nodeName": "node-1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}},
        ],
        "notReadyAddresses": [
            {"ip": "10.244.1.2", "nodeName": "node-1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}},
        ],
        "ports": [{"port": 8080, "protocol": "TCP", "name": "http"}],
    }]


def test_pods_without_ip_terminating_or_finished_are_left_out():
    terminating = pod("t", "10.244.1.5")
    terminating["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    done = pod("d", "10.244.1.6")
    done["status"]["phase"] = "Succeeded"
    subsets = compute_subsets(svc(), [pod("noip", ip=None), terminating, done, pod("ok", "10.244.1.7")])
    assert [a["ip"] for s in subsets for a in s.get("addresses", [])] == ["10.244.1.7"]
    assert not any("notReadyAddresses" in s for s in subsets)


def test_publish_not_ready_addresses_puts_everyone_in_addresses():
    subsets = compute_subsets(svc(publishNotReadyAddresses=True), [pod("a", ready=False)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.244.1.2"]
    assert "notReadyAddresses" not in subsets[0]


def test_named_target_port_resolved_per_pod_and_grouped():
    ports = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]
    p1 = pod("a", "10.244.1.2", ports=[{"name": "web", "containerPort": 8080}])
    p2 = pod("b", "10.244.1.3", ports=[{"name": "web", "containerPort": 9090}])
    p3 = pod("c", "10.244.1.4", ports=[{"name": "other", "containerPort": 1}])  # no such name: left out
    p4 = pod("d", "10.244.1.5", ports=[{"name": "web", "containerPort": 8080, "protocol": "UDP"}])  # wrong proto
    subsets = compute_subsets(svc(ports=ports), [p1, p2, p3, p4])
    assert [(s["ports"][0]["port"], [a["ip"] for a in s["addresses"]]) for s in subsets] == \
        [(8080, ["10.244.1.2"]), (9090, ["10.244.1.3"])]


def test_find_port_defaults_and_numbers():
    p = pod("a")
    assert find_port(p, {"port": 80}) == 80
    assert find_port(p, {"port": 80, "targetPort": 81}) == 81
    assert find_port(p, {"port": 80, "targetPort": "82"}) == 82
    assert find_port(p, {"port": 80, "targetPort": "nope"}) is None


def test_multi_port_service_and_hostname_subdomain():
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
             {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}]
    p = pod("a", hostname="alpha", subdomain="web")
    other = pod("b", "10.244.1.3", hostname="beta", subdomain="not-this-service")
    subsets = compute_subsets(svc(ports=ports), [p, other])
    assert len(subsets) == 1
    addrs = {a["ip"]: a for a in subsets[0]["addresses"]}
    assert addrs["10.244.1.2"]["hostname"] == "alpha"
    assert "hostname" not in addrs["10.244.1.3"]
    assert sorted((x["name"], x["port"], x["protocol"]) for x in subsets[0]["ports"]) == \
        [("dns", 53, "UDP"), ("http", 8080, "TCP")]


def test_headless_without_ports_lists_addresses_and_labels():
    s = svc(ports=[], cluster_ip="None")
    ep = compute_endpoints(s, [pod("a")])
    assert ep["subsets"] == [{"addresses": [{"ip": "10.244.1.2", "nodeName": "node-1", "targetRef": {
        "kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}]}]
    assert ep["metadata"]["labels"] == {"tier": "fe", "service.kubernetes.io/headless": ""}
    # A non-headless service without ports has nothing to list.
    assert compute_subsets(svc(ports=[]), [pod("a")]) == []


def test_order_does_not_matter_and_canonical_matches():
    pods = [pod(f"p{i}", f"10.244.1.{i + 2}", ready=i % 2 == 0) for i in range(6)]
    a = compute_subsets(svc(), pods)
    b = compute_subsets(svc(), list(reversed(pods)))
    assert a == b
    stored = copy.deepcopy(a)
    for s in stored:
        for p in s["ports"]:
            p.pop("protocol")  # the server may default it; still equal
        s["addresses"].reverse()
    assert canonical_subsets(stored) == a
    desired = compute_endpoints(svc(), pods)
    assert endpoints_equal({"metadata": {"labels": {"tier": "fe"}}, "subsets": stored}, desired)
    assert not endpoints_equal({"metadata": {"labels": {}}, "subsets": stored}, desired)


# ------------------------------------------------------------- the loop
def test_sync_creates_then_writes_only_on_change(ctl):
    ctl.services.add(svc())
    ctl.pods.add(pod("a"))
    ctl.sync("default/web")
    assert ctl.client.calls == [("create", "web")]
    ep = ctl.endpoints.get_by_key("default/web")
    assert ep["metadata"]["labels"] == {"tier": "fe"}
    ctl.sync("default/web")
    ctl.sync("default/web")
    assert ctl.client.calls == [("create", "web")]  # level-triggered, idempotent: no rewrite
    ctl.pods.add(pod("a", ready=False))
    ctl.sync("default/web")
    assert ctl.client.calls[-1] == ("update", "web")
    assert ctl.endpoints.get_by_key("default/web")["subsets"][0]["notReadyAddresses"][0]["ip"] == "10.244.1.2"


def test_update_carries_resource_version_and_keeps_annotations(ctl):
    ctl.services.add(svc())
    ctl.endpoints.add({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                                    "annotations": {"note": "x"}}, "subsets": []})
    ctl.pods.add(pod("a"))
    seen = {}
    orig = ctl.client.update

    def update(rt, obj, namespace=None):
        seen.update(obj["metadata"])
        return orig(rt, obj, namespace)

    ctl.client.update = update
    ctl.sync("default/web")
    assert seen["resourceVersion"] == "7" and seen["annotations"] == {"note": "x"}


def test_service_without_selector_is_left_alone(ctl):
    ctl.services.add(svc(selector={}))
    user = {"metadata": {"name": "web", "namespace": "default", "resourceVersion": "3"},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 1}]}]}
    ctl.endpoints.add(user)
    ctl.pods.add(pod("a"))
    ctl.sync("default/web")
    assert ctl.client.calls == []


def test_service_deleted_deletes_endpoints_and_missing_is_fine(ctl):
    ctl.services.add(svc())
    ctl.pods.add(pod("a"))
    ctl.sync("default/web")
    ctl.services.delete("default/web")
    ctl.sync("default/web")
    assert ctl.client.calls[-1] == ("delete", "web")
    assert ctl.endpoints.get_by_key("default/web") is None
    ctl.sync("default/web")  # nothing there: no call, no error
    assert ctl.client.calls[-1] == ("delete", "web") and len(ctl.client.calls) == 2


def test_leftover_endpoints_enqueued_at_start(ctl):
    ctl.endpoints.add({"metadata": {"name": "old", "namespace": "default", "resourceVersion": "2"}, "subsets": []})
    ctl.endpoints.add({"metadata": {"name": "lock", "namespace": "kube-system", "resourceVersion": "2",
                                    "annotations": {"control-plane.alpha.kubernetes.io/leader": "{}"}}})
    ctl.enqueue_leftovers()
    drain(ctl)
    assert ctl.client.calls == [("delete", "old")]


def test_other_namespaces_and_labels_do_not_match(ctl):
    ctl.services.add(svc())
    ctl.pods.add(pod("other-ns", ns="prod"))
    ctl.pods.add(pod("other-label", "10.244.1.9", labels={"app": "db"}))
    ctl.sync("default/web")
    assert ctl.endpoints.get_by_key("default/web")["subsets"] == []


def test_pod_events_enqueue_matching_services(ctl):
    class Inf:
        def __init__(self):
            self.h = None

        def add_handler(self, on_add=None, on_update=None, on_delete=None):
            self.h = (on_add, on_update, on_delete)

    si, pi, ei = Inf(), Inf(), Inf()
    ctl.register(si, pi, ei)
    ctl.services.add(svc())
    ctl.services.add(svc("db", selector={"app": "db"}))
    old = pod("a")
    pi.h[0](old)
    assert ctl.queue.len() == 1 and ctl.queue.get(0) == "default/web"
    ctl.queue.done("default/web")
    # A status-only change that cannot matter is ignored.
    same = copy.deepcopy(old)
    same["status"]["startTime"] = "now"
    pi.h[1](old, same)
    assert ctl.queue.len() == 0
    # Relabelled from web to db: both services are synced.
    moved = copy.deepcopy(old)
    moved["metadata"]["labels"] = {"app": "db"}
    pi.h[1](old, moved)
    keys = {ctl.queue.get(0), ctl.queue.get(0)}
    assert keys == {"default/web", "default/db"}


def test_failed_write_is_requeued_with_backoff(ctl):
    ctl.services.add(svc())
    ctl.pods.add(pod("a"))
    ctl.client.fail = Conflict("stale")
    ctl.queue.add("default/web")
    ctl.process_one(timeout=0)
    assert ctl.queue.num_requeues("default/web") == 1
    assert ctl.queue.num_waiting() == 1
    ctl.client.fail = None
    assert ctl.queue.get(timeout=2) == "default/web"
    ctl.queue.done("default/web")


def test_restart_converges_to_same_result(ctl):
    ctl.services.add(svc())
    for i in range(3):
        ctl.pods.add(pod(f"p{i}", f"10.244.1.{i + 2}"))
    ctl.sync("default/web")
    first = copy.deepcopy(ctl.endpoints.get_by_key("default/web"))
    # A new controller with the same caches (as after a restart) writes nothing.
    again = EndpointsController(ctl.client, ctl.services, ctl.pods, ctl.endpoints)
    again.sync("default/web")
    assert ctl.client.calls == [("create", "web")]
    assert ctl.endpoints.get_by_key("default/web") == first
