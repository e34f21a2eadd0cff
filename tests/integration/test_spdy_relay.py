"""SPDY/3.1 exec and port-forward through a real API server process, to stand-in and real kubelet code.

kubectl 1.27-1.29 exec over SPDY/3.1 only; port-forward is SPDY/3.1 up to
1.30 and SPDY tunnelled in a WebSocket (`SPDY/3.1+portforward.k8s.io`) from
1.31. Both reach the API server's raw-socket path (apiserver/rawupgrade.py)
and are relayed to the kubelet's WebSockets (apiserver/spdyrelay.py).

Two nodes back the pods here: `node-1` is test_node_relay's stand-in kubelet
(exec: echo, fail CODE MSG, cat), and `node-pf` runs the real kubelet's HTTP
server (kubelet/server.py: KubeletServer) over a fake pod store and runtime,
so port-forward goes through the real kubelet code to stand-in servers on
127.0.0.1 (the pod IP here; no sandbox, so no netns). The real node, with real
pods, is tests/e2e/test_kubectl_node.py.

Checked with stock kubectl 1.27, 1.29 (exec), 1.30 (port-forward), 1.33 (both):
stdout, stdin, exit codes, errors before the upgrade, three HTTP requests
through each port-forward; with a raw SPDY client: protocol negotiation, v2
error text, frames sent before the 101, half-close, connect errors, bad
ports; the WebSocket port-forward protocol (by hand and with the official
Python client); the real kubelet's /portForward refusals and two ports on one
WebSocket; and TLS plus bearer-token auth on the SPDY path.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from websockets.sync.client import connect

from apiserver import spdy
from kubelet.server import KubeletServer
from tests.conftest import ApiServer, free_port, need

from .kubectlutil import Kubectl
from .test_node_relay import KUBELET_TOKEN, StandInKubelet, closed_port, node, pod

API_TOKEN = "spdy-test-admin-token"
PODS = "/api/v1/namespaces/default/pods"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------ stand-in servers "in the pods"
class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class CountAfterEOF:
    """Reads until the client half-closes, then answers how many bytes it got, then closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            n = 0
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                n += len(data)
            conn.sendall(f"got {n} bytes\n".encode())

    def close(self):
        self.sock.close()


class FakePods:
    def __init__(self):
        self.pods: dict[str, dict] = {}

    def get_by_key(self, key):
        return self.pods.get(key)

    def list(self):
        return list(self.pods.values())


class NoSandboxes:
    def call(self, method, **kw):
        return {"items": []}


class Env:
    def __init__(self, server: ApiServer, web_port: int, count_port: int, stand_in: StandInKubelet,
                 kubelet_port: int):
        self.server = server
        self.kubelet_port = kubelet_port
        self.web_port = web_port
        self.count_port = count_port
        self.stand_in = stand_in


def start_kubelet_server(pods: FakePods) -> tuple[KubeletServer, int]:
    port = free_port()
    ks = KubeletServer(pods_store=pods, syncer=None, runtime=NoSandboxes(), tokens={KUBELET_TOKEN},
                       host="127.0.0.1", port=port)
    ks.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return ks, port
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the kubelet server did not start"
        time.sleep(0.05)


def seed(c: httpx.Client, exec_port: int, pf_port: int, pods: FakePods) -> None:
    for n in (node("node-1", exec_port), node("node-pf", pf_port), node("node-down", closed_port())):
        r = c.post("/api/v1/nodes", json=n)
        assert r.status_code == 201, r.text
    for p in (pod("web", "node-1"), pod("lonely", "node-down"), pod("pf", "node-pf"), pod("pending", "node-pf")):
        r = c.post(PODS, json=p)
        assert r.status_code == 201, r.text
    for name in ("pf", "lonely"):
        r = c.patch(f"{PODS}/{name}/status", content=b'{"status":{"phase":"Running","podIP":"127.0.0.1"}}',
                    headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        pods.pods[f"default/{name}"] = r.json()
    pods.pods["default/pending"] = c.get(f"{PODS}/pending").json()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("spdy"))
    web = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    counter = CountAfterEOF()
    stand_in = StandInKubelet(KUBELET_TOKEN).start()
    pods = FakePods()
    ks, ks_port = start_kubelet_server(pods)
    tok = os.path.join(tmp, "kubelet-token")
    with open(tok, "w") as f:
        f.write(KUBELET_TOKEN + "\n")
    s = ApiServer(tmp, extra_args=["--kubelet-token-file", tok, "--log-level", "debug"]).start()
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            seed(c, stand_in.port, ks_port, pods)
        yield Env(s, web.server_address[1], counter.port, stand_in, ks_port)
    finally:
        s.stop()
        ks.stop()
        stand_in.stop()
        counter.close()
        web.shutdown()


