"""The REST client against httpx.MockTransport: URLs, params, bodies, headers, errors, watch."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable

import httpx
import orjson
import pytest

from api import resources as R
from client import errors as E
from client.kubeconfig import Config
from client.rest import AsyncClient, Client

SERVER = "http://apiserver.test:6443"


def status(code: int, reason: str, message: str = "nope", details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class Recorder:
    """A MockTransport handler that records requests and answers from a function."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response] | None = None):
        self.requests: list[httpx.Request] = []
        self.respond = respond or (lambda req: httpx.Response(200, json={"ok": True}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.respond(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, i: int = -1):
        return orjson.loads(self.requests[i].content)


def make_client(respond=None, token: str | None = "s3cret", namespace: str = "default"):
    rec = Recorder(respond)
    cfg = Config(server=SERVER, token=token, namespace=namespace)
    return Client(cfg, transport=httpx.MockTransport(rec)), rec


def pod(name="p1", ns="default", rv=None) -> dict:
    md = {"name": name, "namespace": ns}
    if rv:
        md["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": {"containers": [{"name": "c"}]}}


# ----------------------------------------------------------------- paths & verbs

def test_get_paths_for_namespaced_cluster_scoped_and_grouped():
    client, rec = make_client()
    client.get(R.PODS, "web", "prod")
    assert rec.last.method == "GET"
    assert rec.last.url.path == "/api/v1/namespaces/prod/pods/web"
    client.get(R.NODES, "n1", "ignored")
    assert rec.last.url.path == "/api/v1/nodes/n1"
    client.get(R.LEASES, "n1", "kube-node-lease")
    assert rec.last.url.path == "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
    client.get(R.PODS, "web")  # context namespace
    assert rec.last.url.path == "/api/v1/namespaces/default/pods/web"


def test_context_namespace_is_the_default():
    client, rec = make_client(namespace="team-a")
    client.get(R.SERVICES, "svc")
    assert rec.last.url.path == "/api/v1/namespaces/team-a/services/svc"


def test_headers_auth_user_agent_accept():
    client, rec = make_client()
    client.get(R.PODS, "web")
    h = rec.last.headers
    assert h["authorization"] == "Bearer s3cret"
    assert h["user-agent"] == "pocketkube-client/0.1"
    assert h["accept"] == "application/json"


def test_no_authorization_without_token():
    client, rec = make_client(token=None)
    client.get(R.PODS, "web")
    assert "authorization" not in rec.last.headers


def test_server_and_token_keywords_override_config():
    rec = Recorder()
    client = Client(Config(server="http://other:1", token="a"), server=SERVER, token="b",
                    transport=httpx.MockTransport(rec))
    client.get(R.NODES, "n")
    assert str(rec.last.url) == SERVER + "/api/v1/nodes/n"
    assert rec.last.headers["authorization"] == "Bearer b"


def test_list_query_parameters():
    client, rec = make_client()
    client.list(R.PODS, "default", label_selector="app=web", field_selector="spec.nodeName=n1",
                limit=10, continue_="tok", resource_version="5")
    assert rec.last.url.path == "/api/v1/namespaces/default/pods"
    assert dict(rec.last.url.params) == {"labelSelector": "app=web", "fieldSelector": "spec.nodeName=n1",
                                         "limit": "10", "continue": "tok", "resourceVersion": "5"}
    client.list(R.PODS)
    assert rec.last.url.path == "/api/v1/pods"  # all namespaces
    assert rec.last.url.query == b""


def test_create_uses_object_namespace_and_sends_json():
    client, rec = make_client(lambda req: httpx.Response(201, json=orjson.loads(req.content)))
    out = client.create(R.PODS, pod("p1", "web-ns"))
    assert rec.last.method == "POST"
    assert rec.last.url.path == "/api/v1/namespaces/web-ns/pods"
    assert rec.last.headers["content-type"] == "application/json"
    assert rec.body() == pod("p1", "web-ns")
    assert out["metadata"]["name"] == "p1"
    client.create(R.PODS, pod("p2", "web-ns"), namespace="explicit")
    assert rec.last.url.path == "/api/v1/namespaces/explicit/pods"
    client.create(R.NODES, {"metadata": {"name": "n1"}})
    assert rec.last.url.path == "/api/v1/nodes"


def test_update_and_update_status():
    client, rec = make_client()
    obj = pod("p1", "ns1", rv="7")
    client.update(R.PODS, obj)
    assert (rec.last.method, rec.last.url.path) == ("PUT", "/api/v1/namespaces/ns1/pods/p1")
    assert rec.body()["metadata"]["resourceVersion"] == "7"
    client.update_status(R.PODS, obj)
    assert (rec.last.method, rec.last.url.path) == ("PUT", "/api/v1/namespaces/ns1/pods/p1/status")
    client.update_status(R.NODES, {"metadata": {"name": "n1"}})
    assert rec.last.url.path == "/api/v1/nodes/n1/status"
    with pytest.raises(ValueError):
        client.update(R.PODS, {"metadata": {}})


@pytest.mark.parametrize("patch_type,ctype", [
    ("merge", "application/merge-patch+json"),
    ("json", "application/json-patch+json"),
    ("strategic", "application/strategic-merge-patch+json"),
    ("apply", "application/apply-patch+yaml"),
])
def test_patch_content_types(patch_type, ctype):
    client, rec = make_client()
    body = [{"op": "replace", "path": "/spec/x", "value": 1}] if patch_type == "json" else {"spec": {"x": 1}}
    client.patch(R.SERVICES, "svc", body, "ns", patch_type=patch_type)
    assert rec.last.method == "PATCH"
    assert rec.last.url.path == "/api/v1/namespaces/ns/services/svc"
    assert rec.last.headers["content-type"] == ctype
    assert rec.body() == body
    if patch_type == "apply":
        assert rec.last.url.params["fieldManager"] == "pocketkube"
    else:
        assert "fieldManager" not in rec.last.url.params


def test_patch_subresource_field_manager_and_raw_bytes():
    client, rec = make_client()
    client.patch(R.NODES, "n1", b'{"status":{}}', subresource="status", field_manager="kubelet", force=True)
    assert rec.last.url.path == "/api/v1/nodes/n1/status"
    assert dict(rec.last.url.params) == {"fieldManager": "kubelet", "force": "true"}
    assert rec.last.content == b'{"status":{}}'
    with pytest.raises(ValueError):
        client.patch(R.NODES, "n1", {}, patch_type="bogus")


def test_delete_with_and_without_options():
    client, rec = make_client()
    client.delete(R.PODS, "p1", "ns")
    assert (rec.last.method, rec.last.url.path) == ("DELETE", "/api/v1/namespaces/ns/pods/p1")
    assert rec.last.content == b""
    client.delete(R.PODS, "p1", "ns", grace_period_seconds=0, propagation_policy="Background",
                  preconditions={"uid": "u-1"})
    assert rec.body() == {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                          "propagationPolicy": "Background", "preconditions": {"uid": "u-1"}}
    assert rec.last.headers["content-type"] == "application/json"


def test_delete_collection():
    client, rec = make_client()
    client.delete_collection(R.EVENTS, "ns", label_selector="a=b", field_selector="type=Warning")
    assert (rec.last.method, rec.last.url.path) == ("DELETE", "/api/v1/namespaces/ns/events")
    assert dict(rec.last.url.params) == {"labelSelector": "a=b", "fieldSelector": "type=Warning"}


def test_bind_posts_a_binding():
    client, rec = make_client()
    client.bind("web-1", "prod", "node-2", uid="u-9")
    assert (rec.last.method, rec.last.url.path) == ("POST", "/api/v1/namespaces/prod/pods/web-1/binding")
    assert rec.body() == {
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-9"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-2"},
    }


def test_create_event_for_pod_and_node():
    client, rec = make_client()
    p = pod("web", "prod")
    p["metadata"]["uid"] = "uid-1"
    client.create_event(p, "FailedScheduling", "0/1 nodes are available", type="Warning",
                        component="default-scheduler")
    assert rec.last.url.path == "/api/v1/namespaces/prod/events"
    ev = rec.body()
    assert ev["kind"] == "Event" and ev["metadata"]["namespace"] == "prod"
    assert ev["metadata"]["name"].startswith("web.")
    assert ev["involvedObject"] == {"kind": "Pod", "apiVersion": "v1", "name": "web",
                                    "namespace": "prod", "uid": "uid-1"}
    assert (ev["reason"], ev["type"], ev["count"]) == ("FailedScheduling", "Warning", 1)
    assert ev["source"] == {"component": "default-scheduler"}
    assert ev["firstTimestamp"].endswith("Z")
    client.create_event({"metadata": {"name": "n1"}}, "NodeReady", "ready", rt=R.NODES, host="n1")
    assert rec.last.url.path == "/api/v1/namespaces/default/events"
    assert rec.body()["involvedObject"]["kind"] == "Node"
    assert rec.body()["source"] == {"component": "pocketkube", "host": "n1"}


def test_raw_request():
    client, rec = make_client(lambda req: httpx.Response(200, content=b"log line\n",
                                                         headers={"content-type": "text/plain"}))
    out = client.request("get", "/api/v1/namespaces/ns/pods/p/log", params={"container": "c", "follow": False},
                         raw=True)
    assert out == b"log line\n"
    assert rec.last.method == "GET"
    assert dict(rec.last.url.params) == {"container": "c", "follow": "false"}
    client2, rec2 = make_client()
    assert client2.request("POST", "/x", body={"a": 1}) == {"ok": True}
    assert rec2.last.headers["content-type"] == "application/json"


def test_empty_success_body_is_empty_dict():
    client, _ = make_client(lambda req: httpx.Response(200, content=b""))
    assert client.delete(R.PODS, "p", "ns") == {}


def test_base_url_with_path_prefix():
    rec = Recorder()
    client = Client(Config(server="http://proxy.test/k8s/"), transport=httpx.MockTransport(rec))
    client.get(R.NODES, "n1")
    assert str(rec.last.url) == "http://proxy.test/k8s/api/v1/nodes/n1"


# ---------------------------------------------------------------------- errors

@pytest.mark.parametrize("code,reason,cls", [
    (404, "NotFound", E.NotFound),
    (409, "AlreadyExists", E.AlreadyExists),
    (409, "Conflict", E.Conflict),
    (422, "Invalid", E.Invalid),
    (410, "Expired", E.Gone),
    (401, "Unauthorized", E.Unauthorized),
    (503, "ServiceUnavailable", E.ServiceUnavailable),
])
def test_status_errors_raise_typed_exceptions(code, reason, cls):
    client, _ = make_client(lambda req: httpx.Response(code, json=status(code, reason, "why",
                                                                          {"name": "p1", "kind": "pods"})))
    with pytest.raises(cls) as info:
        client.get(R.PODS, "p1")
    assert info.value.code == code
    assert info.value.message == "why"
    assert info.value.details["name"] == "p1"


def test_non_json_error_body():
    client, _ = make_client(lambda req: httpx.Response(502, content=b"<html>Bad Gateway</html>",
                                                       headers={"content-type": "text/html"}))
    with pytest.raises(E.ServerError) as info:
        client.list(R.PODS)
    assert "Bad Gateway" in info.value.message


def test_transport_errors_become_connection_failed():
    def refuse(request):
        raise httpx.ConnectError("Connection refused", request=request)
    client = Client(Config(server=SERVER), transport=httpx.MockTransport(refuse))
    with pytest.raises(E.ConnectionFailed) as info:
        client.get(R.PODS, "p1")
    assert "Connection refused" in info.value.message
    assert info.value.code == 0


def test_real_unreachable_server_is_connection_failed():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    client = Client(Config(server=f"http://127.0.0.1:{port}"), timeout=2.0)
    with pytest.raises(E.ConnectionFailed):
        client.get(R.NODES, "n1")
    with pytest.raises(E.ConnectionFailed):
        next(iter(client.watch(R.NODES, timeout_seconds=1)))
    client.close()


def test_success_body_that_is_not_json():
    client, _ = make_client(lambda req: httpx.Response(200, content=b"not json"))
    with pytest.raises(E.ApiError):
        client.get(R.PODS, "p")


# --------------------------------------------------------------------- list_all

def paged_server(items: list[dict], page_rv: str = "42", expire_continue: bool = False):
    def respond(req: httpx.Request) -> httpx.Response:
        params = req.url.params
        limit = int(params.get("limit", len(items) or 1))
        start = int(params.get("continue", "0"))
        if expire_continue and start:
            return httpx.Response(410, json=status(410, "Expired", "continue token expired"))
        if "limit" not in params:
            start, limit = 0, len(items)
        page = items[start:start + limit]
        md = {"resourceVersion": page_rv}
        if start + limit < len(items):
            md["continue"] = str(start + limit)
        return httpx.Response(200, json={"kind": "PodList", "apiVersion": "v1", "metadata": md,
                                         "items": page})
    return respond


def test_list_all_follows_continue():
    items = [{"metadata": {"name": f"p{i}", "namespace": "ns"}} for i in range(7)]
    client, rec = make_client(paged_server(items))
    got, rv = client.list_all(R.PODS, "ns", page_size=3, label_selector="a=b")
    assert [o["metadata"]["name"] for o in got] == [f"p{i}" for i in range(7)]
    assert rv == "42"
    assert len(rec.requests) == 3
    assert [r.url.params.get("continue") for r in rec.requests] == [None, "3", "6"]
    assert all(r.url.params["labelSelector"] == "a=b" for r in rec.requests)
    # Items come back with their type meta filled in.
    assert got[0]["kind"] == "Pod" and got[0]["apiVersion"] == "v1"


def test_list_all_falls_back_to_full_list_when_continue_expires():
    items = [{"metadata": {"name": f"p{i}"}} for i in range(5)]
    client, rec = make_client(paged_server(items, expire_continue=True))
    got, rv = client.list_all(R.PODS, "ns", page_size=2)
    assert len(got) == 5 and rv == "42"
    assert "limit" not in rec.last.url.params


# ------------------------------------------------------------------------ watch

class ChunkStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    def __iter__(self):
        yield from self.chunks

    async def __aiter__(self):
        for c in self.chunks:
            yield c


def event(etype: str, name: str, rv: str) -> bytes:
    return orjson.dumps({"type": etype, "object": {"kind": "Pod", "metadata": {"name": name,
                                                                                "resourceVersion": rv}}}) + b"\n"


def split_everywhere(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def watch_stream():
    data = event("ADDED", "a", "2") + event("MODIFIED", "a", "3") + b"\n" + \
        event("BOOKMARK", "", "4") + event("DELETED", "a", "5")
    return data


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 10_000])
def test_watch_parses_lines_across_partial_chunks(chunk_size):
    chunks = split_everywhere(watch_stream(), chunk_size)
    client, rec = make_client(lambda req: httpx.Response(200, stream=ChunkStream(chunks)))
    events = [(t, o["metadata"]["resourceVersion"]) for t, o in client.watch(R.PODS, "ns", resource_version="1")]
    assert events == [("ADDED", "2"), ("MODIFIED", "3"), ("BOOKMARK", "4"), ("DELETED", "5")]


