"""e2e: the issue-7 client matrix against a cluster made by `pocketkube up`.

One `pocketkube up` for the module (a free node network, a free port,
``--no-host-routes``; `down --purge` at the end). Stock kubectl 1.27 and 1.33
run the commands a user would (version, api-resources, cluster-info, get with
server-side Tables and -o wide, get -w, create -f, apply -f twice with a
change, apply --server-side, describe, logs, logs -f, exec, run, expose,
label, annotate, delete), and the official Python client lists, creates,
patches, watches, execs and deletes — all over the TLS + token kubeconfig
that `up` writes.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.conftest import free_port, need
from tests.e2e.netns import have_root_tools, pick_link_subnet, wait_until
from tests.e2e.test_up import Kubectl, pocketkube

pytestmark = pytest.mark.slow

VERSIONS = (27, 33)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ok, why = have_root_tools("iptables-restore", "iptables-save", "nsenter", "openssl")
    need(ok, why)
    tmp = str(tmp_path_factory.mktemp("upclients"))
    data_dir = os.path.join(tmp, "pk")
    args = ["--data-dir", data_dir, "--node-network", str(pick_link_subnet()), "--port", str(free_port()),
            "--no-host-routes"]
    try:
        r = pocketkube("up", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        yield data_dir, tmp
    finally:
        r = pocketkube("down", "--data-dir", data_dir, "--purge")
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(params=VERSIONS, ids=lambda v: f"kubectl-1.{v}")
def k(request, cluster):
    data_dir, tmp = cluster
    return Kubectl(request.param, os.path.join(data_dir, "kubeconfig"), os.path.join(tmp, f"cache{request.param}"))


def pod_yaml(name: str, script: str, labels: str = "app: demo") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    {labels}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: pocketkube/host
    args: ["sh", "-c", {script!r}]
"""


def running(k, name: str, timeout: float = 60) -> None:
    wait_until(lambda: k("get", "pod", name, "-o", "jsonpath={.status.phase}", check=False).stdout == "Running",
               timeout=timeout, interval=0.3, what=f"{name} Running")


def test_discovery_and_reads(k):
    v = k("version").stdout
    assert "Client Version" in v and "Server Version" in v
    assert "pods" in k("api-resources").stdout
    ci = k("cluster-info").stdout
    assert "Kubernetes control plane" in ci and "CoreDNS" in ci
    nodes = k("get", "nodes", "-o", "wide").stdout
    assert "node-1" in nodes and "INTERNAL-IP" in nodes
    for what in ("pods", "svc", "endpoints", "ingress", "all"):
        k("get", what, "-A")


def test_create_apply_describe_logs_exec_label_delete(k):
    n = f"demo{k.bin[-2:]}"
    k("create", "-f", "-", input=pod_yaml(n, "echo one; echo two; sleep 3600"))
    running(k, n)
    k("apply", "-f", "-", input=pod_yaml(n, "echo one; echo two; sleep 3600", "app: demo\n    tier: web"))
    k("apply", "-f", "-", input=pod_yaml(n, "echo one; echo two; sleep 3600", "app: demo\n    tier: api"))
    assert k("get", "pod", n, "-o", "jsonpath={.metadata.labels.tier}").stdout == "api"
    k("apply", "--server-side", "-f", "-", input=pod_yaml(n, "echo one; echo two; sleep 3600",
                                                          "app: demo\n    tier: ssa"))
    assert k("get", "pod", n, "-o", "jsonpath={.metadata.labels.tier}").stdout == "ssa"
    table = k("get", "pods").stdout
    assert "READY" in table and "STATUS" in table and "RESTARTS" in table and n in table
    desc = k("describe", "pod", n).stdout
    assert "Status:" in desc and "Running" in desc and "Started" in desc       # events from the kubelet
    wait_until(lambda: k("logs", n, check=False).stdout == "one\ntwo\n", timeout=10, what="logs")
    assert k("logs", n, "--tail=1").stdout == "two\n"
    r = k("exec", n, "--", "sh", "-c", "echo in-pod $(hostname); exit 3", check=False)
    assert r.returncode == 3 and f"in-pod {n}" in r.stdout, r
    r = k("exec", "-i", n, "--", "cat", input="stdin works\n", check=False)
    assert r.returncode == 0 and r.stdout == "stdin works\n", r
    k("label", "pod", n, "extra=yes")
    k("annotate", "pod", n, "note=hello")
    got = k("get", "pod", n, "-o", "jsonpath={.metadata.labels.extra} {.metadata.annotations.note}").stdout
    assert got == "yes hello"
    k("expose", "pod", n, "--port=80", "--target-port=8080", f"--name={n}-svc")
    assert k("get", "svc", f"{n}-svc", "-o", "jsonpath={.spec.ports[0].port}").stdout == "80"
    k("delete", "svc", f"{n}-svc")
    k("delete", "pod", n, "--wait=true", timeout=90)
    assert n not in k("get", "pods").stdout