def kubectl(env_or_url, minor: int, tmp_path, token: str | None = None) -> Kubectl:
    url = env_or_url if isinstance(env_or_url, str) else env_or_url.server.url
    return Kubectl(minor, url, str(tmp_path / f"kcache{minor}"), token=token)


# ------------------------------------------------------------------ kubectl exec
@pytest.mark.parametrize("minor", [27, 29, 33])
def test_kubectl_exec(env, tmp_path, minor):
    k = kubectl(env, minor, tmp_path)
    assert k.run("exec", "web", "-c", "app", "--", "echo", "hi", "there").stdout == "hi there\n"
    data = "".join(f"line {i}\n" for i in range(2000))  # ~20 KB through stdin and back
    assert k.run("exec", "-i", "web", "-c", "app", "--", "cat", input=data).stdout == data
    p = k.run("exec", "web", "-c", "app", "--", "fail", "3", "it broke", check=False)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "it broke" in p.stderr and "command terminated with exit code 3" in p.stderr
    p = k.run("exec", "web", "-c", "nope", "--", "echo", "hi", check=False)
    assert p.returncode != 0 and "container nope is not valid for pod web" in p.stderr
    p = k.run("exec", "lonely", "--", "echo", "hi", check=False)
    assert p.returncode != 0 and '"node-down"' in p.stderr and "connection refused" in p.stderr


@pytest.mark.parametrize("minor,spdy_sessions", [(27, 1), (29, 1), (33, 0)])
def test_kubectl_exec_transport_by_version(env, tmp_path, minor, spdy_sessions):
    mark = f"probe-{time.monotonic_ns()}"
    before = env.server.read_log().count("pods/exec for default/web over SPDY/3.1\n")
    assert kubectl(env, minor, tmp_path).run("exec", "web", "-c", "app", "--", "echo", mark).stdout == mark + "\n"
    assert env.server.read_log().count("pods/exec for default/web over SPDY/3.1\n") == before + spdy_sessions
    # the kubelet was asked once, with the API server's token
    seen = [r for r in env.stand_in.requests if ("command", mark) in r["query"]]
    assert len(seen) == 1 and seen[0]["auth"] == f"Bearer {KUBELET_TOKEN}"


# ------------------------------------------------------------------ kubectl port-forward
def port_forward(k: Kubectl, target: str, remote: int, paths: list[str], *extra: str) -> tuple[list[str], str]:
    """Run `kubectl port-forward` in the background, make HTTP requests through it, kill it by PID."""
    local = free_port()
    cmd = [k.bin, f"--server={k.server}", f"--cache-dir={k.cache_dir}", *extra]
    if k.token:
        cmd.append(f"--token={k.token}")
    cmd += ["port-forward", target, f"{local}:{remote}"]
    out_path = os.path.join(k.cache_dir + "-pf.log")
    os.makedirs(k.cache_dir, exist_ok=True)
    env = dict(os.environ, KUBECONFIG="/dev/null", HOME=k.cache_dir)
    with open(out_path, "w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 20
            while "Forwarding from" not in open(out_path).read():
                if proc.poll() is not None or time.monotonic() > deadline:
                    return [], open(out_path).read()
                time.sleep(0.05)
            bodies = [httpx.get(f"http://127.0.0.1:{local}{p}", timeout=10).text for p in paths]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        return bodies, open(out_path).read()


@pytest.mark.parametrize("minor,transport", [(27, "SPDY/3.1"), (30, "SPDY/3.1"),
                                             (33, "SPDY/3.1+portforward.k8s.io")])
def test_kubectl_port_forward(env, tmp_path, minor, transport):
    k = kubectl(env, minor, tmp_path)
    before = env.server.read_log().count(f"pods/portforward for default/pf over {transport}\n")
    bodies, out = port_forward(k, "pod/pf", env.web_port, ["/a", "/b?x=1", "/c"])
    assert bodies == ["hello from /a\n", "hello from /b?x=1\n", "hello from /c\n"], out
    assert out.count("Handling connection for") == 3
    assert env.server.read_log().count(f"pods/portforward for default/pf over {transport}\n") == before + 1


def test_kubectl_port_forward_refuses_a_pod_that_is_not_running(env, tmp_path):
    k = kubectl(env, 27, tmp_path)
    bodies, out = port_forward(k, "pod/pending", env.web_port, ["/"])
    assert bodies == [] and "unable to forward port because pod is not running" in out
    r = httpx.post(env.server.url + f"{PODS}/pending/portforward",
                   headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                            "X-Stream-Protocol-Version": "portforward.k8s.io"})
    assert r.status_code == 400
    assert r.json()["message"] == "unable to forward port because pod is not running. Current status=Pending"