def test_watch_request_parameters():
    client, rec = make_client(lambda req: httpx.Response(200, stream=ChunkStream([])))
    list(client.watch(R.PODS, "ns", resource_version="12", label_selector="app=x",
                      field_selector="spec.nodeName=n1", timeout_seconds=30))
    assert rec.last.url.path == "/api/v1/namespaces/ns/pods"
    assert dict(rec.last.url.params) == {"watch": "1", "resourceVersion": "12", "labelSelector": "app=x",
                                         "fieldSelector": "spec.nodeName=n1", "allowWatchBookmarks": "true",
                                         "timeoutSeconds": "30"}
    list(client.watch(R.NODES, allow_bookmarks=False))
    assert rec.last.url.path == "/api/v1/nodes"
    assert dict(rec.last.url.params) == {"watch": "1"}


def test_watch_last_line_without_newline_and_truncated_line():
    whole = event("ADDED", "a", "2").rstrip(b"\n")
    client, _ = make_client(lambda req: httpx.Response(200, stream=ChunkStream([whole])))
    assert [t for t, _ in client.watch(R.PODS)] == ["ADDED"]
    truncated = event("ADDED", "a", "2") + event("ADDED", "b", "3")[:20]
    client, _ = make_client(lambda req: httpx.Response(200, stream=ChunkStream([truncated])))
    assert [o["metadata"]["name"] for _, o in client.watch(R.PODS)] == ["a"]


