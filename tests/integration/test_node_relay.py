"""The API server relays pods/log and pods/exec to the pod's kubelet.

A real API server process relays to a stand-in kubelet that this module runs
in a thread (Starlette on uvicorn, 127.0.0.1, a free port). The stand-in
implements the kubelet's side of the contract in docs/design.md ("kubelet
endpoint"): `/containerLogs/...` (plain, tailLines, follow streaming a few
chunks) and the `/exec/...` WebSocket (v5/v4.channel.k8s.io, the final Status
on channel 3, then close 1000), and it accepts only the API server's bearer
token. It is a fake kubelet for the relay's own test; the real kubelet is
tested end to end in tests/e2e.

Checked: what the relay forwards and how it streams, the errors it answers
(unknown pod, container choice, kubelet down, bad parameters, the kubelet's
own Status bodies, a missing or wrong kubelet token), WebSocket exec frames in
both directions, and stock kubectl 1.33 `logs`, `logs -f`, `logs --tail` and
`exec` against it. SPDY exec and port-forward: test_spdy_relay.py, which
reuses this stand-in kubelet.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import ApiServer

from .kubectlutil import Kubectl

API_TOKEN = "relay-test-admin-token"
KUBELET_TOKEN = "relay-test-kubelet-token"
PODS = "/api/v1/namespaces/default/pods"

# What the stand-in kubelet serves: (namespace, pod) -> container -> log lines.
LOGS = {
    ("default", "web"): {"app": ["line 1", "line 2", "line 3"]},
    ("default", "multi"): {"a": ["from a"], "b": ["from b"], "init1": ["init done"]},
    ("default", "waiting"): {},
}
WAITING = {("default", "waiting", "app")}
TICKS = 3
TICK_GAP = 0.4


def status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code}, status_code=code)


class StandInKubelet:
    """A kubelet's HTTP API, enough for the relay: logs and exec, bearer token required."""

    def __init__(self, token: str):
        self.token = token
        self.requests: list[dict] = []  # what arrived: path, query, authorization
        self.follow_closed = threading.Event()  # a never-ending follow saw its client go away
        self.exec_client_gone = threading.Event()  # a `cat` saw its client go away
        self.app = Starlette(routes=[
            Route("/containerLogs/{ns}/{pod}/{container}", self.logs),
            WebSocketRoute("/exec/{ns}/{pod}/{container}", self.exec),
        ])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = None
        self.thread = None

    def start(self) -> "StandInKubelet":
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", loop="asyncio", lifespan="off",
                                ws="websockets-sansio", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the stand-in kubelet did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def _record(self, conn) -> bool:
        auth = conn.headers.get("authorization")
        self.requests.append({"path": conn.url.path, "query": conn.query_params.multi_items(), "auth": auth})
        return auth == f"Bearer {self.token}"

    async def logs(self, request: Request) -> Response:
        if not self._record(request):
            return status(401, "Unauthorized", "Unauthorized")
        p = request.path_params
        key = (p["ns"], p["pod"])
        if (key[0], key[1], p["container"]) in WAITING:
            return status(400, "BadRequest",
                          f'container "{p["container"]}" in pod "{p["pod"]}" is waiting to start: ContainerCreating')
        if p["container"] == "forever" and key == ("default", "web"):
            return StreamingResponse(self._forever(), media_type="text/plain")
        lines = (LOGS.get(key) or {}).get(p["container"])
        if lines is None:
            return status(404, "NotFound", f'container "{p["container"]}" in pod "{p["pod"]}" not found')
        q = request.query_params
        if q.get("tailLines") is not None:
            lines = lines[-int(q["tailLines"]):] if int(q["tailLines"]) else []
        if q.get("timestamps") == "true":
            lines = [f"2024-05-01T10:00:00.000000000Z {x}" for x in lines]
        body = "".join(x + "\n" for x in lines).encode()
        if q.get("follow") != "true":
            return Response(body, media_type="text/plain")

        async def follow():
            yield body
            for i in range(TICKS):
                await asyncio.sleep(TICK_GAP)
                yield f"tick {i}\n".encode()

        return StreamingResponse(follow(), media_type="text/plain")

    async def _forever(self):
        try:
            i = 0
            while True:
                yield f"forever {i}\n".encode()
                i += 1
                await asyncio.sleep(0.2)
        finally:
            self.follow_closed.set()

    async def exec(self, ws: WebSocket) -> None:
        if not self._record(ws):
            await ws.send_denial_response(status(401, "Unauthorized", "Unauthorized"))
            return
        offered = [p.strip() for p in (ws.headers.get("sec-websocket-protocol") or "").split(",")]
        proto = next((p for p in ("v5.channel.k8s.io", "v4.channel.k8s.io") if p in offered), None)
        if proto is None:
            await ws.send_denial_response(status(400, "BadRequest", "no supported channel protocol"))
            return
        await ws.accept(subprotocol=proto)
        q = ws.query_params
        cmd = q.getlist("command")
        code = 0
        if cmd[0] == "echo":
            await ws.send_bytes(b"\x01" + (" ".join(cmd[1:]) + "\n").encode())
        elif cmd[0] == "fail":  # fail CODE MESSAGE...: the message on stderr, exit CODE
            await ws.send_bytes(b"\x02" + (" ".join(cmd[2:]) + "\n").encode())
            code = int(cmd[1])
        elif cmd[0] == "cat":  # stdin to stdout until stdin closes ([255, 0]) or the client does
            while True:
                try:
                    data = await ws.receive_bytes()
                except WebSocketDisconnect:
                    self.exec_client_gone.set()
                    return
                if data[:1] == b"\x00":
                    await ws.send_bytes(b"\x01" + data[1:])
                elif data == b"\xff\x00":
                    break
        elif cmd[0] == "params":  # what the kubelet was asked, as JSON on stdout
            seen = {"container": ws.path_params["container"], "protocol": proto,
                    **{k: q.get(k) for k in ("stdin", "stdout", "stderr", "tty")}}
            await ws.send_bytes(b"\x01" + json.dumps(seen).encode())
        else:
            await ws.send_bytes(b"\x02" + f"{cmd[0]}: not found\n".encode())
            code = 127
        if code == 0:
            st = {"metadata": {}, "status": "Success"}
        else:
            st = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                  "message": f"command terminated with non-zero exit code: error executing command {cmd}, exit code {code}",
                  "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        await ws.send_bytes(b"\x03" + json.dumps(st).encode())
        await ws.close(code=1000)