# ------------------------------------------------------------------ a raw SPDY client
class SpdyClient:
    """Just enough of a SPDY/3.1 client: the upgrade, streams, and collecting what comes back."""

    def __init__(self, url: str, path: str, protocols: list[str], headers: dict | None = None,
                 early: list = (), tls: ssl.SSLContext | None = None):
        host, port = url.split("://")[1].split(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock = tls.wrap_socket(sock, server_hostname=host) if tls else sock
        self.comp = spdy.HeaderCompressor()
        self.parser = spdy.FrameParser()
        self.next_id = 1
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: SPDY/3.1",
                 "Content-Length: 0"] + [f"X-Stream-Protocol-Version: {p}" for p in protocols]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        req = ("\r\n".join(lines) + "\r\n\r\n").encode()
        # frames may follow the request at once, before the 101 (the takeover keeps them)
        self.sock.sendall(req + b"".join(spdy.encode(f, self.comp) for f in early))
        self.next_id += 2 * sum(isinstance(f, spdy.SynStream) for f in early)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            assert chunk, buf
            buf += chunk
        head, self.rest = buf.split(b"\r\n\r\n", 1)
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {h.split(":", 1)[0].lower(): h.split(":", 1)[1].strip() for h in hdrs}
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(self.rest) < n:
                self.rest += self.sock.recv(65536)
        self.frames: list = []

    def open(self, **headers) -> int:
        sid = self.next_id
        self.next_id += 2
        self.send_frame(spdy.SynStream(sid, {k: [v] for k, v in headers.items()}))
        return sid

    def send_frame(self, frame) -> None:
        self.sock.sendall(spdy.encode(frame, self.comp))

    def send(self, sid: int, data: bytes, fin: bool = False) -> None:
        self.send_frame(spdy.DataFrame(sid, data, spdy.FLAG_FIN if fin else 0))

    def collect(self, until, timeout: float = 10) -> dict:
        """Read frames until until(state) or EOF; state: data per stream, FINs, replies, goaway."""
        deadline = time.monotonic() + timeout
        pending = self.rest
        self.rest = b""
        eof = False
        while True:
            self.frames += self.parser.feed(pending)
            state = {"data": {}, "fin": set(), "replies": set(), "goaway": False, "eof": eof, "rst": set()}
            for f in self.frames:
                if isinstance(f, spdy.DataFrame):
                    state["data"][f.stream_id] = state["data"].get(f.stream_id, b"") + f.data
                    if f.fin:
                        state["fin"].add(f.stream_id)
                elif isinstance(f, spdy.SynReply):
                    state["replies"].add(f.stream_id)
                elif isinstance(f, spdy.GoAway):
                    state["goaway"] = True
                elif isinstance(f, spdy.RstStream):
                    state["rst"].add(f.stream_id)
            if until(state) or state["eof"]:
                return state
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; got {state}"
            self.sock.settimeout(remaining)
            try:
                pending = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError(f"timed out; got {state}") from None
            if not pending:
                eof = True

    def close(self) -> None:
        self.sock.close()


