"""The relay from the API server to a pod's kubelet: pods/log, pods/exec and pods/portforward.

Why the API server relays at all: in Kubernetes a client never talks to a
kubelet. `kubectl logs`, `exec` and `port-forward` ask the API server for the
pod's `log`, `exec` and `portforward` subresources; the API server
authenticates the client, finds the pod's node, and proxies the request to
that node's kubelet, which owns the containers' output, can start processes
in them and reach their ports. Clients need only the API server's address and
credentials, kubelets accept only the API server, and every component keeps
talking to the API server alone (docs/design.md, Processes).

Address resolution, as kube-apiserver's node connection getter does it: the
pod's `spec.nodeName` names a Node; its `status.addresses` give the host (the
InternalIP entry, else the Hostname one) and
`status.daemonEndpoints.kubeletEndpoint.Port` the port (10250 when absent).
The kubelet speaks plain HTTP here: `GET /containerLogs/{ns}/{pod}/{container}`,
the WebSocket `GET /exec/{ns}/{pod}/{container}` (v5/v4.channel.k8s.io) and
the WebSocket `GET /portForward/{ns}/{pod}?ports=P` (Kubernetes' WebSocket
port-forward protocol, v4.channel.k8s.io: port i has data channel 2i and error
channel 2i+1, each starting with the port as 2 bytes little endian; pocketkube
adds one thing, an empty data message from the client meaning "no more data",
which the kubelet turns into a half-close of the pod connection).

Transports towards the client, by kubectl version:
- exec over WebSocket (1.30+): relayed frame for frame (`exec`, `_pump`);
- exec over SPDY/3.1 (1.27-1.29) and port-forward over SPDY/3.1 (up to 1.30)
  or over SPDY tunnelled in a WebSocket (`SPDY/3.1+portforward.k8s.io`, 1.31+):
  these reach the app through the raw-socket path (apiserver/rawupgrade.py)
  as http requests carrying a takeover; `upgrade` checks everything, answers
  errors as Status responses, and only then takes the socket and runs an
  `ExecSession` or `PortForwardSession` (apiserver/spdyrelay.py, framing in
  apiserver/spdy.py) against the kubelet's WebSockets;
- port-forward over WebSocket channels (v4.channel.k8s.io, the Python client):
  relayed frame for frame to the kubelet's /portForward.
Port-forward requires the pod to be Running, as kubectl checks.

The token: a kubelet accepts only requests bearing the API server's bearer
token, read from `--kubelet-token-file` (its first line). Without the flag no
Authorization header is sent; a kubelet that wants one answers 401 (or 403),
which is reported as a 403 Forbidden Status naming the node and the flag: a
401 would make clients blame their own credentials.

What is checked here, before any traffic to a node, is what Kubernetes checks:
the pod exists (404), is bound (400), the container is valid or can be
defaulted (400, Kubernetes' wording), the log options are well formed (400),
the node exists (404) and has an address (503).
Errors the kubelet answers (a Status body and its code) are passed on; a
kubelet that cannot be reached is a 503 naming the node and address. Exec over
WebSocket is always accepted and then refused the Kubernetes way, with the
Status on channel 3 and a 1000 close: kubectl 1.30+ retries with SPDY on any
non-101 answer, which would only hide the reason. Over SPDY the kubelet
connection is opened before the 101, so its refusal is the HTTP answer
(kubectl prints `Error from server (...)`).

Not relayed yet: attach; it answers a Status that says so.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import quote, urlencode

import anyio
import httpx
import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from api import resources as R

from . import errors, rawupgrade, spdyrelay
from .auth import TokenFileError

log = logging.getLogger("pocketkube.apiserver.noderelay")

DEFAULT_KUBELET_PORT = 10250
CONNECT_TIMEOUT = 5.0  # TCP connect to a kubelet
OPEN_TIMEOUT = 10.0  # connect + WebSocket handshake
READ_TIMEOUT = 60.0  # between chunks of a non-follow log
MAX_FRAME = 16 * 1024 * 1024  # the same limit uvicorn puts on client frames
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
# exec over SPDY, server preference first (v5 over SPDY means nothing more than v4 to kubectl 1.29)
SPDY_EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
PORTFORWARD_WS_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
LOG_INT_PARAMS = ("tailLines", "limitBytes", "sinceSeconds")
LOG_BOOL_PARAMS = ("follow", "previous", "timestamps")
EXEC_BOOL_PARAMS = ("stdin", "stdout", "stderr", "tty")
# Close codes a server may put in a close frame (RFC 6455 7.4.1): not 1005,
# 1006 or 1015, which only describe a connection that ended without one.
_SENDABLE_CLOSE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))

Lookup = Callable[[R.ResourceType, "str | None", str], Awaitable["dict | None"]]


def read_token_file(path: str) -> str:
    """The bearer token for kubelets: the first line of the file, stripped."""
    try:
        with open(path) as f:
            token = f.readline().strip()
    except OSError as e:
        raise TokenFileError(f"cannot read --kubelet-token-file {path}: {e.strerror}")
    if not token:
        raise TokenFileError(f"--kubelet-token-file {path}: the first line (the token) is empty")
    return token


@dataclass(frozen=True)
class Target:
    """Where one pod's container is served: the pod, the container, its kubelet."""

    namespace: str
    pod: str
    container: str
    node: str
    host: str
    port: int

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def where(self) -> str:
        return f'the kubelet of node "{self.node}" at {self.hostport}'

    def path(self, kind: str) -> str:
        parts = [f"/{kind}", quote(self.namespace, safe=""), quote(self.pod, safe="")]
        if self.container:
            parts.append(quote(self.container, safe=""))
        return "/".join(parts)


