"""The API server's router (apiserver/app.py) at the ASGI level, without a network or a storage start.

Handlers and the kubelet relay are fakes that record what they were called
with, so these tests pin the routing of every path shape `dispatch` lists,
the one auth check (public paths, and the same 401 Status on every kind of
path and connection), and the one error mapping (StatusError -> its Status;
anything else -> a 500 Status, logged once, never a traceback).
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import orjson
import pytest

from apiserver import app as appmod
from apiserver import discovery, errors, rawupgrade
from apiserver.handlers import json_response
from apiserver.storage.log import Compacted

TOKEN = "sekret"
PODS = "/api/v1/namespaces/default/pods"


class FakeHandlers:
    """Every handler verb answers 200 with what it was called with."""

    def __init__(self):
        self.fail: BaseException | None = None

    def __getattr__(self, verb):
        async def handler(request, *args):
            if self.fail is not None:
                raise self.fail
            return json_response({"verb": verb, "args": [getattr(a, "plural", a) for a in args]})
        return handler


class FakeRelay:
    def __init__(self):
        self.sockets = []

    async def logs(self, request, ns, name):
        return json_response({"verb": "logs", "args": [ns, name]})

    async def without_upgrade(self, request, ns, name, sub):
        takeover = (request.scope.get("extensions") or {}).get(rawupgrade.EXTENSION)
        return json_response({"verb": "without_upgrade", "args": [ns, name, sub], "takeover": takeover is not None})

    async def websocket(self, ws, ns, name, sub):
        self.sockets.append((ns, name, sub))
        await ws.accept()
        await ws.close(code=1000)

    async def aclose(self):
        pass


def make_app(tmp_path, auth: bool = False) -> appmod.App:
    token_file = None
    if auth:
        token_file = tmp_path / "tokens.csv"
        token_file.write_text(f"{TOKEN},admin,1,system:masters\n")
    app = appmod.create_app(appmod.ServerConfig(storage_url=f"sqlite:///{tmp_path}/db",
                                                token_file=str(token_file) if token_file else None))
    app.state.handlers = FakeHandlers()
    app.state.relay = FakeRelay()
    return app


def scope_for(kind: str, method: str, url: str, headers: dict, extensions: dict | None = None) -> dict:
    u = urlsplit(url)
    scope = {"type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
             "path": u.path, "raw_path": u.path.encode(), "query_string": u.query.encode(), "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 6443), "extensions": extensions or {}}
    if kind == "http":
        scope["method"] = method
    return scope


class Answer:
    def __init__(self, messages: list[dict]):
        self.messages = messages
        start = next((m for m in messages if m["type"].endswith("http.response.start")), None)
        self.status = start["status"] if start else None
        self.headers = {k.decode(): v.decode() for k, v in (start or {}).get("headers", [])}
        self.body = b"".join(m.get("body", b"") for m in messages if m["type"].endswith("http.response.body"))

    def json(self):
        return orjson.loads(self.body)


def call(app, method: str, url: str, headers: dict | None = None, body: bytes = b"",
         extensions: dict | None = None) -> Answer:
    sent: list[dict] = []
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope_for("http", method, url, headers or {}, extensions), receive, send))
    return Answer(sent)


def call_websocket(app, url: str, headers: dict | None = None) -> list[dict]:
    sent: list[dict] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive():
        if incoming:
            return incoming.pop(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope_for("websocket", "GET", url, headers or {}, {"websocket.http.response": {}}),
                    receive, send))
    return sent


# ------------------------------------------------------------------ routing
@pytest.mark.parametrize("method,url,verb,args", [
    ("GET", "/api/v1/pods", "list", ["pods", None]),
    ("GET", PODS, "list", ["pods", "default"]),
    ("GET", PODS + "?watch=true", "watch", ["pods", "default"]),
    ("GET", "/api/v1/watch/namespaces/default/pods", "watch", ["pods", "default"]),
    ("GET", "/api/v1/watch/pods", "watch", ["pods", None]),
    ("POST", PODS, "create", ["pods", "default"]),
    ("DELETE", PODS, "delete_collection", ["pods", "default"]),
    ("GET", PODS + "/x", "get", ["pods", "default", "x"]),
    ("GET", "/api/v1/watch/namespaces/default/pods/x", "watch", ["pods", "default", "x"]),
    ("GET", PODS + "/x?watch=1", "watch", ["pods", "default", "x"]),
    ("PUT", PODS + "/x", "update", ["pods", "default", "x"]),
    ("PATCH", PODS + "/x", "patch", ["pods", "default", "x"]),
    ("DELETE", PODS + "/x", "delete", ["pods", "default", "x"]),
    ("GET", PODS + "/x/status", "get", ["pods", "default", "x"]),
    ("PUT", PODS + "/x/status", "update", ["pods", "default", "x", "status"]),
    ("PATCH", PODS + "/x/status", "patch", ["pods", "default", "x", "status"]),
    ("GET", "/api/v1/namespaces/default", "get", ["namespaces", None, "default"]),
    ("PUT", "/api/v1/namespaces/default/status", "update", ["namespaces", None, "default", "status"]),
    ("GET", "/api/v1/namespaces", "list", ["namespaces", None]),
    ("GET", "/api/v1/nodes/n1", "get", ["nodes", None, "n1"]),
    ("PATCH", "/api/v1/nodes/n1/status", "patch", ["nodes", None, "n1", "status"]),
    ("GET", "/api/v1/nodes/", "list", ["nodes", None]),  # a trailing slash is the same path
    ("POST", PODS + "/x/binding", "bind", ["default", "x"]),
    ("POST", "/api/v1/namespaces/default/bindings", "bind", ["default", None]),
    ("GET", PODS + "/x/log?container=app", "logs", ["default", "x"]),
    ("GET", PODS + "/x/exec?command=ls", "without_upgrade", ["default", "x", "exec"]),
    ("POST", PODS + "/x/exec?command=ls", "without_upgrade", ["default", "x", "exec"]),
    ("POST", PODS + "/x/portforward?ports=80", "without_upgrade", ["default", "x", "portforward"]),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", "list", ["leases", "kube-system"]),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l", "update", ["leases", "kube-system", "l"]),
    ("GET", "/apis/networking.k8s.io/v1/ingresses", "list", ["ingresses", None]),
    ("GET", "/apis/networking.k8s.io/v1/watch/namespaces/default/ingresses", "watch", ["ingresses", "default"]),
])
def test_every_path_shape_reaches_its_handler(tmp_path, method, url, verb, args):
    a = call(make_app(tmp_path), method, url)
    assert a.status == 200, a.body
    assert a.json() == {"verb": verb, "args": args} or a.json() == {"verb": verb, "args": args, "takeover": False}


def test_a_spdy_takeover_is_an_http_request_routed_like_any_other(tmp_path):
    a = call(make_app(tmp_path), "POST", PODS + "/x/exec?command=ls",
             {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}, extensions={rawupgrade.EXTENSION: object()})
    assert a.status == 200 and a.json() == {"verb": "without_upgrade", "args": ["default", "x", "exec"],
                                            "takeover": True}


@pytest.mark.parametrize("url,kind", [
    ("/api/v1", "APIResourceList"),
    ("/api/v1/", "APIResourceList"),
    ("/apis/networking.k8s.io/v1", "APIResourceList"),
    ("/apis/networking.k8s.io", "APIGroup"),
    ("/api", "APIVersions"),
    ("/apis", "APIGroupList"),
])
def test_legacy_discovery(tmp_path, url, kind):
    a = call(make_app(tmp_path), "GET", url)
    assert a.status == 200 and a.json()["kind"] == kind


@pytest.mark.parametrize("url,core", [("/api", True), ("/apis", False)])
@pytest.mark.parametrize("agg", [discovery.AGG_V2, discovery.AGG_V2BETA1])
def test_aggregated_discovery_is_negotiated(tmp_path, url, core, agg):
    a = call(make_app(tmp_path), "GET", url, {"Accept": agg + ",application/json"})
    assert a.status == 200 and a.headers["content-type"] == agg and a.headers["vary"] == "Accept"
    assert a.json() == orjson.loads(orjson.dumps(discovery.aggregated(core, agg)))


def test_plain_endpoints(tmp_path):
    app = make_app(tmp_path)
    assert call(app, "GET", "/version").json()["gitVersion"] == "v1.33.0"
    a = call(app, "GET", "/openapi/v2")
    assert a.status == 200 and a.body == b"" and a.headers["content-type"] == "application/octet-stream"
    for p in ("/healthz", "/livez", "/readyz"):
        assert (call(app, "GET", p).status, call(app, "GET", p).body) == (503, b"not ready")
    app.state.ready = True
    assert (call(app, "GET", "/healthz").status, call(app, "GET", "/livez").body) == (200, b"ok")


def _not_found(a: Answer, path: str) -> bool:
    body = a.json()
    return (a.status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
            and body["details"]["causes"][0]["message"] == f"404 page not found: {path}")


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/"), ("GET", "/apis/"), ("GET", "/api/v2"), ("GET", "/apis/nope"), ("POST", "/apis/networking.k8s.io"),
    ("GET", "/apis/nope/v1"), ("POST", "/api/v1"),
    ("GET", "/api/v1/bogus"), ("GET", "/api/v1/pods/x"), ("GET", "/api/v1/namespaces/default/nodes/n1"),
    ("GET", PODS + "/x/bogus"), ("GET", PODS + "/x/attach"), ("GET", "/api/v1/a/b/c/d/e/f/g"),
    ("GET", PODS + "/x/status/more"), ("GET", "/api/v1/bindings"), ("GET", "/api/v1/namespaces/default/bindings"),
    ("GET", "/foo"), ("GET", "/"), ("DELETE", "/metrics"), ("POST", "/version"), ("PUT", "/healthz"),
    ("POST", "/api"), ("HEAD", "/version"),
])
def test_unknown_paths_are_a_404_status(tmp_path, method, path):
    a = call(make_app(tmp_path), method, path)
    if method == "HEAD":
        assert a.status == 404
    else:
        assert _not_found(a, path), a.body


def test_openapi_v3_is_a_plain_404(tmp_path):
    for p in ("/openapi/v3", "/openapi/v3/apis/apps/v1"):
        a = call(make_app(tmp_path), "GET", p)
        assert a.status == 404 and a.json()["reason"] == "NotFound" and "details" not in a.json()


@pytest.mark.parametrize("method,path,message", [
    ("PUT", PODS, "the server does not allow this method on the requested resource (PUT pods)"),
    ("POST", PODS + "/x", "the server does not allow this method on the requested resource (POST pods)"),
    ("DELETE", PODS + "/x/status", "DELETE is not supported on pods/status"),
    ("GET", PODS + "/x/binding", "only POST is supported on pods/binding"),
    ("PUT", PODS + "/x/log", "PUT is not supported on pods/log"),
    ("DELETE", PODS + "/x/exec", "DELETE is not supported on pods/exec"),
    ("OPTIONS", "/api/v1/pods", "the server does not allow this method on the requested resource (OPTIONS pods)"),
    ("OPTIONS", "/version", "Method Not Allowed"),
    ("OPTIONS", "/foo", "Method Not Allowed"),
])
def test_wrong_methods_are_a_405_status(tmp_path, method, path, message):
    a = call(make_app(tmp_path), method, path)
    assert a.status == 405 and a.json()["reason"] == "MethodNotAllowed" and a.json()["message"] == message


def test_a_compacted_read_is_410_expired(tmp_path):
    app = make_app(tmp_path)
    app.state.handlers.fail = Compacted(3, 7)
    a = call(app, "GET", PODS + "?watch=1&resourceVersion=3")
    assert a.status == 410 and a.json()["reason"] == "Expired" and "too old resource version: 3" in a.json()["message"]


# ------------------------------------------------------------------ WebSockets
@pytest.mark.parametrize("sub", ["exec", "attach", "portforward"])
def test_pod_websockets_go_to_the_relay(tmp_path, sub):
    app = make_app(tmp_path)
    sent = call_websocket(app, f"{PODS}/x/{sub}?command=ls")
    assert app.state.relay.sockets == [("default", "x", sub)]
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]


@pytest.mark.parametrize("path", ["/api/v1/pods", PODS + "/x", PODS + "/x/log", "/api/v1", "/apis/networking.k8s.io",
                                  "/apis/networking.k8s.io/v1/ingresses", "/foo"])
def test_other_websockets_are_refused_with_a_404_status(tmp_path, path):
    sent = call_websocket(make_app(tmp_path), path)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["bytes"][0] == 3 and orjson.loads(sent[1]["bytes"][1:])["code"] == 404
    assert sent[2]["code"] == 1000


# ------------------------------------------------------------------ auth
UNAUTHORIZED = errors.unauthorized()

AUTH_CASES = [("GET", PODS), ("POST", PODS + "/x/binding"), ("GET", "/api/v1"), ("GET", "/api"), ("GET", "/apis"),
              ("GET", "/apis/networking.k8s.io"), ("GET", "/openapi/v2"), ("GET", "/openapi/v3"), ("GET", "/foo"),
              ("OPTIONS", "/foo"), ("GET", "/api/v1/bogus")]


@pytest.mark.parametrize("method,path", AUTH_CASES)
@pytest.mark.parametrize("header", [None, "Bearer wrong", TOKEN, "Basic " + TOKEN])
def test_without_a_valid_token_every_http_path_is_the_same_401(tmp_path, method, path, header):
    a = call(make_app(tmp_path, auth=True), method, path, {"Authorization": header} if header else {})
    assert a.status == 401 and a.json() == UNAUTHORIZED.body()
    assert a.headers["www-authenticate"] == 'Bearer realm="pocketkube"'


@pytest.mark.parametrize("path", [PODS + "/x/exec", PODS + "/x/portforward", "/api/v1/pods", "/foo"])
def test_without_a_valid_token_a_websocket_gets_the_same_401_before_the_upgrade(tmp_path, path):
    app = make_app(tmp_path, auth=True)
    sent = call_websocket(app, path, {"Authorization": "Bearer wrong"})
    a = Answer(sent)
    assert a.status == 401 and a.json() == UNAUTHORIZED.body()
    assert a.headers["www-authenticate"] == 'Bearer realm="pocketkube"'
    assert app.state.relay.sockets == []


def test_without_a_valid_token_a_spdy_upgrade_gets_the_same_401(tmp_path):
    a = call(make_app(tmp_path, auth=True), "POST", PODS + "/x/exec?command=ls",
             {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}, extensions={rawupgrade.EXTENSION: object()})
    assert a.status == 401 and a.json() == UNAUTHORIZED.body()


def test_public_paths_need_no_token_and_the_rest_is_routed_with_one(tmp_path):
    app = make_app(tmp_path, auth=True)
    assert call(app, "GET", "/version").status == 200
    for p in ("/healthz", "/livez", "/readyz"):
        assert call(app, "GET", p).status == 503  # not started: answered, not refused
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert call(app, "GET", PODS, good).json() == {"verb": "list", "args": ["pods", "default"]}
    assert call(app, "GET", "/api", good).json()["kind"] == "APIVersions"
    assert _not_found(call(app, "GET", "/foo", good), "/foo")
    assert call_websocket(app, PODS + "/x/exec", good)[0]["type"] == "websocket.accept"
    assert app.state.relay.sockets == [("default", "x", "exec")]


# ------------------------------------------------------------------ errors
def _errors_logged(caplog) -> int:
    return sum(1 for r in caplog.records if r.name == "pocketkube.apiserver" and r.levelno >= logging.ERROR)


def _is_internal_error(a: Answer) -> bool:
    body = a.json()
    return (a.status == 500 and body["reason"] == "InternalError" and body["kind"] == "Status"
            and b"Traceback" not in a.body and b"boom" not in a.body)


def test_an_unexpected_error_in_a_handler_is_a_500_status_logged_once(tmp_path, caplog):
    app = make_app(tmp_path)
    app.state.handlers.fail = RuntimeError("boom: secret detail")
    with caplog.at_level(logging.ERROR, logger="pocketkube.apiserver"):
        a = call(app, "POST", PODS, body=b"{}")
    assert _is_internal_error(a)
    assert _errors_logged(caplog) == 1 and "boom" in caplog.text and "POST " + PODS in caplog.text


def test_an_unexpected_error_in_a_plain_endpoint_is_the_same_500(tmp_path, caplog, monkeypatch):
    def broken(_):
        raise KeyError("boom")
    monkeypatch.setattr(discovery, "version_info", broken)
    with caplog.at_level(logging.ERROR, logger="pocketkube.apiserver"):
        a = call(make_app(tmp_path), "GET", "/version")
    assert _is_internal_error(a) and _errors_logged(caplog) == 1


def test_an_answer_that_fails_before_its_first_byte_is_a_500(tmp_path, caplog):
    class Broken:
        async def __call__(self, scope, receive, send):
            raise RuntimeError("boom")

    app = make_app(tmp_path)

    async def get(request, *args):
        return Broken()
    app.state.handlers.get = get
    with caplog.at_level(logging.ERROR, logger="pocketkube.apiserver"):
        a = call(app, "GET", PODS + "/x")
    assert _is_internal_error(a) and _errors_logged(caplog) == 1


def test_an_unexpected_error_in_a_websocket_is_a_500_before_the_upgrade(tmp_path, caplog):
    app = make_app(tmp_path)

    async def websocket(ws, ns, name, sub):
        raise RuntimeError("boom")
    app.state.relay.websocket = websocket
    with caplog.at_level(logging.ERROR, logger="pocketkube.apiserver"):
        sent = call_websocket(app, PODS + "/x/exec")
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    status = orjson.loads(sent[1]["bytes"][1:])
    assert status["code"] == 500 and b"boom" not in sent[1]["bytes"] and _errors_logged(caplog) == 1


def test_a_status_error_keeps_its_code_and_headers(tmp_path):
    app = make_app(tmp_path)
    app.state.handlers.fail = errors.StatusError(429, "TooManyRequests", "slow down", headers={"Retry-After": "1"})
    a = call(app, "GET", PODS)
    assert a.status == 429 and a.headers["retry-after"] == "1" and a.json()["message"] == "slow down"
