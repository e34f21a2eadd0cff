"""``pkctl logs`` and ``pkctl exec`` against a tiny in-test API server.

No kubelet exists yet, so these commands cannot run end to end; this fake
speaks the wire contract of docs/reference/KUBECTL_COMPAT.md sections 9-10 instead: a
``pods/NAME/log`` endpoint (plain and streamed) and a ``pods/NAME/exec``
WebSocket with subprotocol ``v5.channel.k8s.io`` (channel byte 0 stdin,
1 stdout, 2 stderr, 3 the final Status, ``[255, 0]`` closing stdin). It
records what pkctl sent, so the tests check the requests as well as the
output, exit codes and error messages.
"""
from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from client.kubeconfig import write_kubeconfig
from pkctl.main import main


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code}, status_code=code)


def _pod(name: str, phase: str = "Running") -> dict:
    containers = [{"name": "main", "image": "busybox"}]
    annotations = {}
    if name == "two":
        containers.append({"name": "side", "image": "busybox"})
    if name == "annotated":
        containers.append({"name": "side", "image": "busybox"})
        annotations["kubectl.kubernetes.io/default-container"] = "side"
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"containers": containers}, "status": {"phase": "Succeeded" if name == "done" else phase}}


class FakeApiServer:
    def __init__(self):
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []
        self.ws_protocols: list[list[str]] = []
        self.stdin_seen = b""
        self.auth: list[str | None] = []
        routes = [
            Route("/api", self.api), Route("/apis", self.apis), Route("/api/v1", self.api_v1),
            Route("/api/v1/namespaces/{ns}/pods/{name}", self.get_pod),
            Route("/api/v1/namespaces/{ns}/pods/{name}/log", self.log),
            WebSocketRoute("/api/v1/namespaces/{ns}/pods/{name}/exec", self.exec),
        ]
        self.app = Starlette(routes=routes)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error",
                                                    ws="websockets-sansio", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeApiServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake API server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    # ---------------------------------------------------------------- discovery
    async def api(self, request):
        return JSONResponse({"kind": "APIVersions", "versions": ["v1"]})

    async def apis(self, request):
        return JSONResponse({"kind": "APIGroupList", "groups": []})

    async def api_v1(self, request):
        return JSONResponse({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
             "verbs": ["get", "list"], "shortNames": ["po"]}]})

    # ---------------------------------------------------------------- pods
    async def get_pod(self, request):
        name = request.path_params["name"]
        if name == "missing":
            return _status(404, "NotFound", f'pods "{name}" not found')
        return JSONResponse(_pod(name))

    async def log(self, request):
        name = request.path_params["name"]
        self.requests.append(("log", list(request.query_params.multi_items())))
        self.auth.append(request.headers.get("authorization"))
        if name == "nokubelet":
            return _status(503, "ServiceUnavailable", "pods/log needs a node agent: no kubelet serves this pod yet")
        if request.query_params.get("follow") == "true":
            async def lines():
                for i in range(3):
                    yield f"line {i}\n".encode()
                    await asyncio.sleep(0.05)
            return StreamingResponse(lines(), media_type="text/plain")
        return Response(b"hello from " + request.query_params.get("container", "?").encode() + b"\n",
                        media_type="text/plain")

    async def exec(self, ws: WebSocket):
        name = ws.path_params["name"]
        params = list(ws.query_params.multi_items())
        self.requests.append(("exec", params))
        self.ws_protocols.append(list(ws.scope.get("subprotocols") or []))
        self.auth.append(ws.headers.get("authorization"))
        if name == "nokubelet":
            await ws.send_denial_response(
                _status(503, "ServiceUnavailable", "pods/exec needs a node agent: no kubelet serves this pod yet"))
            return
        await ws.accept(subprotocol="v5.channel.k8s.io")
        command = [v for k, v in params if k == "command"]
        status: dict = {"metadata": {}, "status": "Success"}
        if command[0] == "echo":
            await ws.send_bytes(b"\x01" + " ".join(command[1:]).encode() + b"\n")
        elif command[0] == "fail":
            await ws.send_bytes(b"\x01partial output\n")
            await ws.send_bytes(b"\x02something went wrong\n")
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": "command terminated with non-zero exit code: exit status 3",
                      "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
        elif command[0] == "cat":
            try:
                while True:
                    msg = await ws.receive_bytes()
                    if msg == b"\xff\x00":
                        break
                    if msg[:1] == b"\x00":
                        self.stdin_seen += msg[1:]
                        await ws.send_bytes(b"\x01" + msg[1:])
            except WebSocketDisconnect:
                return
        elif command[0] == "broken":
            status = {"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
                      "message": 'container "nope" not found in pod "broken"'}
        await ws.send_bytes(b"\x03" + json.dumps(status).encode())
        await ws.close(1000)