def kubelet_address(node: dict) -> tuple[str | None, int]:
    """(host, port) of a Node's kubelet: InternalIP else Hostname; the endpoint port else 10250."""
    st = node.get("status") or {}
    addrs = [a for a in st.get("addresses") or () if isinstance(a, dict)]
    host = next((a["address"] for t in ("InternalIP", "Hostname") for a in addrs
                 if a.get("type") == t and isinstance(a.get("address"), str) and a["address"]), None)
    port = ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = 0
    return host, port if 0 < port < 65536 else DEFAULT_KUBELET_PORT


def _containers(pod: dict) -> tuple[list[str], list[str], list[str]]:
    spec = pod.get("spec") or {}

    def names(field: str) -> list[str]:
        return [c["name"] for c in spec.get(field) or () if isinstance(c, dict) and isinstance(c.get("name"), str)]

    return names("initContainers"), names("containers"), names("ephemeralContainers")


def choose_container(pod: dict, requested: str | None, sub: str) -> str:
    """The container a request is about, with Kubernetes' defaulting and messages."""
    name = pod["metadata"]["name"]
    init, main, ephemeral = _containers(pod)
    if requested:
        if requested not in init + main + ephemeral:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(main) == 1:
        return main[0]
    if not main:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    if sub == "log":  # LogLocation lists every container, init ones first
        raise errors.bad_request(f"a container name must be specified for pod {name}, "
                                 f"choose one of: [{' '.join(init + main + ephemeral)}]")
    msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]"
    if init:
        msg += f" or one of the init containers: [{' '.join(init)}]"
    raise errors.bad_request(msg)


def _flag(conn: HTTPConnection, name: str) -> bool:
    # Booleans arrive as true, 1, or (Python client 33.x) True.
    v = conn.query_params.get(name)
    return v is not None and v.lower() in ("1", "true", "t", "yes")


def log_params(request: Request) -> list[tuple[str, str]]:
    """The kubelet's query for pods/log, validated (Kubernetes' PodLogOptions)."""
    q = request.query_params
    out: list[tuple[str, str]] = [(p, "true") for p in LOG_BOOL_PARAMS if _flag(request, p)]
    for p in LOG_INT_PARAMS:
        v = q.get(p)
        if v is None or v == "":
            continue
        try:
            n = int(v)
        except ValueError:
            n = -1
        if n < 0:
            raise errors.bad_request(f'invalid value for {p}: "{v}" must be a non-negative integer')
        out.append((p, str(n)))
    since_time = q.get("sinceTime")
    if since_time:
        if q.get("sinceSeconds"):
            raise errors.bad_request("at most one of sinceTime or sinceSeconds may be specified")
        out.append(("sinceTime", since_time))
    return out


