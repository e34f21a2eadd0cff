"""One write path: the lean transport and httpx send the same requests; the bodies are built once."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from api import resources as R
from client import bodies
from client.kubeconfig import Config
from client.rest import HOT_WRITES, Client


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API server

    def _answer(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.seen.append({"method": self.command, "target": self.path,
                                 "content-type": self.headers.get("content-type"),
                                 "authorization": self.headers.get("authorization"),
                                 "user-agent": self.headers.get("user-agent"),
                                 "accept-encoding": self.headers.get("accept-encoding"),
                                 "body": orjson.loads(body) if body else None})
        out = b'{"kind":"Status","status":"Success"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_PATCH = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.seen = []
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


EVENT = bodies.event({"kind": "Pod", "apiVersion": "v1", "name": "web", "namespace": "shop", "uid": "u-1"},
                     "Scheduled", "Successfully assigned shop/web to n1", component="default-scheduler",
                     instance="sched-1", action="Binding", name="web.17f", timestamp="2026-12-07T13:00:00Z")


def hot_writes(client: Client) -> None:
    """Every verb of the components' hot path, once."""
    client.bind("web", "shop", "n1", uid="u-1")
    client.patch_status(R.PODS, "web", {"phase": "Running"}, "shop")
    client.patch_status(R.PODS, "web", {"conditions": [{"type": "PodScheduled", "status": "False"}]}, "shop",
                        patch_type="strategic")
    client.create(R.EVENTS, EVENT, "shop")
    client.patch(R.EVENTS, "web.17f", bodies.event_count_patch(2, "2026-12-07T13:00:05Z"), "shop")
    client.create_event({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"}}, "NodeReady", "ready",
                        component="kubelet", host="n1")


def normalized(seen: list[dict]) -> list[dict]:
    out = []
    for r in seen:
        r = dict(r)
        r.pop("accept-encoding")
        body = r["body"]
        if body and body.get("kind") == "Event" and body["reason"] == "NodeReady":  # a fresh name and time
            assert body["metadata"]["name"].startswith("n1.") and body["firstTimestamp"] == body["lastTimestamp"]
            body["metadata"]["name"] = body["firstTimestamp"] = body["lastTimestamp"] = "*"
        out.append(r)
    return out


def test_lean_and_httpx_paths_send_equivalent_requests(server):
    config = Config(server=f"http://127.0.0.1:{server.server_port}", token="tok")
    for lean in (True, False):
        with Client(config, timeout=5, user_agent="pocketkube-test/1", lean=lean) as client:
            hot_writes(client)
    lean_seen, httpx_seen = server.seen[:6], server.seen[6:]
    assert len(httpx_seen) == 6
    # the first six really took the lean transport (httpx always offers compression, the lean socket never)
    assert all(r["accept-encoding"] is None for r in lean_seen)
    assert all(r["accept-encoding"] for r in httpx_seen)
    assert normalized(lean_seen) == normalized(httpx_seen)
    assert [(r["method"], r["target"], r["content-type"]) for r in lean_seen] == [
        ("POST", "/api/v1/namespaces/shop/pods/web/binding", "application/json"),
        ("PATCH", "/api/v1/namespaces/shop/pods/web/status", "application/merge-patch+json"),
        ("PATCH", "/api/v1/namespaces/shop/pods/web/status", "application/strategic-merge-patch+json"),
        ("POST", "/api/v1/namespaces/shop/events", "application/json"),
        ("PATCH", "/api/v1/namespaces/shop/events/web.17f", "application/merge-patch+json"),
        ("POST", "/api/v1/namespaces/default/events", "application/json"),
    ]
    assert {(r["authorization"], r["user-agent"]) for r in lean_seen} == {("Bearer tok", "pocketkube-test/1")}


def test_query_parameters_survive_the_lean_transport(server):
    config = Config(server=f"http://127.0.0.1:{server.server_port}")
    for lean in (True, False):
        with Client(config, timeout=5, lean=lean) as client:
            client.create(R.EVENTS, EVENT, "shop", field_manager="kube scheduler/1")
    assert server.seen[0]["target"] == server.seen[1]["target"] == \
        "/api/v1/namespaces/shop/events?fieldManager=kube+scheduler%2F1"


def test_only_the_per_pod_writes_are_hot():
    assert HOT_WRITES == {(R.PODS, "binding"), (R.PODS, "status"), (R.EVENTS, None)}


# ------------------------------------------------------------------ bodies
def test_binding_body():
    assert bodies.binding("web", "shop", "n1") == {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web", "namespace": "shop"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    assert bodies.binding("web", "shop", "n1", uid="u")["metadata"]["uid"] == "u"


def test_status_and_count_patches():
    assert bodies.status_patch({"phase": "Running"}) == {"status": {"phase": "Running"}}
    assert bodies.event_count_patch(3, "2026-12-07T13:00:00Z") == {"count": 3, "lastTimestamp": "2026-12-07T13:00:00Z"}


def test_event_body():
    ref = bodies.object_reference({"metadata": {"name": "n1", "uid": "x"}}, R.NODES)
    assert ref == {"kind": "Node", "apiVersion": "v1", "name": "n1", "uid": "n1"}  # a node's events carry its name
    ev = bodies.event(ref, "NodeReady", "ready", component="kubelet", host="n1")
    assert ev["metadata"]["namespace"] == "default" and ev["metadata"]["name"].startswith("n1.")
    assert ev["source"] == {"component": "kubelet", "host": "n1"} and ev["reportingInstance"] == "n1"
    assert ev["count"] == 1 and ev["firstTimestamp"] == ev["lastTimestamp"] and "action" not in ev
    ev = bodies.event(ref, "R", "m", component="c", instance="i", action="A", timestamp="T", name="n")
    assert (ev["metadata"]["name"], ev["reportingInstance"], ev["action"], ev["lastTimestamp"]) == ("n", "i", "A", "T")


def test_event_names_are_client_gos_and_never_repeat():
    names = [bodies.event_name("web") for _ in range(1000)]
    assert len(set(names)) == 1000
    nanos = [int(n.split(".", 1)[1], 16) for n in names]
    assert nanos == sorted(nanos) and all(n.startswith("web.") for n in names)
    assert bodies.event_name("").startswith("object.")