def test_watch_error_event_is_yielded_with_status():
    gone = orjson.dumps({"type": "ERROR", "object": status(410, "Expired", "too old resource version")}) + b"\n"
    client, _ = make_client(lambda req: httpx.Response(200, stream=ChunkStream([gone])))
    [(etype, obj)] = list(client.watch(R.PODS, resource_version="1"))
    assert etype == "ERROR"
    assert isinstance(E.error_from_status(obj), E.Gone)


def test_watch_http_410_raises_gone_on_first_next():
    client, _ = make_client(lambda req: httpx.Response(410, json=status(410, "Expired")))
    w = client.watch(R.PODS, resource_version="1")
    with pytest.raises(E.Gone):
        next(w)


def test_watch_malformed_line_raises_api_error():
    client, _ = make_client(lambda req: httpx.Response(200, stream=ChunkStream([b"{oops}\n"])))
    with pytest.raises(E.ApiError, match="malformed"):
        list(client.watch(R.PODS))


def test_watch_can_be_closed_between_events():
    closed = []

    class Tracking(ChunkStream):
        def close(self):
            closed.append(True)

    chunks = [event("ADDED", f"p{i}", str(i)) for i in range(100)]
    client, _ = make_client(lambda req: httpx.Response(200, stream=Tracking(chunks)))
    w = client.watch(R.PODS)
    assert next(w)[0] == "ADDED"
    w.close()
    assert w.closed
    assert closed  # the response was closed
    assert list(w) == []