def exec_params(ws: HTTPConnection) -> list[tuple[str, str]]:
    commands = ws.query_params.getlist("command")
    if not commands:
        raise errors.bad_request("you must specify at least one command for the container")
    flags = [p for p in EXEC_BOOL_PARAMS if _flag(ws, p)]
    if not set(flags) & {"stdin", "stdout", "stderr"}:
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return [("command", c) for c in commands] + [(p, "true") for p in flags]


def stream_protocols(request: HTTPConnection) -> list[str]:
    """The X-Stream-Protocol-Version offers of a SPDY upgrade (one header each, or comma-joined)."""
    return [p.strip() for v in request.headers.getlist("x-stream-protocol-version") for p in v.split(",") if p.strip()]


def portforward_ports(conn: HTTPConnection) -> list[int]:
    """`ports` (or Kubernetes' kubelet-side `port`) query values, comma-separated or repeated."""
    raw = conn.query_params.getlist("ports") + conn.query_params.getlist("port")
    if not raw:
        raise errors.bad_request('query parameter "ports" is required')
    ports = []
    for value in raw:
        for p in value.split(","):
            try:
                n = int(p)
            except ValueError:
                n = 0
            if not 0 < n < 65536:
                raise errors.bad_request(f'invalid port "{p}": must be between 1 and 65535')
            ports.append(n)
    return ports


def negotiate(ws: WebSocket) -> str | None:
    """The channel subprotocol to answer with: the newest one offered."""
    offered = [p.strip() for p in (ws.headers.get("sec-websocket-protocol") or "").split(",") if p.strip()]
    return next((p for p in CHANNEL_PROTOCOLS if p in offered), offered[0] if offered else None)


async def refuse(ws: WebSocket, err: errors.StatusError, subprotocol: str | None = None,
                 accepted: bool = False) -> None:
    """Refuse a WebSocket request the Kubernetes way: the Status on channel 3, then close 1000."""
    try:
        if not accepted:
            await ws.accept(subprotocol=subprotocol if subprotocol is not None else negotiate(ws))
        await ws.send_bytes(b"\x03" + err.json())
        await ws.close(code=1000)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client is gone already


