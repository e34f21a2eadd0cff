"""The API server's ASGI app: routing, auth, error mapping, lifecycle, in one place.

The app is plain ASGI, not a web framework. Nearly every request a cluster
makes is a resource request (/api/..., /apis/...), and the Kubernetes URL
grammar (/api/v1/namespaces/ns/pods/x/status, /apis/g/v/..., the legacy
/watch/ prefix) is regular: one hand-written dispatcher is cheaper per
request than dozens of regex routes, and it lets every unknown path answer a
Kubernetes 404 Status instead of a framework error page. A framework's
middleware stack (error, exception and exit-stack layers) cost about 15% of a
pod create, and the handful of other endpoints (version, health, the
discovery roots, /openapi/v2) are a dictionary lookup, so there is nothing
left for one to do.

So every request goes through `App`: the bearer-token check (everything but
PUBLIC_PATHS), then the route, then the error mapping, written once for every
kind of path and connection:

* http: resources (`dispatch`), the discovery roots, health, version, and
  the 404/405 answers for anything else;
* WebSocket upgrades (exec, attach and portforward on pods, through
  `dispatch` like any resource request), refused the Kubernetes way;
* SPDY/3.1 and tunnelled-SPDY upgrades, which apiserver/rawupgrade.py runs as
  http requests carrying a takeover, so they take the http path unchanged;
* the ASGI lifespan: storage, watch hub and the maintenance loops.

The mapping: a StatusError is its Status body and code; anything unexpected
is logged once and becomes a 500 Status with no traceback in it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketState

from api import resources as R

from . import bootstrap, discovery, errors, noderelay
from .discovery import DEFAULT_KUBE_VERSION
from .auth import TokenAuthenticator
from .handlers import Handlers, json_response
from .registry import Registry, ServiceAllocator
from .storage.hub import WatchHub
from .storage.log import Compacted, Storage

log = logging.getLogger("pocketkube.apiserver")

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")


@dataclass
class ServerConfig:
    storage_url: str
    service_cidr: str = "10.96.0.0/12"
    kube_version: str = DEFAULT_KUBE_VERSION
    advertise_address: str = "127.0.0.1"
    port: int = 6443
    token_file: str | None = None
    kubelet_token_file: str | None = None
    sqlite_synchronous: str = "NORMAL"
    compaction_interval: float = 300.0
    event_ttl: float = 3600.0
    bookmark_interval: float = 10.0
    min_request_timeout: int = 1800
    poll_interval: float | None = None
    node_port_range: tuple[int, int] = (30000, 32767)
    extra: dict = field(default_factory=dict)


class State:
    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.storage = Storage(cfg.storage_url, sqlite_synchronous=cfg.sqlite_synchronous,
                               poll_interval=cfg.poll_interval)
        self.hub = WatchHub(self.storage)
        self.registry = Registry(self.storage, ServiceAllocator(cfg.service_cidr, cfg.node_port_range))
        self.handlers = Handlers(self.storage, self.hub, self.registry, bookmark_interval=cfg.bookmark_interval,
                                 min_request_timeout=cfg.min_request_timeout)
        self.auth = TokenAuthenticator.from_file(cfg.token_file) if cfg.token_file else None
        kubelet_token = noderelay.read_token_file(cfg.kubelet_token_file) if cfg.kubelet_token_file else None
        self.relay = noderelay.NodeRelay(self.handlers.get_object, kubelet_token)
        self.ready = False
        self.tasks: list[asyncio.Task] = []


# Methods a path outside /api and /apis is answered 404 for; any other method is a 405 there.
ROUTED_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"))


class App:
    """The ASGI app uvicorn serves (see the module docstring)."""

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.state = State(cfg)
        self.auth = self.state.auth
        self.plain = {"/version": self.version, "/healthz": self.health, "/livez": self.health,
                      "/readyz": self.health, "/openapi/v2": self.openapi_v2, "/api": self.api_root,
                      "/apis": self.apis_root}

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(WebSocket(scope, receive, send))
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    # ------------------------------------------------------------ the one auth check and error mapping
    def authenticate(self, conn: HTTPConnection) -> None:
        if self.auth is not None and conn.scope["path"] not in PUBLIC_PATHS:
            self.auth.authenticate(conn.headers.get("authorization"))

    def status_for(self, e: Exception, scope) -> errors.StatusError:
        if isinstance(e, errors.StatusError):
            return e
        # The last line of defence: logged here, once; never a traceback to the client.
        log.error("unhandled error on %s %s", scope.get("method", "WebSocket"), scope["path"], exc_info=e)
        return errors.internal("an unexpected error happened; the server log has the details")

    # ------------------------------------------------------------ http
    async def http(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        try:
            self.authenticate(request)
            response = await self.route(request)
        except Exception as e:  # noqa: BLE001 - mapped to a Status
            response = self.status_for(e, scope).response()
        started = False

        async def tracked(message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await response(scope, receive, tracked)
        except Exception as e:  # noqa: BLE001 - a streamed answer that failed
            err = self.status_for(e, scope)
            if not started:
                await err.response()(scope, receive, send)
            # else the headers are out: returning unfinished makes uvicorn close the connection

    async def route(self, request: Request) -> Response:
        path = request.scope["path"]
        if path.startswith("/api/") or path.startswith("/apis/"):
            return await self.resource(request, path)
        method = request.scope["method"]
        endpoint = self.plain.get(path)
        if endpoint is not None and method == "GET":
            return await endpoint(request)
        if method not in ROUTED_METHODS:
            raise errors.method_not_allowed("Method Not Allowed")
        if path.startswith("/openapi/"):
            # /openapi/v3 (and below): a 404 every kubectl version tolerates
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")
        raise errors.path_not_found(path)

    async def resource(self, conn: HTTPConnection, path: str) -> Response | None:
        """/api/... and /apis/...: an http request or a WebSocket."""
        if path.startswith("/api/"):
            rest = path[5:]
            return await dispatch(self.state, conn, "", rest.split("/") if rest else [])
        parts = path[6:].split("/")
        if not parts[0]:
            raise errors.path_not_found(path)
        if len(parts) == 1:
            g = discovery.legacy_group(parts[0])
            if g is None or conn.scope.get("method") != "GET":
                raise errors.path_not_found(path)
            return json_response(g)
        return await dispatch(self.state, conn, parts[0], parts[1:])

    # ------------------------------------------------------------ plain endpoints
    async def version(self, request: Request) -> Response:
        return json_response(discovery.version_info(self.cfg.kube_version))

    async def health(self, request: Request) -> Response:
        ok = self.state.ready
        if ok and request.scope["path"] == "/readyz":
            try:
                await asyncio.wait_for(asyncio.to_thread(self.state.storage.current_revision), 5)
            except Exception:  # noqa: BLE001
                ok = False
        return Response(b"ok" if ok else b"not ready", status_code=200 if ok else 503, media_type="text/plain")

    async def openapi_v2(self, request: Request) -> Response:
        # An empty protobuf message is a valid, empty OpenAPI document: kubectl
        # then skips client-side validation and the server validates instead.
        return Response(b"", media_type="application/octet-stream")

    async def api_root(self, request: Request) -> Response:
        return self.discovery_root(request, True) or json_response(
            discovery.legacy_api(f"{self.cfg.advertise_address}:{self.cfg.port}"))

    async def apis_root(self, request: Request) -> Response:
        return self.discovery_root(request, False) or json_response(discovery.legacy_groups())

    def discovery_root(self, request: Request, core: bool) -> Response | None:
        """The aggregated document when the Accept header asks for one, in exactly the type asked for."""
        agg = discovery.negotiate_aggregated(request.headers.get("accept"))
        if agg is None:
            return None
        return Response(orjson.dumps(discovery.aggregated(core, agg)), media_type=agg, headers={"Vary": "Accept"})

    # ------------------------------------------------------------ WebSockets
    async def websocket(self, ws: WebSocket) -> None:
        """WebSocket upgrades: pods/exec, attach and portforward go to the relay; anything else is refused.

        (SPDY/3.1 upgrades, and WebSockets tunnelling SPDY, arrive as http requests with a takeover in
        the scope: see apiserver/rawupgrade.py and NodeRelay.without_upgrade.)"""
        path = ws.scope["path"]
        try:
            self.authenticate(ws)
        except errors.StatusError as e:
            return await noderelay.deny(ws, e)  # the same 401 Status as an http request gets
        try:
            if not (path.startswith("/api/") or path.startswith("/apis/")):
                raise errors.path_not_found(path)
            await self.resource(ws, path)
        except Exception as e:  # noqa: BLE001 - mapped to a Status
            err = self.status_for(e, ws.scope)
            if ws.application_state is WebSocketState.CONNECTING:
                await noderelay.refuse(ws, err)
            else:
                with contextlib.suppress(Exception):
                    await ws.close(code=1011)

    # ------------------------------------------------------------ lifecycle
    async def lifespan(self, receive, send) -> None:
        await receive()  # lifespan.startup
        try:
            await self.start()
        except Exception as e:  # noqa: BLE001 - uvicorn reports the failure and exits
            log.error("pocketkube apiserver failed to start", exc_info=e)
            await send({"type": "lifespan.startup.failed", "message": f"{type(e).__name__}: {e}"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.stop()
        await send({"type": "lifespan.shutdown.complete"})

    async def start(self) -> None:
        state = self.state
        state.storage.start()
        await state.hub.start()
        await bootstrap.ensure_builtins(state)
        state.tasks.append(asyncio.create_task(bootstrap.maintenance_loop(state), name="maintenance"))
        state.tasks.append(asyncio.create_task(bootstrap.namespace_finalizer_loop(state), name="ns-finalizer"))
        state.ready = True
        log.info("pocketkube apiserver ready (storage %s)", state.storage.dialect)

    async def stop(self) -> None:
        state = self.state
        state.ready = False
        for t in state.tasks:
            t.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)
        await state.hub.stop()
        await state.relay.aclose()
        await asyncio.to_thread(state.storage.close)


def create_app(cfg: ServerConfig) -> App:
    return App(cfg)


async def dispatch(state: State, request: HTTPConnection, group: str, parts: list[str]) -> Response | None:
    """Route /api/v1/... or /apis/G/V/... (parts start at the version) to its handler.

    The path shapes (NS/ is `namespaces/NS/`, left out for cluster-scoped kinds and all-namespace lists;
    the legacy `watch/` prefix may stand before it):
      V                                       the version's APIResourceList (GET)
      [watch/][NS/]PLURAL                     list or watch (GET), create (POST), delete a collection (DELETE)
      [watch/][NS/]PLURAL/NAME                get or watch (GET), update (PUT), patch (PATCH), delete (DELETE)
      [NS/]PLURAL/NAME/status                 get (GET), update (PUT), patch (PATCH) of the status
      namespaces/NAME[/status]                the Namespace object itself (no NS/ prefix)
      NS/pods/NAME/binding, NS/bindings       bind a pod (POST)
      NS/pods/NAME/log                        the kubelet's log (GET)
      NS/pods/NAME/exec|attach|portforward    relayed to the kubelet: a WebSocket (`request` is then a
                                              WebSocket: the only shapes that take one), or http with a
                                              SPDY takeover (apiserver/rawupgrade.py), else a 400
    Anything else is a 404 Status; a known shape with the wrong method a 405.
    """
    if parts and parts[-1] == "":
        parts = parts[:-1]
    path = request.url.path
    if not parts:
        raise errors.path_not_found(path)
    version, rest = parts[0], parts[1:]
    websocket = request.scope["type"] == "websocket"
    method = "GET" if websocket else request.method
    if not rest:
        doc = discovery.resource_list(group, version)
        if doc is None or method != "GET" or websocket:
            raise errors.path_not_found(path)
        return json_response(doc)
    watch_prefix = False
    if rest[0] == "watch":
        watch_prefix = True
        rest = rest[1:]
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (len(rest) > 3 or R.lookup(group, version, rest[2]) is not None):
        ns, rest = rest[1], rest[2:]
    # else: /api/v1/namespaces/NAME[/status] is the namespace object itself
    rt = R.lookup(group, version, rest[0]) if rest else None
    if rt is None:
        raise errors.path_not_found(path)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3 or (rt.namespaced and ns is None and name is not None) or (not rt.namespaced and ns is not None):
        raise errors.path_not_found(path)
    if websocket:  # attach is no listed subresource: it takes only a WebSocket
        if rt is R.PODS and sub in ("exec", "attach", "portforward"):
            return await state.relay.websocket(request, ns, name, sub)
        raise errors.path_not_found(path)
    if sub is not None and sub not in rt.subresources:
        raise errors.path_not_found(path)
    if rt is R.BINDINGS:
        # Binding is only a verb: POST namespaces/NS/bindings binds the pod the body names
        if ns is not None and name is None and method == "POST":
            return await state.handlers.bind(request, ns, None)
        raise errors.path_not_found(path)
    h = state.handlers
    q = request.query_params
    watch = watch_prefix or (q.get("watch", "").lower() in ("1", "true"))

    try:
        if name is None:
            if method == "GET":
                return await (h.watch(request, rt, ns) if watch else h.list(request, rt, ns))
            if method == "POST":
                return await h.create(request, rt, ns)
            if method == "DELETE":
                return await h.delete_collection(request, rt, ns)
            raise errors.method_not_allowed(f"the server does not allow this method on the requested resource ({method} {rt.plural})")
        if sub is None:
            if method == "GET":
                return await (h.watch(request, rt, ns, name) if watch else h.get(request, rt, ns, name))
            if method == "PUT":
                return await h.update(request, rt, ns, name)
            if method == "PATCH":
                return await h.patch(request, rt, ns, name)
            if method == "DELETE":
                return await h.delete(request, rt, ns, name)
            raise errors.method_not_allowed(f"the server does not allow this method on the requested resource ({method} {rt.plural})")
        if sub == "status":
            if method == "GET":
                return await h.get(request, rt, ns, name)
            if method == "PUT":
                return await h.update(request, rt, ns, name, "status")
            if method == "PATCH":
                return await h.patch(request, rt, ns, name, "status")
            raise errors.method_not_allowed(f"{method} is not supported on {rt.plural}/status")
        if sub == "binding" and rt is R.PODS:
            if method == "POST":
                return await h.bind(request, ns, name)
            raise errors.method_not_allowed("only POST is supported on pods/binding")
        allowed = {"log": ("GET",), "exec": ("GET", "POST"), "portforward": ("GET", "POST")}.get(sub, ())
        if method not in allowed:
            raise errors.method_not_allowed(f"{method} is not supported on pods/{sub}")
        if sub == "log":
            return await state.relay.logs(request, ns, name)
        return await state.relay.without_upgrade(request, ns, name, sub)
    except Compacted as e:
        raise errors.gone(f"too old resource version: {e.requested} ({e.compacted})")