def test_raw_spdy_exec_protocol_negotiation_and_v2_error_text(env):
    path = f"{PODS}/web/exec?command=fail&command=4&command=bad&stdout=true&stderr=true&container=app"
    c = SpdyClient(env.server.url, path, ["v9.channel.k8s.io"])
    assert c.status == 403 and b"unable to negotiate protocol" in c.rest
    c.close()
    c = SpdyClient(env.server.url, f"{PODS}/web/exec?stdout=true", ["v4.channel.k8s.io"])
    assert c.status == 400 and b"at least one command" in c.rest
    c.close()
    c = SpdyClient(env.server.url, path, ["v2.channel.k8s.io", "channel.k8s.io"])
    assert c.status == 101 and c.headers["x-stream-protocol-version"] == "v2.channel.k8s.io"
    assert c.headers["upgrade"] == "SPDY/3.1"
    err, out, errs = c.open(streamtype="error"), c.open(streamtype="stdout"), c.open(streamtype="stderr")
    st = c.collect(lambda s: s["goaway"] and {err, out, errs} <= s["fin"])
    assert st["replies"] == {err, out, errs}
    assert st["data"].get(errs) == b"bad\n" and not st["data"].get(out)
    # v2 carries the failure's message as text, not a Status
    assert st["data"][err].decode().startswith("command terminated with non-zero exit code")
    c.send_frame(spdy.Ping(1))
    c.close()


def test_raw_spdy_frames_sent_before_the_101_are_kept(env):
    early = [spdy.SynStream(1, {"streamtype": ["error"]}), spdy.SynStream(3, {"streamtype": ["stdout"]}),
             spdy.SynStream(5, {"streamtype": ["stdin"]}), spdy.DataFrame(5, b"early bird\n", spdy.FLAG_FIN)]
    c = SpdyClient(env.server.url, f"{PODS}/web/exec?command=cat&stdin=true&stdout=true&container=app",
                   ["v4.channel.k8s.io"], early=early)
    assert c.status == 101
    st = c.collect(lambda s: s["goaway"] and {1, 3} <= s["fin"])
    assert st["data"][3] == b"early bird\n"
    assert b'"status":"Success"' in st["data"][1].replace(b" ", b"")
    c.close()


def test_raw_spdy_port_forward_half_close_errors_and_pings(env):
    c = SpdyClient(env.server.url, f"{PODS}/pf/portforward", ["portforward.k8s.io"])
    assert c.status == 101 and c.headers["x-stream-protocol-version"] == "portforward.k8s.io"
    # request 0: half-close reaches the pod, which answers only after EOF
    e0 = c.open(streamtype="error", port=str(env.count_port), requestid="0")
    d0 = c.open(streamtype="data", port=str(env.count_port), requestid="0")
    # request 1: nothing listens there
    dead = closed_port()
    e1 = c.open(streamtype="error", port=str(dead), requestid="1")
    d1 = c.open(streamtype="data", port=str(dead), requestid="1")
    # request 2: not a port
    e2 = c.open(streamtype="error", port="http", requestid="2")
    d2 = c.open(streamtype="data", port="http", requestid="2")
    c.send(e0, b"", fin=True)  # as kubectl: it never writes on the error stream
    c.send(d0, b"x" * 100000)
    c.send(d0, b"y" * 5, fin=True)
    c.send_frame(spdy.Ping(7))
    st = c.collect(lambda s: {e0, d0, e1, d1, e2, d2} <= s["fin"])
    assert st["replies"] >= {e0, d0, e1, d1, e2, d2}
    assert st["data"][d0] == b"got 100005 bytes\n" and not st["data"].get(e0)
    assert b"connection refused" in st["data"][e1] and f"port {dead}".encode() in st["data"][e1]
    assert st["data"][e2].startswith(b"unable to parse 'http' as a port")
    assert any(isinstance(f, spdy.Ping) and f.id == 7 for f in c.frames)
    # an unknown stream type is reset; the session goes on
    bad = c.open(streamtype="stdin", port="1", requestid="3")
    e3 = c.open(streamtype="error", port=str(env.web_port), requestid="4")
    d3 = c.open(streamtype="data", port=str(env.web_port), requestid="4")
    c.send(d3, b"GET /late HTTP/1.0\r\n\r\n", fin=True)
    st = c.collect(lambda s: {d3, e3} <= s["fin"])
    assert bad in st["rst"] and st["data"][d3].endswith(b"hello from /late\n")
    c.send_frame(spdy.GoAway(d3))
    st = c.collect(lambda s: False)  # the server hangs up after our GOAWAY
    assert st["eof"]
    c.close()