def test_run_logs_follow_and_watch(k):
    n = f"runner{k.bin[-2:]}"
    w = subprocess.Popen([k.bin, f"--kubeconfig={k.kubeconfig}", f"--cache-dir={k.cache}", "get", "pods", "-w"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, HOME=k.cache))
    try:
        k("run", n, "--image=pocketkube/host", "--restart=Never", "--", "sh", "-c",
          "for i in 1 2 3; do echo tick $i; sleep 0.3; done")
        wait_until(lambda: k("get", "pod", n, "-o", "jsonpath={.status.phase}", check=False).stdout
                   in ("Running", "Succeeded"), timeout=60, what=f"{n} started")
        f = k("logs", "-f", n, timeout=60)                 # follows until the container exits
        assert f.stdout == "tick 1\ntick 2\ntick 3\n", f.stdout
        wait_until(lambda: k("get", "pod", n, "-o", "jsonpath={.status.phase}").stdout == "Succeeded",
                   timeout=30, what="Succeeded")
        time.sleep(1)
    finally:
        w.kill()
        out, _ = w.communicate(timeout=10)
    assert n in out and "Completed" in out, out
    k("delete", "pod", n)


def test_python_client(cluster):
    import kubernetes
    from kubernetes.stream import stream

    data_dir, _ = cluster
    api_client = kubernetes.config.new_client_from_config(config_file=os.path.join(data_dir, "kubeconfig"))
    v1 = kubernetes.client.CoreV1Api(api_client)
    assert any(n.metadata.name == "node-1" for n in v1.list_node().items)
    body = {"metadata": {"name": "pyclient", "labels": {"app": "py"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "pocketkube/host", "args": ["sleep", "3600"]}]}}
    v1.create_namespaced_pod("default", body)
    w = kubernetes.watch.Watch()
    seen = None
    for ev in w.stream(v1.list_namespaced_pod, "default", label_selector="app=py", timeout_seconds=60):
        if ev["object"].status.phase == "Running":
            seen = ev["type"]
            w.stop()
    assert seen in ("ADDED", "MODIFIED")
    v1.patch_namespaced_pod("pyclient", "default", {"metadata": {"labels": {"patched": "yes"}}})
    assert v1.read_namespaced_pod("pyclient", "default").metadata.labels["patched"] == "yes"
    out = stream(v1.connect_get_namespaced_pod_exec, "pyclient", "default", command=["sh", "-c", "echo from-exec"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out.strip() == "from-exec"
    v1.delete_namespaced_pod("pyclient", "default")
    wait_until(lambda: not [p for p in v1.list_namespaced_pod("default").items if p.metadata.name == "pyclient"],
               timeout=30, what="pyclient deleted")
    api_client.close()


def test_port_forward_over_tls(k):
    import signal

    import httpx

    n = f"pf{k.bin[-2:]}"
    k("create", "-f", "-", input=pod_yaml(n, "python3 -m http.server 8080"))
    running(k, n)
    local = free_port()
    log_path = k.cache + f"-pf.log"
    os.makedirs(k.cache, exist_ok=True)
    with open(log_path, "w") as out:
        proc = subprocess.Popen([k.bin, f"--kubeconfig={k.kubeconfig}", f"--cache-dir={k.cache}", "port-forward",
                                 f"pod/{n}", f"{local}:8080"], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, HOME=k.cache))
    try:
        wait_until(lambda: "Forwarding from" in open(log_path).read() or proc.poll() is not None, timeout=30,
                   what="kubectl port-forward listening")
        assert proc.poll() is None, open(log_path).read()
        codes = []
        for _ in range(3):
            for attempt in range(20):        # the server in the pod may still be starting
                try:
                    codes.append(httpx.get(f"http://127.0.0.1:{local}/", timeout=10).status_code)
                    break
                except httpx.HTTPError:
                    time.sleep(0.3)
        assert codes == [200, 200, 200], open(log_path).read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    k("delete", "pod", n, "--wait=false")