@pytest.fixture(scope="module")
def fake():
    server = FakeApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(fake, tmp_path):
    return write_kubeconfig(str(tmp_path / "kubeconfig"), fake.url, token="secret-token")


def pkctl(kubeconfig, *argv, stdin: str = ""):
    out, err = io.StringIO(), io.StringIO()
    rc = main(["--kubeconfig", kubeconfig, *argv], stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return rc, out.getvalue(), err.getvalue()


def last(fake, kind):
    return dict((k, v) for k, v in next(p for t, p in reversed(fake.requests) if t == kind))


def all_values(fake, kind, key):
    params = next(p for t, p in reversed(fake.requests) if t == kind)
    return [v for k, v in params if k == key]


# ------------------------------------------------------------------ logs
def test_logs_reads_the_log_subresource(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "logs", "web")
    assert (rc, out, err) == (0, "hello from main\n", "")
    assert last(fake, "log") == {"container": "main"}
    assert fake.auth[-1] == "Bearer secret-token"


def test_logs_flags_map_to_parameters(fake, kubeconfig):
    rc, out, _ = pkctl(kubeconfig, "logs", "pod/web", "-c", "main", "--tail=2", "--timestamps", "-p", "--since=1m")
    assert rc == 0
    assert last(fake, "log") == {"container": "main", "tailLines": "2", "timestamps": "true", "previous": "true",
                                 "sinceSeconds": "60"}


def test_logs_follow_streams(fake, kubeconfig):
    rc, out, _ = pkctl(kubeconfig, "logs", "-f", "web")
    assert rc == 0 and out == "line 0\nline 1\nline 2\n"
    assert last(fake, "log")["follow"] == "true"


def test_logs_defaults_the_container_like_kubectl(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "logs", "two")
    assert rc == 0 and out == "hello from main\n"
    assert err == 'Defaulted container "main" out of: main, side\n'
    rc, out, err = pkctl(kubeconfig, "logs", "annotated")
    assert out == "hello from side\n" and err == ""


def test_logs_errors(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "logs", "missing")
    assert rc == 1 and err == 'Error from server (NotFound): pods "missing" not found\n'
    rc, out, err = pkctl(kubeconfig, "logs", "nokubelet")
    assert rc == 1
    assert err == ("Error from server (ServiceUnavailable): pods/log needs a node agent: "
                   "no kubelet serves this pod yet\n")


# ------------------------------------------------------------------ exec
def test_exec_prints_stdout_and_exits_zero(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "exec", "web", "--", "echo", "hello", "world")
    assert (rc, out, err) == (0, "hello world\n", "")
    assert all_values(fake, "exec", "command") == ["echo", "hello", "world"]
    p = last(fake, "exec")
    assert p["container"] == "main" and p["stdout"] == "true" and p["stderr"] == "true"
    assert "stdin" not in p and "tty" not in p
    assert fake.ws_protocols[-1][0] == "v5.channel.k8s.io"
    assert fake.auth[-1] == "Bearer secret-token"


def test_exec_remote_exit_code(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "exec", "web", "-c", "main", "--", "fail")
    assert rc == 3
    assert out == "partial output\n"
    assert err == "something went wrong\ncommand terminated with exit code 3\n"


def test_exec_stdin_is_sent_then_closed(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "exec", "-i", "web", "--", "cat", stdin="some input\n")
    assert rc == 0, err
    assert out == "some input\n"
    assert fake.stdin_seen.endswith(b"some input\n")
    assert last(fake, "exec")["stdin"] == "true"


def test_exec_server_side_failure_status(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "exec", "broken", "--", "broken")
    assert rc == 1
    assert err == 'Error from server (InternalError): container "nope" not found in pod "broken"\n'


def test_exec_without_a_kubelet_is_a_clear_503(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "exec", "nokubelet", "--", "ls")
    assert rc == 1
    assert err == ("Error from server (ServiceUnavailable): pods/exec needs a node agent: "
                   "no kubelet serves this pod yet\n")


def test_exec_usage_errors(fake, kubeconfig):
    rc, out, err = pkctl(kubeconfig, "exec", "web")
    assert rc == 1 and err == "error: you must specify at least one command for the container\n"
    rc, out, err = pkctl(kubeconfig, "exec", "done", "--", "ls")
    assert rc == 1 and "cannot exec into a container in a completed pod; current phase is Succeeded" in err
    rc, out, err = pkctl(kubeconfig, "exec", "missing", "--", "ls")
    assert rc == 1 and err == 'Error from server (NotFound): pods "missing" not found\n'


def test_exec_connection_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_kubeconfig(str(tmp_path / "kc"), f"http://127.0.0.1:{port}", token=None)
    rc, out, err = pkctl(cfg, "exec", "web", "--", "ls")
    assert rc == 1
    assert err == (f"The connection to the server 127.0.0.1:{port} was refused - "
                   "did you specify the right host or port?\n")