def test_websocket_port_forward_with_channels(env):
    """The Python client's protocol: v4.channel.k8s.io, data on channel 0, errors on 1, port prefix."""
    url = env.server.url.replace("http://", "ws://") + f"{PODS}/pf/portforward?ports={env.web_port}"
    with connect(url, subprotocols=["v4.channel.k8s.io"], open_timeout=10, proxy=None) as ws:
        port_le = env.web_port.to_bytes(2, "little")
        assert {ws.recv(timeout=10), ws.recv(timeout=10)} == {b"\x00" + port_le, b"\x01" + port_le}
        ws.send(b"\x00GET /ws HTTP/1.0\r\n\r\n")
        got = b""
        try:
            while True:
                msg = ws.recv(timeout=10)
                assert msg[0] == 0
                got += msg[1:]
        except Exception:  # noqa: BLE001 - the close ends it
            pass
    assert got.endswith(b"hello from /ws\n") and got.startswith(b"HTTP/1.0 200")
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as e:
        connect(url.replace("/pf/", "/pending/"), subprotocols=["v4.channel.k8s.io"], open_timeout=10, proxy=None)
    assert e.value.response.status_code == 400 and b"not running" in e.value.response.body


# ------------------------------------------------------------------ TLS and bearer tokens on the raw path
@pytest.fixture(scope="module")
def tls_env(env, tmp_path_factory):
    need(shutil.which("openssl") is not None, "openssl is not installed")
    tmp = tmp_path_factory.mktemp("spdy-tls")
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    tokens = tmp / "tokens.csv"
    tokens.write_text(f"{API_TOKEN},admin,1,system:masters\n")
    ktok = tmp / "kubelet-token"
    ktok.write_text(KUBELET_TOKEN + "\n")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(cert))
    log = open(tmp / "apiserver.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "apiserver", "--port", str(port), "--data-dir",
                             str(tmp / "data"), "--tls-cert-file", str(cert), "--tls-private-key-file", str(key),
                             "--token-auth-file", str(tokens), "--kubelet-token-file", str(ktok)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/readyz", verify=ctx, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / "apiserver.log").read_text()
            time.sleep(0.05)
        # the same nodes and pods, pointing at the same kubelets
        with httpx.Client(base_url=env.server.url, timeout=10) as plain, \
                httpx.Client(base_url=url, verify=ctx, timeout=10, headers={"Authorization": f"Bearer {API_TOKEN}"}) as c:
            for n in ("node-1", "node-pf"):
                src = plain.get(f"/api/v1/nodes/{n}").json()
                assert c.post("/api/v1/nodes", json={"metadata": {"name": n}}).status_code == 201
                r = c.patch(f"/api/v1/nodes/{n}/status", json={"status": src["status"]},
                            headers={"Content-Type": "application/merge-patch+json"})
                assert r.status_code == 200, r.text
            for p in ("web", "pf"):
                src = plain.get(f"{PODS}/{p}").json()
                body = {"metadata": {"name": p, "namespace": "default"}, "spec": src["spec"]}
                assert c.post(PODS, json=body).status_code == 201
                r = c.patch(f"{PODS}/{p}/status", json={"status": src.get("status") or {}},
                            headers={"Content-Type": "application/merge-patch+json"})
                assert r.status_code == 200
        yield url, ctx
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_tls_and_token_auth_on_the_spdy_path(env, tls_env, tmp_path):
    url, ctx = tls_env
    tls = ["--insecure-skip-tls-verify"]
    k27 = kubectl(url, 27, tmp_path, token=API_TOKEN)
    assert k27.run(*tls, "exec", "web", "-c", "app", "--", "echo", "over", "tls").stdout == "over tls\n"
    p = k27.run(*tls, "exec", "web", "-c", "app", "--", "fail", "5", "x", check=False)
    assert p.returncode == 5
    for minor in (30, 33):
        k = kubectl(url, minor, tmp_path, token=API_TOKEN)
        bodies, out = port_forward(k, "pod/pf", env.web_port, ["/t1", "/t2", "/t3"], *tls)
        assert bodies == ["hello from /t1\n", "hello from /t2\n", "hello from /t3\n"], out
    # the upgrade is authenticated like every other request
    p = kubectl(url, 27, tmp_path, token="wrong").run(*tls, "exec", "web", "-c", "app", "--", "echo", "x", check=False)
    assert p.returncode != 0 and "Unauthorized" in p.stderr
    c = SpdyClient(url, f"{PODS}/web/exec?command=echo&stdout=true", ["v4.channel.k8s.io"], tls=ctx)
    assert c.status == 401 and b'"reason":"Unauthorized"' in c.rest
    c.close()
    c = SpdyClient(url, f"{PODS}/web/exec?command=echo&command=ok&stdout=true&container=app", ["v4.channel.k8s.io"],
                   headers={"Authorization": f"Bearer {API_TOKEN}"}, tls=ctx)
    assert c.status == 101
    err, out = c.open(streamtype="error"), c.open(streamtype="stdout")
    st = c.collect(lambda s: s["goaway"] and {err, out} <= s["fin"])
    assert st["data"][out] == b"ok\n"
    c.close()


def test_python_client_port_forward(env):
    """The official Python client's port-forward (WebSocket channels) through the relay."""
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import portforward

    cfg = kubernetes.client.Configuration()
    cfg.host = env.server.url
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(cfg))
    pf = portforward(api.connect_get_namespaced_pod_portforward, "pf", "default", ports=str(env.web_port))
    try:
        sock = pf.socket(env.web_port)
        sock.setblocking(True)
        sock.settimeout(10)
        sock.sendall(b"GET /py HTTP/1.0\r\n\r\n")
        got = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        sock.close()
        assert got.startswith(b"HTTP/1.0 200") and got.endswith(b"hello from /py\n")
        assert pf.error(env.web_port) is None
    finally:
        pf.close()