def test_watch_closed_before_start_sends_nothing():
    client, rec = make_client()
    w = client.watch(R.PODS)
    w.close()
    assert list(w) == []
    assert rec.requests == []


def test_watch_close_from_another_thread_wakes_a_blocked_reader():
    """Against a real socket: a silent watch stream, closed from another thread."""
    import http.server

    class Silent(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            line = event("ADDED", "a", "2")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(3)  # then nothing, like an idle watch

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = Client(Config(server=f"http://127.0.0.1:{server.server_address[1]}"), timeout=5.0)
        w = client.watch(R.PODS, timeout_seconds=60)
        got = []

        def read():
            for item in w:
                got.append(item)

        t = threading.Thread(target=read, daemon=True)
        t.start()
        deadline = time.monotonic() + 2
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got and got[0][0] == "ADDED"
        start = time.monotonic()
        w.close()
        t.join(2)
        assert not t.is_alive()
        assert time.monotonic() - start < 1.0
        client.close()
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------- async client

def make_async_client(respond=None):
    rec = Recorder(respond)
    return AsyncClient(Config(server=SERVER, token="tok"), transport=httpx.MockTransport(rec)), rec


def test_async_verbs_share_paths_and_errors():
    async def main():
        client, rec = make_async_client(lambda req: httpx.Response(200, json={"kind": "Pod"}))
        async with client:
            assert await client.get(R.PODS, "p1", "ns") == {"kind": "Pod"}
            assert rec.last.url.path == "/api/v1/namespaces/ns/pods/p1"
            assert rec.last.headers["authorization"] == "Bearer tok"
            await client.update_status(R.PODS, pod("p1", "ns"))
            assert (rec.last.method, rec.last.url.path) == ("PUT", "/api/v1/namespaces/ns/pods/p1/status")
            await client.patch(R.NODES, "n1", {"spec": {}}, patch_type="strategic")
            assert rec.last.headers["content-type"] == "application/strategic-merge-patch+json"
            await client.bind("p1", "ns", "n1")
            assert rec.last.url.path == "/api/v1/namespaces/ns/pods/p1/binding"

        client, _ = make_async_client(lambda req: httpx.Response(409, json=status(409, "AlreadyExists")))
        with pytest.raises(E.AlreadyExists):
            await client.create(R.PODS, pod())
        await client.aclose()

        def refuse(request):
            raise httpx.ConnectError("refused", request=request)
        client = AsyncClient(Config(server=SERVER), transport=httpx.MockTransport(refuse))
        with pytest.raises(E.ConnectionFailed):
            await client.list(R.PODS)
        await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 5))