class RudeKubelet:
    """Accepts one exec WebSocket, sends one stdout frame, then drops the TCP connection (no close frame)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import base64
        import hashlib

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                            if line.lower().startswith(b"sec-websocket-key:")), b"")
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
                payload = b"\x01partial\n"
                conn.sendall(bytes([0x82, len(payload)]) + payload)
                time.sleep(0.2)

    def close(self) -> None:
        self.sock.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(name: str, port: int, addresses=None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": addresses if addresses is not None else
                       [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}


def pod(name: str, node_name: str | None, containers=("app",), init=()) -> dict:
    spec = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    if init:
        spec["initContainers"] = [{"name": c, "image": "busybox"} for c in init]
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


@pytest.fixture(scope="module")
def kubelet():
    k = StandInKubelet(KUBELET_TOKEN).start()
    yield k
    k.stop()


def start_server(tmp, kubelet_token_file: str | None, client_auth: bool) -> ApiServer:
    auth = None
    if client_auth:
        auth = os.path.join(tmp, "tokens.csv")
        with open(auth, "w") as f:
            f.write(f"{API_TOKEN},admin,1,system:masters\n")
    extra = ["--kubelet-token-file", kubelet_token_file] if kubelet_token_file else []
    return ApiServer(tmp, extra_args=extra, token_file=auth).start()


def seed(http: httpx.Client, kubelet_port: int) -> None:
    for n in (node("node-1", kubelet_port), node("node-down", closed_port()),
              node("node-noaddr", kubelet_port, addresses=[])):
        r = http.post("/api/v1/nodes", json=n)
        assert r.status_code == 201, r.text
    assert http.get("/api/v1/nodes/node-1").json()["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet_port
    for p in (pod("web", "node-1", containers=("app", "side", "forever")), pod("multi", "node-1", ("a", "b"), init=("init1",)),
              pod("waiting", "node-1"), pod("lonely", "node-down"), pod("noaddr", "node-noaddr"),
              pod("nohost", None), pod("orphan", "missing-node")):
        r = http.post(PODS, json=p)
        assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def server(kubelet, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("relay"))
    tok = os.path.join(tmp, "kubelet-token")
    with open(tok, "w") as f:
        f.write(KUBELET_TOKEN + "\n# the first line is the token\n")
    # No client authentication here: kubectl sends no bearer token to a plain-HTTP server.
    # test_without_kubelet_token_... runs a server that requires one.
    s = start_server(tmp, tok, client_auth=False)
    try:
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as c:
            seed(c, kubelet.port)
        yield s
    finally:
        s.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as c:
        yield c


def ws_url(server: ApiServer, pod_name: str, sub: str, query: str) -> str:
    return server.url.replace("http://", "ws://") + f"{PODS}/{pod_name}/{sub}?{query}"


def run_exec(server: ApiServer, pod_name: str, query: str, send: list[bytes] = (),
             protocols=("v5.channel.k8s.io", "v4.channel.k8s.io")) -> tuple[dict[int, bytes], int | None, str | None]:
    """One exec over WebSocket: returns (bytes per channel, close code, negotiated subprotocol)."""
    out: dict[int, bytes] = {}
    with connect(ws_url(server, pod_name, "exec", query), subprotocols=list(protocols), open_timeout=10,
                 additional_headers={"Authorization": f"Bearer {API_TOKEN}"}, proxy=None) as ws:
        for frame in send:
            ws.send(frame)
        while True:
            try:
                msg = ws.recv(timeout=10)
            except Exception:  # noqa: BLE001 - ConnectionClosed ends the stream
                break
            out[msg[0]] = out.get(msg[0], b"") + msg[1:]
        return out, ws.close_code, ws.subprotocol


def error_status(out: dict[int, bytes]) -> dict:
    assert 3 in out, out
    return json.loads(out[3])


# ------------------------------------------------------------------ pods/log
def test_log_is_relayed_with_the_token_and_options(http, kubelet):
    r = http.get(f"{PODS}/web/log", params={"container": "app"})
    assert r.status_code == 200 and r.text == "line 1\nline 2\nline 3\n"
    assert r.headers["content-type"].startswith("text/plain")
    last = kubelet.requests[-1]
    assert last["path"] == "/containerLogs/default/web/app" and last["auth"] == f"Bearer {KUBELET_TOKEN}"
    r = http.get(f"{PODS}/web/log", params={"container": "app", "tailLines": "2", "timestamps": "True",
                                             "previous": "false", "limitBytes": "100", "timeout": "32s"})
    assert r.status_code == 200
    assert r.text == "2024-05-01T10:00:00.000000000Z line 2\n2024-05-01T10:00:00.000000000Z line 3\n"
    # booleans normalised, false ones and parameters the kubelet doesn't take dropped
    assert sorted(kubelet.requests[-1]["query"]) == [("limitBytes", "100"), ("tailLines", "2"), ("timestamps", "true")]
    r = http.get(f"{PODS}/multi/log", params={"container": "b", "tailLines": "0"})
    assert r.status_code == 200 and r.text == ""


def test_log_defaults_the_only_container(http):
    http.post(PODS, json=pod("single", "node-1", containers=("app",)))
    LOGS[("default", "single")] = {"app": ["only one"]}
    r = http.get(f"{PODS}/single/log")
    assert r.status_code == 200 and r.text == "only one\n"


def test_log_follow_streams_incrementally(http):
    arrivals = []
    with http.stream("GET", f"{PODS}/web/log", params={"container": "app", "follow": "true"}) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    text = b"".join(c for _, c in arrivals).decode()
    assert text == "line 1\nline 2\nline 3\n" + "".join(f"tick {i}\n" for i in range(TICKS))
    # The first bytes came long before the kubelet's last tick: nothing was buffered to the end.
    first_tick = next(t for t, c in arrivals if b"tick 0" in c)
    assert arrivals[-1][0] - first_tick >= (TICKS - 1) * TICK_GAP * 0.7
    assert arrivals[0][0] < first_tick


def test_log_follow_closes_the_kubelet_stream_when_the_client_leaves(server, kubelet):
    kubelet.follow_closed.clear()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10) as c:
        with c.stream("GET", f"{PODS}/web/log", params={"container": "forever", "follow": "true"}) as r:
            assert r.status_code == 200
            first = next(r.iter_raw())
            assert first.startswith(b"forever 0")
    assert kubelet.follow_closed.wait(10), "the relay kept following after its client went away"


@pytest.mark.parametrize("params,code,message", [
    ({"container": "zzz"}, 400, "container zzz is not valid for pod web"),
    ({}, 400, "a container name must be specified for pod web, choose one of: [app side forever]"),
    ({"tailLines": "x", "container": "app"}, 400, 'invalid value for tailLines: "x" must be a non-negative integer'),
    ({"tailLines": "-1", "container": "app"}, 400, 'invalid value for tailLines: "-1" must be a non-negative integer'),
    ({"limitBytes": "1.5", "container": "app"}, 400, "limitBytes"),
    ({"sinceSeconds": "-3", "container": "app"}, 400, "sinceSeconds"),
])
def test_log_parameter_errors(http, params, code, message):
    r = http.get(f"{PODS}/web/log", params=params)
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status" and body["reason"] == "BadRequest" and message in body["message"]


def test_log_errors(http, server):
    r = http.get(f"{PODS}/missing/log")
    assert r.status_code == 404 and r.json()["message"] == 'pods "missing" not found'
    r = http.get(f"{PODS}/multi/log")
    assert r.status_code == 400
    assert r.json()["message"] == "a container name must be specified for pod multi, choose one of: [init1 a b]"
    r = http.get(f"{PODS}/multi/log", params={"container": "init1"})
    assert r.status_code == 200 and r.text == "init done\n"
    r = http.get(f"{PODS}/nohost/log")
    assert r.status_code == 400 and r.json()["message"] == "pod nohost does not have a host assigned"
    r = http.get(f"{PODS}/orphan/log")
    assert r.status_code == 404 and r.json()["message"] == 'nodes "missing-node" not found'
    r = http.get(f"{PODS}/noaddr/log")
    assert r.status_code == 503 and "node-noaddr" in r.json()["message"] and "InternalIP" in r.json()["message"]
    # the kubelet's own Status bodies come through with their codes
    r = http.get(f"{PODS}/waiting/log")
    assert r.status_code == 400
    assert r.json()["message"] == 'container "app" in pod "waiting" is waiting to start: ContainerCreating'
    r = http.get(f"{PODS}/web/log", params={"container": "side"})
    assert r.status_code == 404 and r.json()["message"] == 'container "side" in pod "web" not found'
    assert http.put(f"{PODS}/web/log", json={}).status_code == 405


def test_log_kubelet_down_is_503_naming_node_and_address(http):
    started = time.monotonic()
    r = http.get(f"{PODS}/lonely/log")
    assert time.monotonic() - started < 8
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["reason"] == "ServiceUnavailable"
    assert '"node-down"' in body["message"] and "127.0.0.1:" in body["message"]


# ------------------------------------------------------------------ pods/exec
def test_exec_stdout_and_success(server):
    out, code, proto = run_exec(server, "web", "command=echo&command=hello&command=world&stdout=true&stderr=true&container=app")
    assert proto == "v5.channel.k8s.io" and code == 1000
    assert out[1] == b"hello world\n"
    assert error_status(out)["status"] == "Success"


def test_exec_stderr_and_nonzero_exit(server):
    out, code, _ = run_exec(server, "web", "command=fail&command=3&command=oops&stdout=true&stderr=true&container=app")
    assert out[2] == b"oops\n" and 1 not in out and code == 1000
    st = error_status(out)
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_exec_stdin_is_relayed(server):
    frames = [b"\x00abc", b"\x00def\n", b"\xff\x00"]
    out, code, _ = run_exec(server, "web", "command=cat&stdin=true&stdout=true&stderr=true&container=app", frames)
    assert out[1] == b"abcdef\n" and error_status(out)["status"] == "Success" and code == 1000


def test_exec_params_subprotocol_and_container_choice(server, kubelet):
    out, _, proto = run_exec(server, "multi", "command=params&stdout=true&tty=True&container=b",
                             protocols=["v4.channel.k8s.io"])
    assert proto == "v4.channel.k8s.io"
    seen = json.loads(out[1])
    assert seen == {"container": "b", "protocol": "v4.channel.k8s.io", "stdin": None, "stdout": "true",
                    "stderr": None, "tty": "true"}
    assert kubelet.requests[-1]["auth"] == f"Bearer {KUBELET_TOKEN}"
    out, _, _ = run_exec(server, "multi", "command=params&stdout=true")
    st = error_status(out)
    assert st["code"] == 400
    assert st["message"] == ("a container name must be specified for pod multi, choose one of: [a b] "
                             "or one of the init containers: [init1]")
    out, _, _ = run_exec(server, "multi", "command=params&stdout=true&container=nope")
    assert error_status(out)["message"] == "container nope is not valid for pod multi"
    out, _, _ = run_exec(server, "multi", "stdout=true&container=a")
    assert error_status(out)["message"] == "you must specify at least one command for the container"


def test_exec_refusals_arrive_on_channel_3(server):
    out, code, proto = run_exec(server, "lonely", "command=echo&command=hi&stdout=true")
    st = error_status(out)
    assert proto == "v5.channel.k8s.io" and code == 1000
    assert st["code"] == 503 and '"node-down"' in st["message"] and "127.0.0.1:" in st["message"]
    out, code, _ = run_exec(server, "ghost", "command=echo&stdout=true")
    assert error_status(out)["code"] == 404 and code == 1000
    out, _, _ = run_exec(server, "waiting", "command=echo&stdout=true", protocols=["channel.k8s.io"])
    st = error_status(out)  # the kubelet refuses this protocol before the upgrade: its Status, passed on
    assert st["code"] == 400 and st["message"] == "no supported channel protocol"
    out, _, proto = run_exec(server, "web", "command=echo&stdout=true", protocols=["base64.channel.k8s.io"])
    assert proto == "base64.channel.k8s.io"
    st = error_status(out)
    assert st["code"] == 400 and "v5.channel.k8s.io" in st["message"] and "base64.channel.k8s.io" in st["message"]


def test_exec_client_leaving_closes_the_kubelet_side(server, kubelet):
    kubelet.exec_client_gone.clear()
    with connect(ws_url(server, "web", "exec", "command=cat&stdin=true&stdout=true&container=app"),
                 subprotocols=["v5.channel.k8s.io"], open_timeout=10, proxy=None) as ws:
        ws.send(b"\x00ping")
        assert ws.recv(timeout=10) == b"\x01ping"
    assert kubelet.exec_client_gone.wait(10), "the relay kept the kubelet's exec open after its client left"


def test_exec_kubelet_dropping_the_connection_is_reported_on_channel_3(server, http):
    rude = RudeKubelet()
    try:
        assert http.post("/api/v1/nodes", json=node("node-rude", rude.port)).status_code == 201
        assert http.post(PODS, json=pod("rude", "node-rude")).status_code == 201
        out, code, _ = run_exec(server, "rude", "command=echo&stdout=true")
    finally:
        rude.close()
    assert out[1] == b"partial\n" and code == 1000
    st = error_status(out)
    assert st["code"] == 503 and "node-rude" in st["message"] and "lost" in st["message"]


def test_attach_websocket_says_not_relayed_yet(server):
    with connect(ws_url(server, "web", "attach", "stdout=true"), subprotocols=["v5.channel.k8s.io"], open_timeout=10,
                 additional_headers={"Authorization": f"Bearer {API_TOKEN}"}, proxy=None) as ws:
        msg = ws.recv(timeout=10)
    assert msg[0] == 3
    st = json.loads(msg[1:])
    assert st["code"] == 503 and "pods/attach is not relayed" in st["message"] and "later" in st["message"]


def test_portforward_websocket_is_refused_before_the_upgrade(server):
    # (port-forward itself, over WebSocket channels and over SPDY, is tests/integration/test_spdy_relay.py)
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(server, "web", "portforward", "ports=80"), subprotocols=["v4.channel.k8s.io"],
                open_timeout=10, proxy=None)
    assert e.value.response.status_code == 400
    assert b"unable to forward port because pod is not running" in e.value.response.body
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url(server, "web", "portforward", ""), subprotocols=["v4.channel.k8s.io"], open_timeout=10,
                proxy=None)
    assert e.value.response.status_code == 400 and b'query parameter \\"ports\\" is required' in e.value.response.body


def test_exec_without_upgrade_is_a_clear_400(http):
    r = http.get(f"{PODS}/web/exec", params={"command": "ls", "stdout": "true"})
    assert r.status_code == 400 and "Upgrade request required" in r.json()["message"]
    # A SPDY upgrade is checked like any request before the socket is taken (the relay: test_spdy_relay.py)
    r = http.post(f"{PODS}/web/exec", params={"command": "ls", "stdout": "true"},
                  headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                           "X-Stream-Protocol-Version": "v4.channel.k8s.io"})
    assert r.status_code == 400 and "a container name must be specified for pod web" in r.json()["message"]
    assert http.get(f"{PODS}/ghost/exec", params={"command": "ls"}).status_code == 404
    r = http.post(f"{PODS}/web/portforward", params={"ports": "80"})
    assert r.status_code == 400 and "Upgrade request required" in r.json()["message"]


def test_without_kubelet_token_the_kubelets_refusal_is_a_clear_status(kubelet, tmp_path):
    s = start_server(str(tmp_path), None, client_auth=True)  # no --kubelet-token-file
    try:
        # the client's own token is checked first, on WebSockets too, and is not what the kubelet gets
        with pytest.raises(InvalidStatus):
            with connect(ws_url(s, "web", "exec", "command=echo&stdout=true"),
                         subprotocols=["v5.channel.k8s.io"], open_timeout=10, proxy=None):
                pass
        assert httpx.get(s.url + f"{PODS}/web/log").status_code == 401
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as c:
            seed(c, kubelet.port)
            r = c.get(f"{PODS}/web/log", params={"container": "app"})
        assert kubelet.requests[-1]["auth"] is None
        assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
        assert '"node-1"' in r.json()["message"] and "--kubelet-token-file" in r.json()["message"]
        out, code, _ = run_exec(s, "web", "command=echo&stdout=true&container=app")
        st = error_status(out)
        assert code == 1000 and st["code"] == 403 and "--kubelet-token-file" in st["message"]
    finally:
        s.stop()


# ------------------------------------------------------------------ stock kubectl
@pytest.fixture
def kubectl(server, tmp_path):
    return Kubectl(33, server.url, str(tmp_path / "kcache"))


def test_kubectl_logs(kubectl):
    assert kubectl.run("logs", "web", "-c", "app").stdout == "line 1\nline 2\nline 3\n"
    assert kubectl.run("logs", "web", "-c", "app", "--tail=1").stdout == "line 3\n"
    started = time.monotonic()
    p = kubectl.run("logs", "-f", "web", "-c", "app")
    assert p.stdout == "line 1\nline 2\nline 3\n" + "".join(f"tick {i}\n" for i in range(TICKS))
    assert time.monotonic() - started >= TICKS * TICK_GAP * 0.7
    p = kubectl.run("logs", "waiting", check=False)
    assert p.returncode != 0
    assert 'container "app" in pod "waiting" is waiting to start: ContainerCreating' in p.stderr


def test_kubectl_exec(kubectl):
    p = kubectl.run("exec", "web", "-c", "app", "--", "echo", "hi")
    assert p.stdout == "hi\n"
    p = kubectl.run("exec", "-i", "web", "-c", "app", "--", "cat", input="from stdin\n")
    assert p.stdout == "from stdin\n"
    p = kubectl.run("exec", "web", "-c", "app", "--", "fail", "3", "it broke", check=False)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "it broke" in p.stderr and "command terminated with exit code 3" in p.stderr
    p = kubectl.run("exec", "lonely", "--", "echo", "hi", check=False)
    assert p.returncode != 0 and "node-down" in p.stderr
