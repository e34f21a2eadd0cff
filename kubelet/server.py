"""The kubelet's own HTTP API: container logs, exec, port-forward and healthz, for the API server's relay.

docs/design.md's kubelet endpoint: ``/containerLogs/{ns}/{pod}/{container}``
(plain text, ``follow``/``tailLines``/``previous``/``timestamps``/
``sinceSeconds``/``limitBytes``), ``/exec/{ns}/{pod}/{container}``
(WebSocket, ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``: one byte of
channel then data; 0 stdin, 1 stdout, 2 stderr, 3 the final Status, 4
resize, 255 close-stdin), ``/portForward/{ns}/{pod}`` (below) and ``/healthz``. Everything but ``/healthz``
needs ``Authorization: Bearer`` with one of the accepted tokens (the API
server's); errors are Kubernetes Status bodies the relay passes through.

Logs are read from the CRI files the runtime writes (``kubelet.runtime.logs``, the
runtime's public log-reading interface, as CRI leaves log files to the kubelet);
an exec session gets its pipes or pty from the runtime with the answer to one
call and is pumped here with the event loop watching those descriptors.

Port-forward is Kubernetes' WebSocket protocol: ``GET /portForward/{ns}/{pod}
?ports=80[,8080]`` (``port`` also accepted, repeated or comma-separated),
subprotocol ``v4.channel.k8s.io`` (or ``portforward.k8s.io``, or none); for
the i-th port, channel 2i carries data both ways and 2i+1 errors (server to
client), and the first message on each channel is the port as 2 bytes little
endian. One TCP connection per port and request, opened the way the CRI
runtimes do it: inside the pod's network namespace (the sandbox's, entered by a
short-lived thread that makes the socket there) to ``127.0.0.1:port``, so
servers bound to the pod's localhost and hostNetwork pods work too; when the
namespace cannot be entered (no sandbox, not root) it connects to the pod IP.
A connect failure is reported on the error channel as Kubernetes words it.
pocketkube's one addition: an empty data message from the client (just the
channel byte) means it will send no more, and the pod connection is
half-closed (the API server sends it for a SPDY FIN). When every port's pod
connection has ended the WebSocket is closed (1000).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import socket
import struct
import threading
from datetime import datetime, timedelta, timezone

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.meta import status_body
from kubelet.runtime import logs as crilogs
from kubelet.runtime.client import RuntimeCallError
from nodeutil.fdio import read_ready, set_winsize
from nodeutil.netns import socket_in_netns

log = logging.getLogger("kubelet.server")

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
PORTFORWARD_CONNECT_TIMEOUT = 10.0


class HTTPError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> Response:
        return JSONResponse(status_body(self.code, self.reason, self.message), status_code=self.code)


class KubeletServer:
    def __init__(self, *, pods_store, syncer, runtime, tokens: set[str], host: str, port: int):
        self.pods = pods_store
        self.syncer = syncer
        self.runtime = runtime
        self.tokens = {t for t in tokens if t}
        self.host = host
        self.port = port
        self.app = Starlette(routes=[
            Route("/healthz", self.healthz),
            Route("/metrics", self.metrics),
            Route("/containerLogs/{ns}/{pod}/{container}", self.container_logs),
            WebSocketRoute("/exec/{ns}/{pod}/{container}", self.exec_ws),
            WebSocketRoute("/portForward/{ns}/{pod}", self.port_forward_ws),
        ])
        self._server: uvicorn.Server | None = None

    # ------------------------------------------------------------------ basics
    def _authorized(self, headers) -> bool:
        auth = headers.get("authorization") or ""
        if not auth.startswith("Bearer ") or not self.tokens:
            return False
        given = auth[7:].strip()
        return any(hmac.compare_digest(given, t) for t in self.tokens)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics(self, request: Request) -> Response:
        """Prometheus text: sandbox set-up time quantiles over the last 1,000 sandboxes, and pod counts."""
        if not self._authorized(request.headers):
            return HTTPError(401, "Unauthorized", "Unauthorized").response()
        xs = sorted(self.syncer.sandboxes.setup_seconds) if self.syncer else []
        lines = ["# TYPE pocketkube_kubelet_sandbox_setup_seconds summary"]
        for q in (0.5, 0.9, 0.99):
            v = xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0
            lines.append(f'pocketkube_kubelet_sandbox_setup_seconds{{quantile="{q}"}} {v:.6f}')
        lines.append(f"pocketkube_kubelet_sandbox_setup_seconds_sum {sum(xs):.6f}")
        lines.append(f"pocketkube_kubelet_sandbox_setup_seconds_count {len(xs)}")
        lines.append(f"pocketkube_kubelet_pods {len(self.pods.list())}")
        return PlainTextResponse("\n".join(lines) + "\n")

    def _find(self, ns: str, pod_name: str, container: str) -> tuple[dict, list[dict]]:
        """The pod and this container's runtime records (oldest attempt first)."""
        pod = self.pods.get_by_key(f"{ns}/{pod_name}")
        if pod is None:
            raise HTTPError(404, "NotFound", f'pods "{pod_name}" not found')
        spec = pod.get("spec") or {}
        names = [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
        if container not in names:
            raise HTTPError(400, "BadRequest", f"container {container} is not valid for pod {pod_name}")
        uid = pod["metadata"]["uid"]
        sbs = [s for s in self.runtime.call("list_sandboxes")["items"] if s["pod"].get("uid") == uid]
        recs = []
        for sb in sbs:
            recs += [c for c in self.runtime.call("list_containers", sandbox_id=sb["id"])["items"]
                     if c["name"] == container]
        recs.sort(key=lambda c: (c["attempt"], c["created_at"]))
        return pod, recs

    def _waiting_reason(self, pod: dict, container: str) -> str:
        w = self.syncer._waiting.get(pod["metadata"]["uid"], {}).get(container) if self.syncer else None
        return w[0] if w else "ContainerCreating"

    # -------------------------------------------------------------------- logs
    async def container_logs(self, request: Request) -> Response:
        if not self._authorized(request.headers):
            return HTTPError(401, "Unauthorized", "Unauthorized: the kubelet accepts only the API server's "
                                                  "token").response()
        p = request.path_params
        q = request.query_params
        try:
            tail = _nonneg(q, "tailLines")
            limit = _nonneg(q, "limitBytes")
            since_s = _nonneg(q, "sinceSeconds")
            since = datetime.now(timezone.utc) - timedelta(seconds=since_s) if since_s is not None else None
            if q.get("sinceTime"):
                since = datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00"))
            follow = q.get("follow") in ("true", "1")
            previous = q.get("previous") in ("true", "1")
            timestamps = q.get("timestamps") in ("true", "1")
            pod, recs = await asyncio.to_thread(self._find, p["ns"], p["pod"], p["container"])
        except HTTPError as e:
            return e.response()
        except ValueError as e:
            return HTTPError(400, "BadRequest", str(e)).response()
        except RuntimeCallError as e:
            return HTTPError(503, "ServiceUnavailable", f"container runtime: {e}").response()
        if previous:
            # the instance lastState describes: the exited one waiting for its restart, else the one before
            if recs and recs[-1]["state"] == "exited" and self._waiting_reason(pod, p["container"]) == \
                    "CrashLoopBackOff":
                rec = recs[-1]
            elif len(recs) >= 2:
                rec = recs[-2]
            else:
                return HTTPError(400, "BadRequest", f'previous terminated container "{p["container"]}" in pod '
                                                    f'"{p["pod"]}" not found').response()
            follow = False
        else:
            if not recs:
                return HTTPError(400, "BadRequest", f'container "{p["container"]}" in pod "{p["pod"]}" is waiting '
                                                    f'to start: {self._waiting_reason(pod, p["container"])}'
                                 ).response()
            rec = recs[-1]
        path = rec["log_path"]
        body = await asyncio.to_thread(crilogs.read_logs, path, tail=tail, timestamps=timestamps, since=since,
                                       limit_bytes=limit)
        if not follow or rec["state"] != "running":
            return Response(body, media_type="text/plain")
        offset, start_ino = crilogs.position(path)
        cid = rec["id"]

        def running() -> bool:
            try:
                items = self.runtime.call("list_containers", sandbox_id=rec["sandbox_id"])["items"]
            except RuntimeCallError:
                return False
            return any(c["id"] == cid and c["state"] == "running" for c in items)

        stop = threading.Event()
        sent = [len(body)]

        def gen():
            try:
                if body:
                    yield body
                for chunk in crilogs.follow(path, offset, timestamps=timestamps, still_running=running,
                                            stop=stop.is_set, start_ino=start_ino):
                    if limit is not None:
                        if sent[0] >= limit:
                            return
                        chunk = chunk[:limit - sent[0]]
                    sent[0] += len(chunk)
                    yield chunk
            finally:
                stop.set()

        return StreamingResponse(_threaded(gen(), stop), media_type="text/plain")

    # -------------------------------------------------------------------- exec
    async def exec_ws(self, ws: WebSocket) -> None:
        if not self._authorized(ws.headers):
            await ws.close(code=1008)
            return
        offered = [x.strip() for x in (ws.headers.get("sec-websocket-protocol") or "").split(",") if x.strip()]
        proto = next((x for x in PROTOCOLS if x in offered), None)
        await ws.accept(subprotocol=proto)
        p = ws.path_params
        q = ws.query_params
        command = q.getlist("command")
        tty = q.get("tty") in ("true", "1")
        want_stdin = q.get("stdin") in ("true", "1")
        loop = asyncio.get_running_loop()

        async def finish(st: dict) -> None:
            try:
                await ws.send_bytes(b"\x03" + json.dumps(st).encode())
                await ws.close(code=1000)
            except (WebSocketDisconnect, RuntimeError):
                pass

        try:
            if not command:
                raise HTTPError(400, "BadRequest", "you must specify at least 1 command")
            pod, recs = await asyncio.to_thread(self._find, p["ns"], p["pod"], p["container"])
            if not recs or recs[-1]["state"] != "running":
                raise HTTPError(400, "BadRequest", f'container {p["container"]} is not running in pod {p["pod"]}')
            info, fds = await asyncio.to_thread(self.runtime.exec, recs[-1]["id"], command, tty, want_stdin)
        except HTTPError as e:
            await finish(status_body(e.code, e.reason, e.message))
            return
        except RuntimeCallError as e:
            await finish(status_body(500, "InternalError", f"exec failed: {e}"))
            return

        if tty:
            master = fds[0]
            stdin_fd, outs = master, {master: 1}
        else:
            stdin_fd, outs = fds[0], {fds[1]: 1, fds[2]: 2}
            if not want_stdin:
                os.close(stdin_fd)
                stdin_fd = None
        queue: asyncio.Queue = asyncio.Queue()
        open_outs = set(outs)

        def readable(fd: int) -> None:
            data = read_ready(fd)
            if data is None:
                return
            if data:
                queue.put_nowait((outs[fd], data))
                return
            loop.remove_reader(fd)
            os.close(fd)
            open_outs.discard(fd)
            if not open_outs:
                queue.put_nowait(None)

        for fd in outs:
            os.set_blocking(fd, False)
            loop.add_reader(fd, readable, fd)

        async def from_client() -> None:
            nonlocal stdin_fd
            try:
                while True:
                    msg = await ws.receive()
                    if msg["type"] == "websocket.disconnect":
                        return
                    data = msg.get("bytes")
                    if data is None and msg.get("text") is not None:
                        data = msg["text"].encode()
                    if not data:
                        continue
                    ch, payload = data[0], data[1:]
                    if ch == 0 and stdin_fd is not None and payload:
                        await asyncio.to_thread(_write_all, stdin_fd, payload)
                    elif ch == 4 and tty:
                        try:
                            size = json.loads(payload)
                            set_winsize(master, int(size.get("Height", 24)), int(size.get("Width", 80)))
                        except (ValueError, OSError, TypeError):
                            pass
                    elif ch == 255 and payload[:1] == b"\x00" and stdin_fd is not None and not tty:
                        os.close(stdin_fd)
                        stdin_fd = None
            except (WebSocketDisconnect, RuntimeError):
                return

        reader = asyncio.create_task(from_client())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                ch, data = item
                await ws.send_bytes(bytes([ch]) + data)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            for fd in list(open_outs):
                loop.remove_reader(fd)
                os.close(fd)
        try:
            res = await asyncio.to_thread(self.runtime.call, "exec_wait", exec_id=info["exec_id"], timeout=30)
        except RuntimeCallError as e:
            res = {"exit_code": None}
            log.warning("exec wait: %s", e)
        reader.cancel()
        if stdin_fd is not None and not tty:
            os.close(stdin_fd)
        code = res.get("exit_code")
        if code == 0:
            await finish({"metadata": {}, "status": "Success"})
        else:
            await finish({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                          "message": f"command terminated with non-zero exit code: error executing command "
                                     f"{command}: exit status {code}",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}})

    # ------------------------------------------------------------ port-forward
    def _pod_netns(self, pod: dict) -> str | None:
        """The network namespace of the pod's ready sandbox, if there is one."""
        uid = pod["metadata"]["uid"]
        for sb in self.runtime.call("list_sandboxes")["items"]:
            if sb["pod"].get("uid") == uid and sb.get("state") == "ready" and sb.get("netns_path"):
                return sb["netns_path"] if os.path.exists(sb["netns_path"]) else None
        return None

    async def _connect_pod(self, pod: dict, netns: str | None, port: int):
        """A stream to the pod's port: 127.0.0.1 inside its netns, else its IP (see the module docstring)."""
        loop = asyncio.get_running_loop()
        if netns is not None:
            refused: OSError | None = None
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                try:
                    sock = await asyncio.to_thread(socket_in_netns, netns, family, socket.SOCK_STREAM)
                except OSError as e:
                    log.debug("port-forward: no socket in %s (%s)", netns, e)
                    break
                try:
                    sock.setblocking(False)
                    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), PORTFORWARD_CONNECT_TIMEOUT)
                    return await asyncio.open_connection(sock=sock)
                except (OSError, TimeoutError) as e:
                    sock.close()
                    if refused is None:
                        refused = e if isinstance(e, OSError) else OSError(f"connect to {host}:{port} timed out")
            if refused is not None:  # the namespace was entered: its answer stands
                raise refused
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise OSError("the pod has no IP address yet")
        return await asyncio.wait_for(asyncio.open_connection(ip, port), PORTFORWARD_CONNECT_TIMEOUT)

    async def port_forward_ws(self, ws: WebSocket) -> None:
        if not self._authorized(ws.headers):
            await ws.close(code=1008)
            return
        p = ws.path_params
        offered = [x.strip() for x in (ws.headers.get("sec-websocket-protocol") or "").split(",") if x.strip()]
        proto = next((x for x in PORTFORWARD_PROTOCOLS if x in offered), None)
        try:
            if offered and proto is None:
                raise HTTPError(400, "BadRequest", f"port-forward needs the subprotocol v4.channel.k8s.io; "
                                                   f"offered: {', '.join(offered)}")
            ports = _forward_ports(ws.query_params)
            pod = self.pods.get_by_key(f"{p['ns']}/{p['pod']}")
            if pod is None:
                raise HTTPError(404, "NotFound", f'pods "{p["pod"]}" not found')
            try:
                netns = await asyncio.to_thread(self._pod_netns, pod)
            except RuntimeCallError as e:
                log.debug("port-forward: runtime: %s", e)
                netns = None
        except HTTPError as e:
            await ws.send_denial_response(e.response())
            return
        await ws.accept(subprotocol=proto)
        lock = asyncio.Lock()

        async def send(ch: int, data: bytes) -> None:
            async with lock:
                await ws.send_bytes(bytes([ch]) + data)

        streams: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        try:
            for i, port in enumerate(ports):
                await send(2 * i, struct.pack("<H", port))
                await send(2 * i + 1, struct.pack("<H", port))
            for i, port in enumerate(ports):
                try:
                    streams[i] = await self._connect_pod(pod, netns, port)
                except (OSError, TimeoutError) as e:
                    why = (e.strerror or str(e)).lower() if isinstance(e, OSError) else "timed out"
                    await send(2 * i + 1, f"error forwarding port {port} to pod {p['pod']}, uid "
                                          f"{pod['metadata'].get('uid', '')}: failed to connect to port {port} "
                                          f"in the pod: {why}".encode())
        except (WebSocketDisconnect, RuntimeError):
            for _, w in streams.values():
                w.close()
            return

        async def pod_to_client(i: int, reader: asyncio.StreamReader) -> None:
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    await send(2 * i, data)
            except (ConnectionError, OSError):
                return

        async def client_to_pods() -> None:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("bytes")
                if data is None and msg.get("text") is not None:
                    data = msg["text"].encode()
                if not data or data[0] % 2:
                    continue
                st = streams.get(data[0] // 2)
                if st is None or st[1].is_closing():
                    continue
                try:
                    if len(data) == 1:
                        if st[1].can_write_eof():
                            st[1].write_eof()  # the client is done sending
                    else:
                        st[1].write(data[1:])
                        await st[1].drain()
                except (ConnectionError, OSError):
                    pass

        pumps = [asyncio.create_task(pod_to_client(i, r)) for i, (r, _) in streams.items()]
        reader = asyncio.create_task(client_to_pods())
        try:
            if pumps:
                every_pod_done = asyncio.gather(*pumps, return_exceptions=True)
                await asyncio.wait({reader, every_pod_done}, return_when=asyncio.FIRST_COMPLETED)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            reader.cancel()
            for t in pumps:
                t.cancel()
            await asyncio.gather(reader, *pumps, return_exceptions=True)
            for _, w in streams.values():
                w.close()
        try:
            await ws.close(code=1000)
        except (WebSocketDisconnect, RuntimeError):
            pass

    # --------------------------------------------------------------- serving
    def start(self) -> None:
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                ws="websockets-sansio")
        self._server = uvicorn.Server(config)
        t = threading.Thread(target=self._server.run, name="kubelet-server", daemon=True)
        t.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except OSError:
        pass


def _forward_ports(q) -> list[int]:
    raw = q.getlist("ports") + q.getlist("port")
    if not raw:
        raise HTTPError(400, "BadRequest", 'query parameter "ports" is required')
    ports = []
    for value in raw:
        for part in value.split(","):
            try:
                n = int(part)
            except ValueError:
                n = 0
            if not 0 < n < 65536:
                raise HTTPError(400, "BadRequest", f'invalid port "{part}": must be between 1 and 65535')
            ports.append(n)
    return ports


def _nonneg(q, name: str) -> int | None:
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"{name}: invalid value {v!r}: must be a non-negative integer") from None
    if n < 0:
        raise ValueError(f"{name}: invalid value {v!r}: must be a non-negative integer")
    return n


async def _threaded(gen, stop: threading.Event):
    """Iterate a blocking generator in a thread, one item at a time (follow can wait a long time)."""
    it = iter(gen)
    sentinel = object()
    try:
        while True:
            item = await asyncio.to_thread(next, it, sentinel)
            if item is sentinel:
                return
            yield item
    finally:
        stop.set()
