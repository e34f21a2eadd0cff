"""e2e: stock kubectl's logs, exec, port-forward and run against real pods on a real node.

The cluster is KubeletCluster (tests/e2e/kubelet_cluster.py): an API server on
the host end of the node link (no client auth: kubectl with --server only), a
scheduler, a controller-manager, and a real kubelet + runtime in a node
namespace, holding the token the API server relays with. kubectl runs in the
machine's namespace, like a user's.

Per kubectl version, the transports differ: 1.27 runs exec over SPDY/3.1 and
port-forward over SPDY/3.1; 1.33 runs exec over WebSocket (v5.channel.k8s.io)
and port-forward over SPDY tunnelled in a WebSocket. Each is relayed by the API
server to the kubelet's /exec and /portForward WebSockets (the latter entering
the pod's network namespace, so a server bound to the pod's 127.0.0.1 is
reachable, as in Kubernetes).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import free_port, need
from tests.e2e.kubelet_cluster import fixture
from tests.e2e.netns import have_root_tools, wait_until
from tests.integration.kubectlutil import Kubectl

pytestmark = pytest.mark.slow

HOST = "pocketkube/host"
VERSIONS = [27, 33]


@pytest.fixture(scope="module")
def kc(tmp_path_factory):
    ok, why = have_root_tools("iptables-restore", "iptables-save", "nsenter")
    need(ok, why)
    yield from fixture(str(tmp_path_factory.mktemp("kubectl-node")), proxy=False)


@pytest.fixture(scope="module")
def pods(kc):
    """Two long-running pods shared by the tests: a web server, and one bound to the pod's localhost."""
    kc.pod("web", [{"name": "web", "image": HOST, "args": ["python3", "-u", "-m", "http.server", "8080"],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}])
    kc.pod("local", [{"name": "srv", "image": HOST,
                      "args": ["sh", "-c", "echo local-start; exec python3 -m http.server 9090 --bind 127.0.0.1"],
                      "readinessProbe": {"exec": {"command": ["python3", "-c", "import socket; "
                                                              "socket.create_connection(('127.0.0.1', 9090))"]},
                                         "periodSeconds": 1}}])
    kc.wait_running("web", timeout=60)
    kc.wait_running("local", timeout=60)
    yield
    for name in ("web", "local"):
        kc.delete_pod(name, wait=False)


def kubectl(kc, minor: int, tmp_path) -> Kubectl:
    return Kubectl(minor, kc.url, str(tmp_path / f"kcache{minor}"))


@pytest.mark.parametrize("minor", VERSIONS)
def test_exec(kc, pods, tmp_path, minor):
    k = kubectl(kc, minor, tmp_path)
    assert k.run("exec", "web", "--", "echo", "hi").stdout == "hi\n"
    data = "".join(f"stdin line {i}\n" for i in range(500))
    assert k.run("exec", "-i", "web", "--", "cat", input=data).stdout == data
    p = k.run("exec", "web", "--", "sh", "-c", "echo out; echo oops >&2; exit 3", check=False)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert p.stdout == "out\n" and "oops" in p.stderr and "command terminated with exit code 3" in p.stderr
    # the command runs in the pod: its UTS namespace has the pod name as hostname
    assert k.run("exec", "web", "--", "hostname").stdout == "web\n"
    p = k.run("exec", "web", "--", "no-such-command-here", check=False)
    assert p.returncode != 0


@pytest.mark.parametrize("minor", VERSIONS)
def test_logs_and_logs_follow(kc, pods, tmp_path, minor):
    k = kubectl(kc, minor, tmp_path)
    name = f"ticker{minor}"
    kc.pod(name, [{"name": "t", "image": HOST,
                   "args": ["sh", "-c", "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.5; done"]}],
           restartPolicy="Never")
    kc.wait_running(name, ready=False, timeout=60)
    started = time.monotonic()
    p = k.run("logs", "-f", name, timeout=60)  # ends when the container does
    assert p.stdout == "".join(f"tick {i}\n" for i in range(1, 7)), p.stderr
    assert time.monotonic() - started < 30
    assert k.run("logs", name, "--tail=2").stdout == "tick 5\ntick 6\n"
    assert "local-start" in k.run("logs", "local").stdout
    kc.delete_pod(name)


def port_forward(k: Kubectl, target: str, remote: int, paths: list[str]) -> tuple[list[httpx.Response], str]:
    local = free_port()
    os.makedirs(k.cache_dir, exist_ok=True)
    out_path = k.cache_dir + f"-pf-{remote}.log"
    env = dict(os.environ, KUBECONFIG="/dev/null", HOME=k.cache_dir)
    with open(out_path, "w") as out:
        proc = subprocess.Popen([k.bin, f"--server={k.server}", f"--cache-dir={k.cache_dir}", "port-forward", target,
                                 f"{local}:{remote}"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: "Forwarding from" in open(out_path).read() or proc.poll() is not None, timeout=30,
                   what="kubectl port-forward to listen")
        assert proc.poll() is None, open(out_path).read()
        responses = [httpx.get(f"http://127.0.0.1:{local}{p}", timeout=15) for p in paths]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return responses, open(out_path).read()


@pytest.mark.parametrize("minor", VERSIONS)
def test_port_forward(kc, pods, tmp_path, minor):
    k = kubectl(kc, minor, tmp_path)
    responses, out = port_forward(k, "pod/web", 8080, ["/", "/proc/", "/etc/"])
    assert [r.status_code for r in responses] == [200, 200, 200], out
    assert all("Directory listing for" in r.text for r in responses)
    assert out.count("Handling connection for") == 3
    # the request reached the pod's server: its access log has them
    wait_until(lambda: k.run("logs", "web").stdout.count('"GET /proc/ HTTP/1.1" 200') >= 1, timeout=10,
               what="the web pod's access log")
    # a server listening on the pod's own 127.0.0.1 only: reachable because the kubelet dials inside the pod
    responses, out = port_forward(k, "pod/local", 9090, ["/", "/etc/"])
    assert [r.status_code for r in responses] == [200, 200], out


@pytest.mark.parametrize("minor", VERSIONS)
def test_run_then_logs(kc, pods, tmp_path, minor):
    k = kubectl(kc, minor, tmp_path)
    name = f"run{minor}"
    p = k.run("run", name, f"--image={HOST}", "--restart=Never", "--", "sh", "-c", f"echo hello from {name}; sleep 1")
    assert f"pod/{name} created" in p.stdout
    kc.wait_pod(name, lambda pod: (pod.get("status") or {}).get("phase") in ("Running", "Succeeded"), timeout=60)
    wait_until(lambda: f"hello from {name}" in k.run("logs", name, check=False).stdout, timeout=20,
               what=f"kubectl logs {name}")
    kc.wait_pod(name, lambda pod: (pod.get("status") or {}).get("phase") == "Succeeded", timeout=60)
    assert k.run("logs", name).stdout == f"hello from {name}\n"
    kc.delete_pod(name)