def test_kubelet_port_forward_endpoint_refusals(env):
    """The real kubelet's /portForward: token required, ports and pod checked before the upgrade."""
    from websockets.exceptions import InvalidStatus

    base = f"ws://127.0.0.1:{env.kubelet_port}/portForward/default"
    auth = {"Authorization": f"Bearer {KUBELET_TOKEN}"}
    for url, headers, code, text in [
        (f"{base}/pf?ports={env.web_port}", {}, 403, b""),
        (f"{base}/pf?ports=0", auth, 400, b"invalid port"),
        (f"{base}/pf", auth, 400, b"is required"),
        (f"{base}/ghost?ports=80", auth, 404, b'pods \\"ghost\\" not found'),
    ]:
        with pytest.raises(InvalidStatus) as e:
            connect(url, subprotocols=["v4.channel.k8s.io"], additional_headers=headers, open_timeout=10, proxy=None)
        assert e.value.response.status_code == code and text in (e.value.response.body or b""), e.value.response.body
    # two ports on one WebSocket, comma-separated: channels 0/1 and 2/3
    dead = closed_port()
    with connect(f"{base}/pf?ports={env.web_port},{dead}", subprotocols=["v4.channel.k8s.io"],
                 additional_headers=auth, open_timeout=10, proxy=None) as ws:
        msgs = [ws.recv(timeout=10) for _ in range(5)]
        ws.send(b"\x00GET /two HTTP/1.0\r\n\r\n")
        got = b""
        try:
            while True:
                got += ws.recv(timeout=10)[1:]
        except Exception:  # noqa: BLE001 - closed when the only live port's connection ends
            pass
    assert msgs[:4] == [b"\x00" + env.web_port.to_bytes(2, "little"), b"\x01" + env.web_port.to_bytes(2, "little"),
                        b"\x02" + dead.to_bytes(2, "little"), b"\x03" + dead.to_bytes(2, "little")]
    assert msgs[4][0] == 3 and b"connection refused" in msgs[4]
    assert got.endswith(b"hello from /two\n")
