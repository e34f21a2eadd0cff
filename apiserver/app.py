"""The API server's FastAPI application: routing, auth, error mapping, lifecycle.

Resource paths are parsed here by hand rather than with one route per
resource: the Kubernetes URL grammar (/api/v1/namespaces/ns/pods/x/status,
/apis/g/v/..., the legacy /watch/ prefix) is regular, a single dispatcher is
cheaper per request than dozens of regex routes, and it lets every unknown
path answer a Kubernetes 404 Status instead of a framework error page.

This module is also the boundary where errors are mapped: StatusError becomes
its Status body; anything unexpected is logged and becomes a 500 Status with
no traceback in it.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from api import resources as R

from . import bootstrap, discovery, errors, noderelay
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
    kube_version: str = "v1.31.0"
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


class AuthMiddleware:
    """Plain ASGI (no per-request task or body buffering): checks the bearer token."""

    def __init__(self, app, auth: TokenAuthenticator):
        self.app = app
        self.auth = auth

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and scope["path"] not in PUBLIC_PATHS:
            header = None
            for k, v in scope.get("headers") or ():
                if k == b"authorization":
                    header = v.decode("latin-1")
                    break
            try:
                self.auth.authenticate(header)
            except errors.StatusError as e:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await send({"type": "http.response.start", "status": e.code,
                            "headers": [(b"content-type", b"application/json")] +
                                       [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]})
                await send({"type": "http.response.body", "body": e.json()})
                return
        await self.app(scope, receive, send)


def create_app(cfg: ServerConfig) -> FastAPI:
    state = State(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.storage.start()
        await state.hub.start()
        await bootstrap.ensure_builtins(state)
        state.tasks.append(asyncio.create_task(bootstrap.maintenance_loop(state), name="maintenance"))
        state.tasks.append(asyncio.create_task(bootstrap.namespace_finalizer_loop(state), name="ns-finalizer"))
        state.ready = True
        log.info("pocketkube apiserver ready (storage %s)", state.storage.dialect)
        try:
            yield
        finally:
            state.ready = False
            for t in state.tasks:
                t.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
            await state.hub.stop()
            await state.relay.aclose()
            await asyncio.to_thread(state.storage.close)

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pk = state

    async def on_status_error(request: Request, e: errors.StatusError) -> Response:
        return Response(e.json(), status_code=e.code, media_type="application/json", headers=e.headers)

    async def on_unexpected(request: Request, e: Exception) -> Response:
        # The last line of defence: logged here, never a traceback to the client.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=e)
        err = errors.internal("an unexpected error happened; the server log has the details")
        return Response(err.json(), status_code=500, media_type="application/json")

    async def on_http_error(request: Request, e: StarletteHTTPException) -> Response:
        reason = {404: "NotFound", 405: "MethodNotAllowed"}.get(e.status_code, "BadRequest")
        err = errors.StatusError(e.status_code, reason, str(e.detail))
        return Response(err.json(), status_code=e.status_code, media_type="application/json")

    app.add_exception_handler(errors.StatusError, on_status_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
    if state.auth is not None:
        app.add_middleware(AuthMiddleware, auth=state.auth)

    # ------------------------------------------------------------ plain endpoints
    @app.get("/version")
    async def version() -> Response:
        return json_response(discovery.version_info(cfg.kube_version))

    async def health(request: Request) -> Response:
        ok = state.ready
        if ok and request.url.path == "/readyz":
            try:
                await asyncio.wait_for(asyncio.to_thread(state.storage.current_revision), 5)
            except Exception:  # noqa: BLE001
                ok = False
        return Response(b"ok" if ok else b"not ready", status_code=200 if ok else 503, media_type="text/plain")

    for p in ("/healthz", "/livez", "/readyz"):
        app.add_api_route(p, health, methods=["GET"])

    @app.get("/openapi/v2")
    async def openapi_v2() -> Response:
        # An empty protobuf message is a valid, empty OpenAPI document: kubectl
        # then skips client-side validation and the server validates instead.
        return Response(b"", media_type="application/octet-stream")

    @app.get("/api")
    async def api_root(request: Request) -> Response:
        agg = discovery.negotiate_aggregated(request.headers.get("accept"))
        if agg:
            return Response(orjson.dumps(discovery.aggregated(True, agg)), media_type=agg,
                            headers={"Vary": "Accept"})
        return json_response(discovery.legacy_api(f"{cfg.advertise_address}:{cfg.port}"))

    @app.get("/apis")
    async def apis_root(request: Request) -> Response:
        agg = discovery.negotiate_aggregated(request.headers.get("accept"))
        if agg:
            return Response(orjson.dumps(discovery.aggregated(False, agg)), media_type=agg,
                            headers={"Vary": "Accept"})
        return json_response(discovery.legacy_groups())

    # ------------------------------------------------------------ resources
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    # Resource paths are plain Starlette routes inside the FastAPI app: they
    # take the raw Request, so FastAPI's per-request dependency solving
    # (measurable at a thousand creates a second) is skipped.
    async def core(request: Request) -> Response:
        rest = request.path_params["rest"]
        return await dispatch(state, request, "", rest.split("/") if rest else [])

    async def grouped(request: Request) -> Response:
        rest = request.path_params["rest"]
        parts = rest.split("/") if rest else []
        if not parts or not parts[0]:
            raise errors.path_not_found(request.url.path)
        if len(parts) == 1:
            g = discovery.legacy_group(parts[0])
            if g is None or request.method != "GET":
                raise errors.path_not_found(request.url.path)
            return json_response(g)
        return await dispatch(state, request, parts[0], parts[1:])

    async def fallback(request: Request) -> Response:
        if request.path_params["rest"].startswith("openapi/"):
            raise errors.StatusError(404, "NotFound", "the server could not find the requested resource")
        raise errors.path_not_found(request.url.path)

    async def core_websocket(ws: WebSocket) -> None:
        """WebSocket upgrades: pods/exec and portforward relay to the kubelet; anything else is refused.

        (SPDY/3.1 upgrades, and WebSockets tunnelling SPDY, arrive as http requests with a takeover in
        the scope: see apiserver/rawupgrade.py and NodeRelay.without_upgrade.)"""
        parts = ws.path_params["rest"].split("/")
        if len(parts) == 6 and parts[:2] == ["v1", "namespaces"] and parts[3] == "pods" and parts[5] in ("exec", "attach", "portforward"):
            return await state.relay.websocket(ws, parts[2], parts[4], parts[5])
        await noderelay.refuse(ws, errors.path_not_found(ws.url.path))

    app.router.routes.append(WebSocketRoute("/api/{rest:path}", core_websocket))
    app.router.routes.append(Route("/api/{rest:path}", core, methods=methods))
    app.router.routes.append(Route("/apis/{rest:path}", grouped, methods=methods))
    app.router.routes.append(Route("/{rest:path}", fallback, methods=methods))
    app.state.resource_routes = (core, grouped)
    return app


class FastPath:
    """The ASGI app uvicorn serves: resource requests straight to the dispatcher.

    /api/... and /apis/... are nearly every request a cluster makes. Sending
    them through FastAPI's middleware stack (error, telemetry, body-limit,
    exception and exit-stack layers) costs about 15% of a pod create, so this
    thin front calls the same route functions directly, with the same auth
    and the same error mapping. Everything else (discovery roots, health,
    WebSockets, lifespan) goes to the FastAPI app unchanged.
    """

    def __init__(self, app: FastAPI):
        self.app = app
        self.state: State = app.state.pk
        self.core, self.grouped = app.state.resource_routes

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/api/") or path.startswith("/apis/")):
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        try:
            if self.state.auth is not None:
                self.state.auth.authenticate(request.headers.get("authorization"))
            if path.startswith("/api/"):
                request.scope["path_params"] = {"rest": path[5:]}
                response = await self.core(request)
            else:
                request.scope["path_params"] = {"rest": path[6:]}
                response = await self.grouped(request)
        except errors.StatusError as e:
            response = Response(e.json(), status_code=e.code, media_type="application/json", headers=e.headers)
        except Exception as e:  # noqa: BLE001 - the last line of defence, as in create_app
            log.error("unhandled error on %s %s", scope.get("method"), path, exc_info=e)
            err = errors.internal("an unexpected error happened; the server log has the details")
            response = Response(err.json(), status_code=500, media_type="application/json")
        await response(scope, receive, send)


async def dispatch(state: State, request: Request, group: str, parts: list[str]) -> Response:
    """Parse /api/v1/... or /apis/G/V/... (parts start at the version)."""
    if parts and parts[-1] == "":
        parts = parts[:-1]
    path = request.url.path
    if not parts:
        raise errors.path_not_found(path)
    version, rest = parts[0], parts[1:]
    method = request.method
    if not rest:
        doc = discovery.resource_list(group, version)
        if doc is None or method != "GET":
            raise errors.path_not_found(path)
        return json_response(doc)
    watch_prefix = False
    if rest[0] == "watch":
        watch_prefix = True
        rest = rest[1:]
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (len(rest) > 3 or R.lookup(group, version, rest[2]) is not None
                                                       or rest[2] == "bindings"):
        ns, rest = rest[1], rest[2:]
    # else: /api/v1/namespaces/NAME[/status] is the namespace object itself
    rt = R.lookup(group, version, rest[0]) if rest else None
    if rt is None:
        if rest and rest[0] == "bindings" and group == "" and ns and len(rest) == 1 and method == "POST":
            return await state.handlers.bind(request, ns, None)
        raise errors.path_not_found(path)
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3 or (rt.namespaced and ns is None and name is not None) or (not rt.namespaced and ns is not None):
        raise errors.path_not_found(path)
    if sub is not None and sub not in rt.subresources:
        raise errors.path_not_found(path)
    if rt is R.BINDINGS:
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
