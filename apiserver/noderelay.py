"""The relay from the API server to a pod's kubelet: pods/log and pods/exec.

Why the API server relays at all: in Kubernetes a client never talks to a
kubelet. `kubectl logs` and `kubectl exec` ask the API server for the pod's
`log` and `exec` subresources; the API server authenticates the client, finds
the pod's node, and proxies the request to that node's kubelet, which owns the
containers' output and can start processes in them. Clients need only the API
server's address and credentials, kubelets accept only the API server, and
every component keeps talking to the API server alone (DESIGN.md, Processes).

Address resolution, as kube-apiserver's node connection getter does it: the
pod's `spec.nodeName` names a Node; its `status.addresses` give the host (the
InternalIP entry, else the Hostname one) and
`status.daemonEndpoints.kubeletEndpoint.Port` the port (10250 when absent).
The kubelet speaks plain HTTP here: `GET /containerLogs/{ns}/{pod}/{container}`
and the WebSocket `GET /exec/{ns}/{pod}/{container}` (v5/v4.channel.k8s.io).

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
non-101 answer, which would only hide the reason.

Not relayed yet (later issues): exec over SPDY/3.1 (kubectl 1.27-1.29),
attach, and port-forward; they answer a Status that says so.
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

from . import errors
from .auth import TokenFileError

log = logging.getLogger("pocketkube.apiserver.noderelay")

DEFAULT_KUBELET_PORT = 10250
CONNECT_TIMEOUT = 5.0  # TCP connect to a kubelet
OPEN_TIMEOUT = 10.0  # connect + WebSocket handshake
READ_TIMEOUT = 60.0  # between chunks of a non-follow log
MAX_FRAME = 16 * 1024 * 1024  # the same limit uvicorn puts on client frames
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
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
        return "/".join((f"/{kind}", quote(self.namespace, safe=""), quote(self.pod, safe=""),
                         quote(self.container, safe="")))


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


def exec_params(ws: WebSocket) -> list[tuple[str, str]]:
    commands = ws.query_params.getlist("command")
    if not commands:
        raise errors.bad_request("you must specify at least one command for the container")
    flags = [p for p in EXEC_BOOL_PARAMS if _flag(ws, p)]
    if not set(flags) & {"stdin", "stdout", "stderr"}:
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return [("command", c) for c in commands] + [(p, "true") for p in flags]


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
            # trust_env=False: never through a proxy from the environment (DESIGN.md: only inside
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
        chosen = choose_container(pod, container, sub)
        node_name = pod["spec"]["nodeName"]
        node = await self.lookup(R.NODES, None, node_name)
        if node is None:
            raise errors.not_found("nodes", node_name)
        host, port = kubelet_address(node)
        if host is None:
            raise errors.unavailable(
                f'node "{node_name}" has no InternalIP or Hostname in status.addresses, so its kubelet '
                "cannot be reached (has the kubelet registered the node?)")
        return Target(ns, name, chosen, node_name, host, port)

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
        """Every pod subresource WebSocket: exec is relayed, attach and portforward refused."""
        if sub == "exec":
            return await self.exec(ws, ns, name)
        try:
            await self.not_relayed(ns, name, sub)
        except errors.StatusError as e:
            await refuse(ws, e)

    async def not_relayed(self, ns: str, name: str, sub: str) -> None:
        """Raises: the pod's own errors first, then 503 saying the subresource is not relayed yet."""
        await self.pod(ns, name)
        later = {"portforward": "port-forward relaying (SPDY framing) is a later issue",
                 "attach": "attach relaying is a later issue"}.get(sub, "")
        raise errors.unavailable(f"pods/{sub} is not relayed to the kubelet by this server yet" +
                                 (f": {later}" if later else ""))

    async def without_upgrade(self, request: Request, ns: str, name: str, sub: str) -> Response:
        """pods/exec or portforward as plain HTTP or SPDY: always a Status error, never a hang or a 500."""
        if sub != "exec":
            await self.not_relayed(ns, name, sub)
        await self.pod(ns, name)
        upgrade = (request.headers.get("upgrade") or "").strip()
        if upgrade.lower().startswith("spdy"):
            raise errors.bad_request(
                f"pods/exec over {upgrade} (kubectl 1.27-1.29) is not supported by this server yet: "
                "use kubectl 1.30 or newer, which speaks WebSocket (v5.channel.k8s.io)")
        raise errors.bad_request("Upgrade request required: pods/exec is a WebSocket (v5.channel.k8s.io or "
                                 "v4.channel.k8s.io) request; SPDY/3.1 is not supported yet")

    async def exec(self, ws: WebSocket, ns: str, name: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

        proto = negotiate(ws)
        try:
            if proto not in CHANNEL_PROTOCOLS:
                raise errors.bad_request(f"pods/exec over WebSocket needs one of the subprotocols "
                                         f"{', '.join(CHANNEL_PROTOCOLS)}; offered: {proto or 'none'}")
            params = exec_params(ws)
            t = await self.target(ns, name, ws.query_params.get("container"), "exec")
        except errors.StatusError as e:
            return await refuse(ws, e, proto)
        url = f"ws://{t.hostport}{t.path('exec')}?{urlencode(params)}"
        try:
            upstream = await connect(
                url, subprotocols=[proto], additional_headers=self.headers,
                open_timeout=OPEN_TIMEOUT, proxy=None, compression=None, max_size=MAX_FRAME,
                ping_interval=30, ping_timeout=60, user_agent_header="pocketkube-apiserver")
        except InvalidStatus as e:
            return await refuse(ws, kubelet_error(t, e.response.status_code, e.response.body or b""), proto)
        except (OSError, TimeoutError) as e:
            return await refuse(ws, self._unreachable(t, e), proto)
        except (InvalidHandshake, InvalidURI) as e:
            return await refuse(ws, errors.unavailable(f"{t.where} did not accept the exec WebSocket: {e}"), proto)
        try:
            await ws.accept(subprotocol=proto)
        except (WebSocketDisconnect, RuntimeError, OSError):
            await upstream.close()
            return
        await _pump(ws, upstream, t)


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


async def _pump(ws: WebSocket, upstream, t: Target) -> None:
    """Copy frames both ways until one side closes; pass the kubelet's close on."""
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
                saw_status = saw_status or data[:1] == b"\x03"
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
            if not saw_status:
                err = errors.unavailable(f"the connection to {t.where} was lost (close code {code})")
                try:
                    await ws.send_bytes(b"\x03" + err.json())
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