def _reason_for(code: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Expired", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}.get(code, "InternalError" if code >= 500 else "BadRequest")


def kubelet_error(t: Target, code: int, body: bytes) -> errors.StatusError:
    """A kubelet's non-success answer as the StatusError to pass on."""
    if code in (401, 403):
        return errors.StatusError(
            403, "Forbidden",
            f"{t.where} refused the API server's credentials (HTTP {code}): start the API server with "
            "--kubelet-token-file naming a file that holds the kubelet's token")
    status = None
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    if isinstance(status, dict) and status.get("kind") == "Status" and isinstance(status.get("message"), str):
        details = status.get("details") if isinstance(status.get("details"), dict) else None
        return errors.StatusError(code, str(status.get("reason") or _reason_for(code)), status["message"], details)
    text = body.decode("utf-8", "replace").strip()[:500]
    return errors.StatusError(code, _reason_for(code), f"{t.where} answered HTTP {code}" + (f": {text}" if text else ""))


class _RelayedLog(StreamingResponse):
    """The kubelet's log response streamed through; the upstream closes however the stream ends."""

    def __init__(self, upstream: httpx.Response, target: Target):
        self.upstream = upstream
        self.target = target
        super().__init__(self._chunks(), status_code=200,
                         media_type=upstream.headers.get("content-type") or "text/plain")

    async def _chunks(self):
        try:
            async for chunk in self.upstream.aiter_bytes():
                yield chunk
        except httpx.HTTPError as e:
            # Headers are out: end the stream cleanly (as kube-apiserver's proxy does) and log why.
            log.warning("log stream from %s ended early: %r", self.target.where, e)

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also when the client went away mid-follow and this task is being cancelled.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self.upstream.aclose()


class NodeRelay:
    def __init__(self, lookup: Lookup, token: str | None = None):
        self.lookup = lookup
        self.token = token
        self._client: httpx.AsyncClient | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: never through a proxy from the environment (docs/design.md: only inside
            # addresses). No pool cap: every `logs -f` holds a connection for as long as it follows.
            self._client = httpx.AsyncClient(
                trust_env=False, limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
                timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, pool=CONNECT_TIMEOUT))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ resolution
    async def pod(self, ns: str, name: str) -> dict:
        """The pod, which must exist and be bound to a node."""
        pod = await self.lookup(R.PODS, ns, name)
        if pod is None:
            raise errors.not_found("pods", name)
        if not (pod.get("spec") or {}).get("nodeName"):
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        return pod

    async def target(self, ns: str, name: str, container: str | None, sub: str) -> Target:
        pod = await self.pod(ns, name)
        return await self.kubelet_of(pod, choose_container(pod, container, sub))

    async def kubelet_of(self, pod: dict, container: str = "") -> Target:
        """Where the pod's kubelet is (container "" for pod-level requests such as port-forward)."""
        node_name = pod["spec"]["nodeName"]
        node = await self.lookup(R.NODES, None, node_name)
        if node is None:
            raise errors.not_found("nodes", node_name)
        host, port = kubelet_address(node)
        if host is None:
            raise errors.unavailable(
                f'node "{node_name}" has no InternalIP or Hostname in status.addresses, so its kubelet '
                "cannot be reached (has the kubelet registered the node?)")
        return Target(pod["metadata"].get("namespace") or "", pod["metadata"]["name"], container, node_name, host, port)

    async def running_pod(self, ns: str, name: str) -> dict:
        """The pod for port-forward: bound and Running (kubectl refuses others with these words too)."""
        pod = await self.pod(ns, name)
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase != "Running":
            raise errors.bad_request(f"unable to forward port because pod is not running. Current status={phase}")
        return pod

    async def kubelet_ws(self, t: Target, path: str, params: list[tuple[str, str]], subprotocols: list[str]):
        """A WebSocket to the kubelet; every failure is the StatusError to answer with."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

        url = f"ws://{t.hostport}{path}?{urlencode(params)}"
        try:
            return await connect(
                url, subprotocols=subprotocols or None, additional_headers=self.headers,
                open_timeout=OPEN_TIMEOUT, proxy=None, compression=None, max_size=MAX_FRAME,
                ping_interval=30, ping_timeout=60, user_agent_header="pocketkube-apiserver")
        except InvalidStatus as e:
            raise kubelet_error(t, e.response.status_code, e.response.body or b"")
        except (OSError, TimeoutError) as e:
            raise self._unreachable(t, e)
        except (InvalidHandshake, InvalidURI) as e:
            raise errors.unavailable(f"{t.where} did not accept the WebSocket for {path.split('/')[1]}: {e}")

    def _unreachable(self, t: Target, e: BaseException) -> errors.StatusError:
        why = _why(e)
        log.warning("cannot reach %s: %s", t.where, why)
        return errors.unavailable(f"cannot reach {t.where}: {why}")

    # ------------------------------------------------------------ pods/log
    async def logs(self, request: Request, ns: str, name: str) -> Response:
        params = log_params(request)
        t = await self.target(ns, name, request.query_params.get("container"), "log")
        follow = any(p == "follow" for p, _ in params)
        client = self._http()
        req = client.build_request(
            "GET", f"http://{t.hostport}{t.path('containerLogs')}", params=params,
            headers={**self.headers, "Accept-Encoding": "identity"},
            # A followed log may be quiet for hours: no read timeout then.
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, pool=CONNECT_TIMEOUT,
                                  read=None if follow else READ_TIMEOUT))
        try:
            # The read timeout is off when following, so bound the wait for the headers apart.
            resp = await asyncio.wait_for(client.send(req, stream=True), OPEN_TIMEOUT + READ_TIMEOUT)
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as e:
            raise self._unreachable(t, e)
        if resp.status_code != 200:
            try:
                body = await _read_some(resp, 64 * 1024)
            except httpx.HTTPError:
                body = b""
            finally:
                await resp.aclose()
            raise kubelet_error(t, resp.status_code, body)
        return _RelayedLog(resp, t)

    # ------------------------------------------------------------ WebSockets
    async def websocket(self, ws: WebSocket, ns: str, name: str, sub: str) -> None:
        """Every pod subresource WebSocket: exec and portforward are relayed, attach refused."""
        if sub == "exec":
            return await self.exec(ws, ns, name)
        if sub == "portforward":
            return await self.portforward_ws(ws, ns, name)
        try:
            await self.not_relayed(ns, name, sub)
        except errors.StatusError as e:
            await refuse(ws, e)

    async def not_relayed(self, ns: str, name: str, sub: str) -> None:
        """Raises: the pod's own errors first, then 503 saying the subresource is not relayed yet."""
        await self.pod(ns, name)
        raise errors.unavailable(f"pods/{sub} is not relayed to the kubelet by this server yet: "
                                 f"{sub} relaying is a later issue")

    async def without_upgrade(self, request: Request, ns: str, name: str, sub: str) -> Response:
        """pods/exec or portforward as plain HTTP or SPDY: the SPDY relay when the socket can be taken,
        otherwise always a Status error, never a hang or a 500."""
        takeover = (request.scope.get("extensions") or {}).get(rawupgrade.EXTENSION)
        if takeover is not None:
            return await self.upgrade(request, ns, name, sub, takeover)
        if sub not in ("exec", "portforward"):
            await self.not_relayed(ns, name, sub)
        await self.pod(ns, name)
        upgrade = (request.headers.get("upgrade") or "").strip()
        if upgrade.lower().startswith("spdy"):
            raise errors.bad_request(
                f"pods/{sub} over {upgrade} needs the API server's raw-socket path "
                "(apiserver.rawupgrade.RawUpgradeProtocol, which `pocketkube apiserver` runs); this listener "
                "has none: use a WebSocket client (kubectl 1.30 or newer for exec, 1.31 for port-forward)")
        if sub == "portforward":
            raise errors.bad_request("Upgrade request required: pods/portforward is a SPDY/3.1 (portforward.k8s.io) "
                                     "or WebSocket (v4.channel.k8s.io) request")
        raise errors.bad_request("Upgrade request required: pods/exec is a WebSocket (v5.channel.k8s.io or "
                                 "v4.channel.k8s.io) or SPDY/3.1 request")

    async def upgrade(self, request: Request, ns: str, name: str, sub: str, takeover) -> Response:
        """SPDY/3.1 (or SPDY in a WebSocket): every check first, as Status answers; then the socket."""
        log.debug("pods/%s for %s/%s over %s", sub, ns, name,
                  "SPDY/3.1" if takeover.kind == "spdy" else rawupgrade.TUNNEL_SUBPROTOCOL)
        if sub == "exec" and takeover.kind == "spdy":
            return await self._spdy_exec(request, ns, name, takeover)
        if sub == "portforward":
            return await self._spdy_portforward(request, ns, name, takeover)
        if sub == "exec":
            raise errors.bad_request("pods/exec over WebSocket needs one of the subprotocols "
                                     f"{', '.join(CHANNEL_PROTOCOLS)}; offered: {rawupgrade.TUNNEL_SUBPROTOCOL}")
        await self.not_relayed(ns, name, sub)
        raise AssertionError("unreachable")

    async def _spdy_exec(self, request: Request, ns: str, name: str, takeover) -> Response:
        offered = stream_protocols(request)
        proto = next((p for p in SPDY_EXEC_PROTOCOLS if p in offered), None)
        if offered and proto is None:
            raise errors.StatusError(403, "Forbidden", "unable to upgrade: unable to negotiate protocol: client "
                                     f"supports {offered}, server supports {list(SPDY_EXEC_PROTOCOLS)}")
        params = exec_params(request)
        flags = {p for p, _ in params if p != "command"}
        t = await self.target(ns, name, request.query_params.get("container"), "exec")
        # The kubelet first: its refusal, or its absence, is this request's answer.
        upstream = await self.kubelet_ws(t, t.path("exec"), params, ["v5.channel.k8s.io", "v4.channel.k8s.io"])
        expected = {"error"} | (flags & {"stdin", "stdout"})
        if "tty" in flags:
            if proto in ("v3.channel.k8s.io", "v4.channel.k8s.io"):
                expected.add("resize")
        elif "stderr" in flags:
            expected.add("stderr")
        headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]
        if proto:
            headers.append(("X-Stream-Protocol-Version", proto))
        try:
            conn = await takeover.accept(rawupgrade.response_head("101 Switching Protocols", headers))
        except ConnectionError:
            await upstream.close()
            return rawupgrade.TAKEN
        try:
            await spdyrelay.ExecSession(conn, upstream, proto or "channel.k8s.io", expected, t.where).run()
        except Exception:  # noqa: BLE001 - the socket is ours: nothing to answer, log and close
            log.exception("SPDY exec session for %s/%s failed", ns, name)
            conn.close()
        return rawupgrade.TAKEN

    async def _spdy_portforward(self, request: Request, ns: str, name: str, takeover) -> Response:
        pod = await self.running_pod(ns, name)
        t = await self.kubelet_of(pod)
        if takeover.kind == "spdy":
            offered = stream_protocols(request)
            if offered and PORTFORWARD_PROTOCOL not in offered:
                raise errors.StatusError(403, "Forbidden", "unable to upgrade: unable to negotiate protocol: client "
                                         f"supports {offered}, server supports ['{PORTFORWARD_PROTOCOL}']")
            headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                       ("X-Stream-Protocol-Version", PORTFORWARD_PROTOCOL)]
        else:
            key = request.headers.get("sec-websocket-key")
            if not key or request.headers.get("sec-websocket-version") != "13":
                raise errors.bad_request("a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13")
            headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                       ("Sec-WebSocket-Accept", rawupgrade.websocket_accept(key)),
                       ("Sec-WebSocket-Protocol", rawupgrade.TUNNEL_SUBPROTOCOL)]
        try:
            raw = await takeover.accept(rawupgrade.response_head("101 Switching Protocols", headers))
        except ConnectionError:
            return rawupgrade.TAKEN
        conn = raw if takeover.kind == "spdy" else rawupgrade.WebSocketStream(raw)

        async def open_port(port: int):
            return await self.kubelet_ws(t, t.path("portForward"), [("ports", str(port))], ["v4.channel.k8s.io"])

        try:
            await spdyrelay.PortForwardSession(conn, open_port, t.where).run()
        except Exception:  # noqa: BLE001
            log.exception("SPDY port-forward session for %s/%s failed", ns, name)
            conn.close()
        return rawupgrade.TAKEN

    async def portforward_ws(self, ws: WebSocket, ns: str, name: str) -> None:
        """Port-forward over WebSocket channels (v4.channel.k8s.io): the kubelet speaks the same protocol."""
        offered = [p.strip() for p in (ws.headers.get("sec-websocket-protocol") or "").split(",") if p.strip()]
        proto = next((p for p in PORTFORWARD_WS_PROTOCOLS if p in offered), None)
        try:
            if offered and proto is None:
                raise errors.bad_request("pods/portforward over WebSocket needs the subprotocol "
                                         f"v4.channel.k8s.io; offered: {', '.join(offered)}")
            ports = portforward_ports(ws)
            t = await self.kubelet_of(await self.running_pod(ns, name))
            upstream = await self.kubelet_ws(t, t.path("portForward"), [("ports", str(p)) for p in ports],
                                             [proto] if proto else [])
        except errors.StatusError as e:
            return await deny(ws, e)
        try:
            await ws.accept(subprotocol=proto)
        except (WebSocketDisconnect, RuntimeError, OSError):
            await upstream.close()
            return
        await _pump(ws, upstream, t, status_channel=None)

    async def exec(self, ws: WebSocket, ns: str, name: str) -> None:
        proto = negotiate(ws)
        try:
            if proto not in CHANNEL_PROTOCOLS:
                raise errors.bad_request(f"pods/exec over WebSocket needs one of the subprotocols "
                                         f"{', '.join(CHANNEL_PROTOCOLS)}; offered: {proto or 'none'}")
            params = exec_params(ws)
            t = await self.target(ns, name, ws.query_params.get("container"), "exec")
            upstream = await self.kubelet_ws(t, t.path("exec"), params, [proto])
        except errors.StatusError as e:
            return await refuse(ws, e, proto)
        try:
            await ws.accept(subprotocol=proto)
        except (WebSocketDisconnect, RuntimeError, OSError):
            await upstream.close()
            return
        await _pump(ws, upstream, t)