def test_async_list_all_and_watch():
    async def main():
        items = [{"metadata": {"name": f"p{i}"}} for i in range(5)]
        client, rec = make_async_client(paged_server(items))
        got, rv = await client.list_all(R.PODS, "ns", page_size=2)
        assert len(got) == 5 and rv == "42" and len(rec.requests) == 3

        chunks = split_everywhere(watch_stream(), 5)
        client, rec = make_async_client(lambda req: httpx.Response(200, stream=ChunkStream(chunks)))
        events = [t async for t, _ in client.watch(R.PODS, "ns", resource_version="1", timeout_seconds=10)]
        assert events == ["ADDED", "MODIFIED", "BOOKMARK", "DELETED"]
        assert rec.last.url.params["resourceVersion"] == "1"

        client, _ = make_async_client(lambda req: httpx.Response(410, json=status(410, "Expired")))
        with pytest.raises(E.Gone):
            async for _ in client.watch(R.PODS, resource_version="1"):
                pass

        # Closing an async watch early.
        many = [event("ADDED", f"p{i}", str(i)) for i in range(50)]
        client, _ = make_async_client(lambda req: httpx.Response(200, stream=ChunkStream(many)))
        gen = client.watch(R.PODS)
        first = await gen.__anext__()
        assert first[0] == "ADDED"
        await gen.aclose()

    asyncio.run(asyncio.wait_for(main(), 5))


def test_node_event_reference_uses_the_node_name_as_uid():
    from client.bodies import object_reference

    ref = object_reference({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "node-1", "uid": "abc"}})
    assert ref["uid"] == "node-1"
    pod = object_reference({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "d", "uid": "u"}})
    assert pod["uid"] == "u"