async def deny(ws: WebSocket, err: errors.StatusError) -> None:
    """Refuse a WebSocket before the upgrade with the Status as an HTTP answer (uvicorn's denial response)."""
    try:
        await ws.send_denial_response(err.response())
    except RuntimeError:  # no denial-response support: accept, then close with the reason
        try:
            await ws.accept()
            await ws.close(code=1008, reason=err.message[:120])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
    except (WebSocketDisconnect, OSError):
        pass


def _why(e: BaseException) -> str:
    """A short reason for a failed connection: the OS error under httpx's wrapping if there is one."""
    seen = e
    while seen is not None:
        if isinstance(seen, (TimeoutError, httpx.TimeoutException)):
            return "timed out"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    return str(e) or type(e).__name__


async def _read_some(resp: httpx.Response, limit: int) -> bytes:
    out = bytearray()
    async for chunk in resp.aiter_bytes():
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out[:limit])


async def _pump(ws: WebSocket, upstream, t: Target, status_channel: int | None = 3) -> None:
    """Copy frames both ways until one side closes; pass the kubelet's close on.

    status_channel: where a lost kubelet connection is reported (exec: 3); None for port-forward."""
    from websockets.exceptions import ConnectionClosed

    saw_status = False

    async def client_to_kubelet() -> int:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return msg.get("code") or 1000
            data = msg.get("bytes")
            if data is None:
                data = msg.get("text")
            if data is not None:
                await upstream.send(data)

    async def kubelet_to_client() -> None:
        nonlocal saw_status
        async for data in upstream:  # ends at the kubelet's close
            if isinstance(data, bytes):
                saw_status = saw_status or (status_channel is not None and data[:1] == bytes([status_channel]))
                await ws.send_bytes(data)
            else:
                await ws.send_text(data)

    up = asyncio.create_task(kubelet_to_client())
    down = asyncio.create_task(client_to_kubelet())
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if down in done and not isinstance(down.exception(), ConnectionClosed):
            # The client went away (or its side failed): end the kubelet's side too.
            up.cancel()
            await asyncio.gather(up, return_exceptions=True)
            await upstream.close(code=1000)
            return
        # The kubelet closed (a send to it failing means the same): deliver what it sent, then its close.
        down.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        error = up.exception() if not up.cancelled() else None
        code, reason = upstream.close_code, upstream.close_reason or ""
        if error is not None and not isinstance(error, ConnectionClosed):
            log.debug("exec relay to %s: %r", t.where, error)  # the client went away while we were sending
            return
        if code not in _SENDABLE_CLOSE:
            # Dropped without a close frame: say so on the error channel unless a Status came already.
            if not saw_status and status_channel is not None:
                err = errors.unavailable(f"the connection to {t.where} was lost (close code {code})")
                try:
                    await ws.send_bytes(bytes([status_channel]) + err.json())
                except (WebSocketDisconnect, RuntimeError, OSError):
                    return
            code, reason = 1000, ""
        try:
            await ws.close(code=code, reason=reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        await upstream.close()
