"""pkctl against a real API server: every command, its output and its exit code.

One server process serves the module; each test works in a namespace of its
own so tests cannot see each other's objects. Most calls go through
``pkctl.main.main(argv)`` in-process with captured streams (fast); the ones
that are about the process itself -- exit codes, ``-w`` streaming, no
traceback on a refused connection, ``$KUBECONFIG`` -- run ``python -m
pkctl.main`` as a subprocess. Every wait is bounded.
"""
from __future__ import annotations

import io
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import yaml

from api import resources as R
from client.kubeconfig import write_kubeconfig
from client.rest import Client
from pkctl.main import main

from ..conftest import ApiServer, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Cluster:
    server: ApiServer
    kubeconfig: str
    client: Client

    def pk(self, *argv: str, ns: str | None = None, stdin: str = "") -> Result:
        out, err = io.StringIO(), io.StringIO()
        args = ["--kubeconfig", self.kubeconfig, *(["-n", ns] if ns else []), *argv]
        rc = main(args, stdout=out, stderr=err, stdin=io.StringIO(stdin))
        return Result(rc, out.getvalue(), err.getvalue())

    def proc(self, *argv: str, ns: str | None = None, timeout: float = 60, env: dict | None = None,
             kubeconfig: bool = True) -> Result:
        args = [sys.executable, "-m", "pkctl.main"]
        if kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        args += [*(["-n", ns] if ns else []), *argv]
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                           env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
        return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("pkctl")
    server = ApiServer(str(d)).start()
    kc = write_kubeconfig(str(d / "kubeconfig"), server.url, token=None)
    client = Client(server=server.url)
    try:
        yield Cluster(server, kc, client)
    finally:
        client.close()
        server.stop()


@pytest.fixture
def ns(cluster):
    name = "t-" + uuid.uuid4().hex[:8]
    cluster.client.create(R.NAMESPACES, {"metadata": {"name": name}})
    return name


def manifest(tmp_path, text: str, name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


WEB = """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: web
      labels: {app: web, tier: front}
    spec:
      containers:
      - name: main
        image: nginx:1.25
        ports: [{containerPort: 80}]
      - name: side
        image: busybox:1.36
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports: [{port: 80, targetPort: 80}]
    """


def pod_body(name, labels=None, finalizers=None):
    md = {"name": name, "labels": labels or {"app": name}}
    if finalizers:
        md["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md,
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def table(text: str) -> list[list[str]]:
    """Split an aligned table on runs of 2+ spaces (cells themselves hold single spaces)."""
    import re
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


# ------------------------------------------------------------------ version, api-resources, cluster-info
def test_version(cluster):
    r = cluster.pk("version")
    assert r.rc == 0
    lines = r.out.splitlines()
    assert lines[0].startswith("Client Version: v") and lines[1] == "Server Version: v1.33.0"
    r = cluster.pk("version", "-o", "json")
    assert json.loads(r.out)["serverVersion"]["gitVersion"] == "v1.33.0"
    assert cluster.pk("version", "--client").out.startswith("Client Version: v")


def test_api_resources(cluster):
    r = cluster.pk("api-resources")
    assert r.rc == 0
    rows = table(r.out)
    assert rows[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["pods", "po", "v1", "true", "Pod"] in rows
    assert ["ingresses", "ing", "networking.k8s.io/v1", "true", "Ingress"] in rows
    assert ["leases", "coordination.k8s.io/v1", "true", "Lease"] in rows  # no short names
    names = [row[0] for row in rows[1:]]
    core = [n for n in names if n in ("endpoints", "events", "namespaces", "nodes", "pods", "services")]
    assert core == sorted(core) and names.index("leases") > names.index("services")
    assert not any("/" in n for n in names)  # no subresources
    r = cluster.pk("api-resources", "--namespaced=false", "-o", "name")
    assert set(r.out.split()) >= {"namespaces", "nodes"} and "pods" not in r.out.split()


def test_cluster_info(cluster):
    cluster.client.create(R.SERVICES, {"metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {
        "k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"selector": {"k8s-app": "kube-dns"}, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
        namespace="kube-system")
    r = cluster.pk("cluster-info")
    assert r.rc == 0
    url = cluster.server.url
    assert r.out.splitlines()[0] == f"Kubernetes control plane is running at {url}"
    assert (f"CoreDNS is running at {url}/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy"
            in r.out.splitlines())


# ------------------------------------------------------------------ get
def test_get_tables(cluster, ns, tmp_path):
    assert cluster.pk("apply", "-f", manifest(tmp_path, WEB), ns=ns).rc == 0
    cluster.client.create(R.PODS, pod_body("db", {"app": "db"}), namespace=ns)

    r = cluster.pk("get", "pods", ns=ns)
    rows = table(r.out)
    assert r.rc == 0 and rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [row[:4] for row in rows[1:]] == [["db", "0/1", "Pending", "0"], ["web", "0/2", "Pending", "0"]]
    # kubectl's alignment: each column starts where its header does
    lines = r.out.splitlines()
    assert lines[1].index("0/1") == lines[0].index("READY") == lines[2].index("0/2")

    wide = table(cluster.pk("get", "pods", "-o", "wide", ns=ns).out)
    assert wide[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                       "READINESS GATES"]

    assert [row[0] for row in table(cluster.pk("get", "po", "-l", "app=web", ns=ns).out)[1:]] == ["web"]
    r = cluster.pk("get", "pods", "--field-selector", "metadata.name=db", ns=ns)
    assert [row[0] for row in table(r.out)[1:]] == ["db"]
    assert [row[0] for row in table(cluster.pk("get", "pod", "web", "db", ns=ns).out)[1:]] == ["web", "db"]

    r = cluster.pk("get", "pod/web", "svc/web", ns=ns)
    sections = r.out.split("\n\n")
    assert len(sections) == 2
    assert table(sections[0])[1][0] == "pod/web"
    assert table(sections[1])[0][:3] == ["NAME", "TYPE", "CLUSTER-IP"] and table(sections[1])[1][0] == "service/web"
    r = cluster.pk("get", "pods,svc", ns=ns)
    assert "pod/db" in r.out and "service/web" in r.out
    r = cluster.pk("get", "all", ns=ns)
    assert "pod/web" in r.out and "service/web" in r.out

    r = cluster.pk("get", "pods", "-A")
    header = table(r.out)[0]
    assert header[:2] == ["NAMESPACE", "NAME"]
    assert [ns, "web"] in [row[:2] for row in table(r.out)]
    r = cluster.pk("get", "pods", "--show-labels", "-L", "tier", ns=ns)
    assert table(r.out)[0][-2:] == ["TIER", "LABELS"]
    assert table(r.out)[2][-2:] == ["front", "app=web,tier=front"]


def test_get_object_formats(cluster, ns):
    for name in ("a", "b"):
        cluster.client.create(R.PODS, pod_body(name), namespace=ns)
    one = yaml.safe_load(cluster.pk("get", "pod", "a", "-o", "yaml", ns=ns).out)
    assert one["kind"] == "Pod" and one["metadata"]["name"] == "a" and one["apiVersion"] == "v1"
    many = json.loads(cluster.pk("get", "pods", "-o", "json", ns=ns).out)
    assert many["kind"] == "List" and [i["metadata"]["name"] for i in many["items"]] == ["a", "b"]
    assert all(i["kind"] == "Pod" for i in many["items"])
    assert cluster.pk("get", "pods", "-o", "name", ns=ns).out == "pod/a\npod/b\n"
    r = cluster.pk("get", "pods", "-o", "jsonpath={.items[*].metadata.name}", ns=ns)
    assert r.out == "a b"
    r = cluster.pk("get", "pods", "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image", ns=ns)
    assert table(r.out) == [["NAME", "IMAGE"], ["a", "busybox"], ["b", "busybox"]]
    assert cluster.pk("get", "ns", ns, "-o", "name").out == f"namespace/{ns}\n"


def test_get_empty_and_errors(cluster, ns):
    r = cluster.pk("get", "pods", ns=ns)
    assert (r.rc, r.out, r.err) == (0, "", f"No resources found in {ns} namespace.\n")
    r = cluster.pk("get", "nodes", "-l", "nothing=here")
    assert (r.rc, r.err) == (0, "No resources found\n")
    r = cluster.pk("get", "pod", "nope", ns=ns)
    assert (r.rc, r.err) == (1, 'Error from server (NotFound): pods "nope" not found\n')
    r = cluster.pk("get", "pod", "nope", "--ignore-not-found", ns=ns)
    assert (r.rc, r.err) == (0, "")
    r = cluster.pk("get", "foo")
    assert (r.rc, r.err) == (1, 'error: the server doesn\'t have a resource type "foo"\n')
    r = cluster.pk("get")
    assert r.rc == 1 and r.err.startswith("error: You must specify the type of resource to get.")
    r = cluster.pk("get", "pods", "-o", "xml")
    assert r.rc == 1 and 'unable to match a printer suitable for the output format "xml"' in r.err
    r = cluster.pk("get", "pods", "-l", "a in (", ns=ns)
    assert r.rc == 1 and r.err.startswith("Error from server (BadRequest):")


def _reader(stream, q: "queue.Queue[str | None]") -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def test_get_watch_prints_changes(cluster, ns):
    cluster.client.create(R.PODS, pod_body("first"), namespace=ns)
    proc = subprocess.Popen([sys.executable, "-m", "pkctl.main", "--kubeconfig", cluster.kubeconfig, "-n", ns,
                             "get", "pods", "-w", "--request-timeout=5s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    q: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 20

        def wait_for(pred) -> None:
            while time.monotonic() < deadline:
                try:
                    line = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if line is None:
                    break
                lines.append(line)
                if pred(line):
                    return
            raise AssertionError(f"watch output never matched; got {lines!r}")

        wait_for(lambda line: line.startswith("first"))
        cluster.client.create(R.PODS, pod_body("second"), namespace=ns)
        wait_for(lambda line: line.startswith("second"))
        cluster.client.delete(R.PODS, "second", ns)
        wait_for(lambda line: line.startswith("second") and "Terminating" in line)
        rc = proc.wait(timeout=20)  # the server ends the watch at --request-timeout
        for line in iter(q.get, None):
            lines.append(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert rc == 0, proc.stderr.read()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sum(1 for line in lines if line.startswith("NAME")) == 1
    assert lines[1].index("Pending") == lines[0].index("STATUS")
    assert any(line.startswith("second") and "Pending" in line for line in lines)


def test_get_watch_object_format_is_bounded(cluster, ns):
    cluster.client.create(R.PODS, pod_body("w1"), namespace=ns)
    r = cluster.proc("get", "pods", "-w", "-o", "name", "--request-timeout=2s", ns=ns, timeout=30)
    assert (r.rc, r.out) == (0, "pod/w1\n"), r.err


# ------------------------------------------------------------------ describe
def test_describe_pod_with_its_events_only(cluster, ns, tmp_path):
    cluster.pk("apply", "-f", manifest(tmp_path, WEB), ns=ns)
    pod = cluster.client.get(R.PODS, "web", ns)
    cluster.client.create_event(pod, "Scheduled", f"Successfully assigned {ns}/web to node-1",
                                component="default-scheduler")
    stale = dict(pod, metadata={**pod["metadata"], "uid": "an-older-pod-with-the-same-name"})
    cluster.client.create_event(stale, "Killing", "an event of an earlier pod named web")
    r = cluster.pk("describe", "pod", "web", ns=ns)
    assert r.rc == 0, r.err
    lines = [" ".join(line.split()) for line in r.out.splitlines()]  # the exact layout is compared with kubectl below
    assert lines[0] == "Name: web" and lines[1] == f"Namespace: {ns}"
    assert "Labels: app=web" in lines and "tier=front" in lines
    assert "Containers:" in lines and "main:" in lines and "Image: nginx:1.25" in lines
    assert "Port: 80/TCP" in lines
    events = r.out.split("Events:")[1]
    assert "Type    Reason     Age" in events and "default-scheduler" in events
    assert "Successfully assigned" in events and "earlier pod" not in events
    assert "last-applied-configuration" not in r.out
    # a name prefix works as in kubectl; so does TYPE/NAME
    first = cluster.pk("describe", "pods", "we", ns=ns).out.splitlines()[0]
    assert first.split() == ["Name:", "web"]
    assert cluster.pk("describe", "pod/web", ns=ns).rc == 0
    r = cluster.pk("describe", "pod", "nope", ns=ns)
    assert (r.rc, r.err) == (1, 'Error from server (NotFound): pods "nope" not found\n')


def test_describe_service_node_and_generic(cluster, ns, tmp_path):
    cluster.pk("apply", "-f", manifest(tmp_path, WEB), ns=ns)
    cluster.client.update(R.ENDPOINTS, {"apiVersion": "v1", "kind": "Endpoints",
                                        "metadata": {"name": "web", "namespace": ns},
                                        "subsets": [{"addresses": [{"ip": "10.244.0.7"}], "ports": [{"port": 80}]}]},
                          namespace=ns)
    r = cluster.pk("describe", "svc", "web", ns=ns)
    assert r.rc == 0, r.err
    assert "Selector:          app=web" in r.out or "Selector:" in r.out
    line = {l.split(":")[0]: l for l in r.out.splitlines()}
    assert line["Selector"].split()[-1] == "app=web"
    assert line["Type"].split()[-1] == "ClusterIP"
    assert line["Endpoints"].split()[-1] == "10.244.0.7:80"
    assert line["Port"].split()[-2:] == ["<unset>", "80/TCP"]

    node = f"node-{ns}"
    cluster.client.create(R.NODES, {"metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                                    "spec": {"podCIDR": "10.244.7.0/24"}})
    cluster.client.update_status(R.NODES, {**cluster.client.get(R.NODES, node), "status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready",
                        "lastHeartbeatTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": "100.64.0.2"}, {"type": "Hostname", "address": node}],
        "capacity": {"cpu": "2", "pods": "110"}, "nodeInfo": {"kubeletVersion": "v1.31.0"}}})
    r = cluster.pk("describe", "node", node)
    assert r.rc == 0, r.err
    assert r.out.startswith(f"Name:               {node}\nRoles:              <none>\n")
    assert "KubeletReady" in r.out and "  InternalIP:  100.64.0.2" in r.out and "PodCIDR:" in r.out
    cluster.client.delete(R.NODES, node)

    cluster.client.create(R.LEASES, {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "me",
                                                                           "leaseDurationSeconds": 15}}, ns)
    r = cluster.pk("describe", "lease", "lock", ns=ns)
    assert r.rc == 0, r.err
    assert "API Version:  coordination.k8s.io/v1" in r.out and "Kind:         Lease" in r.out
    assert "  Holder Identity:         me" in r.out or "Holder Identity:" in r.out
    assert "Events:" in r.out


# ------------------------------------------------------------------ apply / create
def test_apply_twice_then_change(cluster, ns, tmp_path):
    path = manifest(tmp_path, WEB)
    r = cluster.pk("apply", "-f", path, ns=ns)
    assert (r.rc, r.out) == (0, "pod/web created\nservice/web created\n"), r.err
    pod = cluster.client.get(R.PODS, "web", ns)
    last = json.loads(pod["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["metadata"]["name"] == "web" and last["spec"]["containers"][0]["image"] == "nginx:1.25"
    r = cluster.pk("apply", "-f", path, ns=ns)
    assert (r.rc, r.out) == (0, "pod/web unchanged\nservice/web unchanged\n")

    # someone else adds a label; the manifest changes an image and drops a label
    cluster.client.patch(R.PODS, "web", {"metadata": {"labels": {"owner": "ops"}}}, ns)
    path = manifest(tmp_path, WEB.replace("nginx:1.25", "nginx:1.26").replace(", tier: front", ""))
    r = cluster.pk("apply", "-f", path, ns=ns)
    assert (r.rc, r.out) == (0, "pod/web configured\nservice/web unchanged\n"), r.err
    pod = cluster.client.get(R.PODS, "web", ns)
    assert [c["image"] for c in pod["spec"]["containers"]] == ["nginx:1.26", "busybox:1.36"]
    assert pod["metadata"]["labels"] == {"app": "web", "owner": "ops"}
    assert cluster.pk("apply", "-f", path, ns=ns).out == "pod/web unchanged\nservice/web unchanged\n"


def test_apply_stdin_directory_list_and_namespace_checks(cluster, ns, tmp_path):
    r = cluster.pk("apply", "-f", "-", ns=ns, stdin="apiVersion: v1\nkind: Pod\nmetadata: {name: s1}\n"
                                                     "spec: {containers: [{name: c, image: busybox}]}\n")
    assert (r.rc, r.out) == (0, "pod/s1 created\n"), r.err
    d = tmp_path / "dir"
    d.mkdir()
    (d / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        pod_body("l1"), pod_body("l2")]}))
    (d / "p.json").write_text(json.dumps(pod_body("j1")))
    r = cluster.pk("apply", "-f", str(d), "-o", "name", ns=ns)
    assert (r.rc, r.out) == (0, "pod/l1\npod/l2\npod/j1\n"), r.err  # files in name order
    other = manifest(tmp_path, f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: x, namespace: {ns}}}
        spec: {{containers: [{{name: c, image: busybox}}]}}
        """)
    r = cluster.pk("apply", "-f", other, ns="default")
    assert r.rc == 1 and f'the namespace from the provided object "{ns}" does not match the namespace "default"' in r.err
    nsname = f"{ns}-x"
    r = cluster.pk("apply", "-f", manifest(tmp_path, f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {nsname}}}\n",
                                           "ns.yaml"), ns=ns)
    assert (r.rc, r.out) == (0, f"namespace/{nsname} created\n"), r.err
    r = cluster.pk("create", "-f", manifest(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {generateName: gen-}\n"
                                                      "spec: {containers: [{name: c, image: busybox}]}\n", "gen.yaml"),
                   "-o", "name", ns=ns)
    assert r.rc == 0 and r.out.startswith("pod/gen-"), r.err
    r = cluster.pk("apply", "-f", str(tmp_path / "gen.yaml"), ns=ns)
    assert (r.rc, r.err) == (1, f'error: from {tmp_path / "gen.yaml"}: cannot use generate name with apply\n')
    r = cluster.pk("apply", "-f", str(tmp_path / "missing.yaml"))
    assert r.rc == 1 and r.err.startswith('error: the path "')
    r = cluster.pk("apply", "-f", manifest(tmp_path, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"),
                   ns=ns)
    assert r.rc == 1 and 'no matches for kind "Deployment" in version "apps/v1"' in r.err


def test_apply_server_side(cluster, ns, tmp_path):
    path = manifest(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: ssa, labels: {a: b}}\n"
                              "spec: {containers: [{name: c, image: busybox}]}\n")
    r = cluster.pk("apply", "--server-side", "-f", path, ns=ns)
    assert (r.rc, r.out) == (0, "pod/ssa serverside-applied\n"), r.err
    assert cluster.pk("apply", "--server-side", "-f", path, ns=ns).rc == 0
    assert cluster.client.get(R.PODS, "ssa", ns)["metadata"]["labels"] == {"a": "b"}


def test_create(cluster, ns, tmp_path):
    path = manifest(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: c1}\n"
                              "spec: {containers: [{name: c, image: busybox}]}\n")
    r = cluster.pk("create", "-f", path, ns=ns)
    assert (r.rc, r.out) == (0, "pod/c1 created\n")
    r = cluster.proc("create", "-f", path, ns=ns)
    assert r.rc == 1
    assert r.err == f'Error from server (AlreadyExists): error when creating "{path}": pods "c1" already exists\n'
    bad = manifest(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {containers: []}\n", "bad.yaml")
    r = cluster.pk("create", "-f", bad, ns=ns)
    assert r.rc == 1 and r.err.startswith('The Pod "bad" is invalid: ') and "spec.containers" in r.err


# ------------------------------------------------------------------ delete
def test_delete_by_name_selector_all_and_file(cluster, ns, tmp_path):
    for name, group in (("a", "x"), ("b", "y"), ("c", "y"), ("d", "z")):
        cluster.client.create(R.PODS, pod_body(name, {"group": group}), namespace=ns)
    r = cluster.pk("delete", "pod", "a", ns=ns)
    assert (r.rc, r.out) == (0, 'pod "a" deleted\n'), r.err
    r = cluster.pk("delete", "pods", "-l", "group=y", ns=ns)
    assert (r.rc, r.out) == (0, 'pod "b" deleted\npod "c" deleted\n'), r.err
    r = cluster.pk("delete", "pod", "nope", ns=ns)
    assert (r.rc, r.err) == (1, 'Error from server (NotFound): pods "nope" not found\n')
    assert cluster.pk("delete", "pod", "nope", "--ignore-not-found", ns=ns).rc == 0
    r = cluster.pk("delete", "pods", ns=ns)
    assert (r.rc, r.err) == (1, "error: resource(s) were provided, but no name was specified\n")
    r = cluster.pk("delete", "pods", "--all", "-o", "name", ns=ns)
    assert (r.rc, r.out) == (0, "pod/d\n")
    assert cluster.client.list(R.PODS, ns)["items"] == []
    path = manifest(tmp_path, WEB)
    cluster.pk("apply", "-f", path, ns=ns)
    r = cluster.pk("delete", "-f", path, ns=ns)
    assert (r.rc, r.out) == (0, 'pod "web" deleted\nservice "web" deleted\n'), r.err
    r = cluster.pk("delete", "pods", "--all", ns=ns)
    assert (r.rc, r.err) == (0, "No resources found\n")


def test_delete_waits_for_finalizers(cluster, ns):
    cluster.client.create(R.PODS, pod_body("fin", finalizers=["example.com/block"]), namespace=ns)

    def release():
        time.sleep(1.5)
        cluster.client.patch(R.PODS, "fin", {"metadata": {"finalizers": None}}, ns)

    t = threading.Thread(target=release, daemon=True)
    t.start()
    start = time.monotonic()
    r = cluster.pk("delete", "pod", "fin", "--timeout=20s", ns=ns)
    elapsed = time.monotonic() - start
    t.join(10)
    assert r.rc == 0, r.err
    assert r.out == 'pod "fin" deleted\n'
    assert 'waiting for pod "fin" to be deleted (finalizers: example.com/block)' in r.err
    assert 1.3 < elapsed < 15
    assert cluster.client.list(R.PODS, ns)["items"] == []


def test_delete_timeout_and_no_wait(cluster, ns):
    cluster.client.create(R.PODS, pod_body("stuck", finalizers=["example.com/block"]), namespace=ns)
    try:
        start = time.monotonic()
        r = cluster.pk("delete", "pod", "stuck", "--timeout=1s", ns=ns)
        assert r.rc == 1 and r.out == 'pod "stuck" deleted\n'
        assert r.err.endswith("error: timed out waiting for the condition on pods/stuck\n")
        assert time.monotonic() - start < 10
        start = time.monotonic()
        r = cluster.pk("delete", "pod", "stuck", "--wait=false", ns=ns)
        assert (r.rc, r.out) == (0, 'pod "stuck" deleted\n') and time.monotonic() - start < 5
        assert cluster.client.get(R.PODS, "stuck", ns)["metadata"]["deletionTimestamp"]
    finally:
        cluster.client.patch(R.PODS, "stuck", {"metadata": {"finalizers": None}}, ns)


# ------------------------------------------------------------------ run, expose
def test_run_and_expose(cluster, ns):
    r = cluster.pk("run", "web", "--image=busybox", "--port=8080", "--env=A=1", "--", "httpd", "-f", ns=ns)
    assert (r.rc, r.out) == (0, "pod/web created\n"), r.err
    pod = cluster.client.get(R.PODS, "web", ns)
    c = pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"] == {"run": "web"}
    assert (c["name"], c["image"], c["args"]) == ("web", "busybox", ["httpd", "-f"])
    assert c["ports"][0]["containerPort"] == 8080 and c["env"] == [{"name": "A", "value": "1"}]
    r = cluster.pk("run", "job", "--image=busybox", "--restart=Never", "--command", "--", "sleep", "5", ns=ns)
    assert r.rc == 0
    pod = cluster.client.get(R.PODS, "job", ns)
    assert pod["spec"]["containers"][0]["command"] == ["sleep", "5"] and pod["spec"]["restartPolicy"] == "Never"

    r = cluster.pk("expose", "pod", "web", "--port=80", "--target-port=8080", ns=ns)
    assert (r.rc, r.out) == (0, "service/web exposed\n"), r.err
    svc = cluster.client.get(R.SERVICES, "web", ns)
    assert svc["spec"]["selector"] == {"run": "web"}
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, 8080)]
    r = cluster.pk("expose", "svc/web", "--name=web2", "--type=NodePort", ns=ns)
    assert (r.rc, r.out) == (0, "service/web2 exposed\n"), r.err
    svc2 = cluster.client.get(R.SERVICES, "web2", ns)
    assert svc2["spec"]["selector"] == {"run": "web"} and svc2["spec"]["type"] == "NodePort"
    r = cluster.pk("expose", "pod", "job", "--name", "nolabels", "--selector", "run=job", ns=ns)
    assert r.rc == 1 and "couldn't find port" in r.err
    r = cluster.pk("expose", "deployment", "web", "--port=80", ns=ns)
    assert r.rc == 1 and 'the server doesn\'t have a resource type "deployment"' in r.err
    r = cluster.pk("expose", "pod", "ghost", "--port=80", ns=ns)
    assert (r.rc, r.err) == (1, 'Error from server (NotFound): pods "ghost" not found\n')


# ------------------------------------------------------------------ label, annotate
def test_label_and_annotate(cluster, ns):
    cluster.client.create(R.PODS, pod_body("web", {"app": "web"}), namespace=ns)
    cluster.client.create(R.PODS, pod_body("db", {"app": "db"}), namespace=ns)
    assert cluster.pk("label", "pod", "web", "tier=fe", ns=ns).out == "pod/web labeled\n"
    r = cluster.pk("label", "pod", "web", "tier=be", ns=ns)
    assert (r.rc, r.err) == (1, "error: 'tier' already has a value (fe), and --overwrite is false\n")
    assert cluster.pk("label", "pod", "web", "tier=be", "--overwrite", ns=ns).rc == 0
    assert cluster.client.get(R.PODS, "web", ns)["metadata"]["labels"] == {"app": "web", "tier": "be"}
    assert cluster.pk("label", "pod/web", "tier-", ns=ns).out == "pod/web labeled\n"
    assert cluster.pk("label", "pod", "web", "app=web", ns=ns).out == "pod/web not labeled\n"
    r = cluster.pk("label", "pods", "--all", "env=test", ns=ns)
    assert r.out == "pod/db labeled\npod/web labeled\n"
    assert cluster.client.get(R.PODS, "db", ns)["metadata"]["labels"] == {"app": "db", "env": "test"}
    assert cluster.pk("annotate", "pod", "web", "note=hello world", ns=ns).out == "pod/web annotated\n"
    assert cluster.client.get(R.PODS, "web", ns)["metadata"]["annotations"] == {"note": "hello world"}
    assert cluster.pk("annotate", "pod", "web", "note-", ns=ns).out == "pod/web annotated\n"
    assert not cluster.client.get(R.PODS, "web", ns)["metadata"].get("annotations")
    r = cluster.pk("label", "pod", "nope", "a=b", ns=ns)
    assert (r.rc, r.err) == (1, 'Error from server (NotFound): pods "nope" not found\n')


# ------------------------------------------------------------------ logs, exec, errors
def test_logs_and_exec_without_a_kubelet_fail_clearly(cluster, ns):
    # No kubelet serves this pod: the server refuses (its exact reason depends on how far
    # the relay is built), and pkctl must turn that into one kubectl-style line.
    cluster.client.create(R.PODS, pod_body("web"), namespace=ns)
    for argv in (("logs", "web"), ("logs", "-f", "web"), ("exec", "web", "--", "ls")):
        r = cluster.pk(*argv, ns=ns)
        assert r.rc == 1, argv
        assert r.err.startswith("Error from server (") and r.err.count("\n") == 1, (argv, r.err)
        assert "Traceback" not in r.err
    r = cluster.pk("logs", "nope", ns=ns)
    assert (r.rc, r.err) == (1, 'Error from server (NotFound): pods "nope" not found\n')


def test_connection_refused_and_config_errors(cluster, tmp_path):
    port = free_port()
    r = cluster.proc("-s", f"http://127.0.0.1:{port}", "get", "pods", kubeconfig=False,
                     env={"KUBECONFIG": str(tmp_path / "none")})
    assert r.rc == 1
    assert r.err == (f"The connection to the server 127.0.0.1:{port} was refused - "
                     "did you specify the right host or port?\n")
    r = cluster.proc("--kubeconfig", str(tmp_path / "missing"), "get", "pods", kubeconfig=False)
    assert r.rc == 1 and r.err.startswith("error: kubeconfig ") and "does not exist" in r.err
    assert "Traceback" not in r.err
    # $KUBECONFIG is honoured, and the context's namespace is the default namespace
    kc = write_kubeconfig(str(tmp_path / "kc"), cluster.server.url, token=None, namespace="kube-system")
    r = cluster.proc("get", "svc", "kube-dns", "-o", "name", kubeconfig=False, env={"KUBECONFIG": kc})
    assert (r.rc, r.out) == (0, "service/kube-dns\n") or r.rc == 1 and "NotFound" in r.err
    r = cluster.proc("get", "pods", "-o", "name", kubeconfig=False, env={"KUBECONFIG": kc})
    assert r.rc == 0 and ("No resources found in kube-system namespace." in r.err or r.out)


def test_unauthorized_token(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("s3cret,admin,1\n")
    server = ApiServer(str(tmp_path), token_file=str(tokens)).start()
    try:
        kc = write_kubeconfig(str(tmp_path / "kc"), server.url, token="wrong")
        out, err = io.StringIO(), io.StringIO()
        rc = main(["--kubeconfig", kc, "get", "pods"], stdout=out, stderr=err)
        assert rc == 1 and err.getvalue() == "error: You must be logged in to the server (Unauthorized)\n"
        out, err = io.StringIO(), io.StringIO()
        rc = main(["--kubeconfig", kc, "--token", "s3cret", "get", "ns", "default", "-o", "name"],
                  stdout=out, stderr=err)
        assert (rc, out.getvalue()) == (0, "namespace/default\n"), err.getvalue()
    finally:
        server.stop()


# ------------------------------------------------------------------ fidelity to kubectl
@pytest.mark.parametrize("argv", [
    ("get", "pods"), ("get", "pods", "-o", "wide"), ("get", "pods,svc"), ("get", "svc", "-o", "wide"),
    ("get", "all"), ("get", "pod", "web", "db"), ("get", "pods", "--show-labels"), ("get", "pods", "-o", "name"),
    ("get", "endpoints"),
])
def test_tables_match_stock_kubectl(cluster, ns, tmp_path, argv):
    """The same server, the same command: pkctl prints exactly what kubectl 1.33 prints."""
    from .kubectlutil import Kubectl
    kubectl = Kubectl(33, cluster.server.url, str(tmp_path / "kcache"))
    cluster.pk("apply", "-f", manifest(tmp_path, WEB), ns=ns)
    cluster.client.create(R.PODS, pod_body("db", {"app": "db"}), namespace=ns)
    for _ in range(3):  # an AGE cell may tick between the two commands
        ours = cluster.pk(*argv, ns=ns)
        theirs = kubectl.run("-n", ns, *argv, check=False)
        if ours.out == theirs.stdout:
            break
    assert (ours.rc, ours.out, ours.err) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_empty_and_not_found_match_stock_kubectl(cluster, ns, tmp_path):
    from .kubectlutil import Kubectl
    kubectl = Kubectl(33, cluster.server.url, str(tmp_path / "kcache"))
    for argv in (("get", "pods"), ("get", "pod", "nope"), ("get", "nodes", "-l", "x=y")):
        ours = cluster.pk(*argv, ns=ns)
        theirs = kubectl.run("-n", ns, *argv, check=False)
        assert (ours.rc, ours.out, ours.err) == (theirs.returncode, theirs.stdout, theirs.stderr), argv


def test_describe_matches_stock_kubectl(cluster, ns, tmp_path):
    from .kubectlutil import Kubectl
    kubectl = Kubectl(33, cluster.server.url, str(tmp_path / "kcache"))
    cluster.pk("apply", "-f", manifest(tmp_path, WEB), ns=ns)
    pod = cluster.client.get(R.PODS, "web", ns)
    cluster.client.create_event(pod, "Scheduled", f"Successfully assigned {ns}/web to n1",
                                component="default-scheduler")
    running = {"phase": "Running", "hostIP": "100.64.0.2", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
               "startTime": "2025-01-01T00:00:00Z", "qosClass": "BestEffort",
               "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
               "containerStatuses": [
                   {"name": "main", "ready": True, "restartCount": 2, "image": "nginx:1.25", "imageID": "sha256:abc",
                    "containerID": "pocketkube://1", "state": {"running": {"startedAt": "2025-01-01T00:00:01Z"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": "2025-01-01T00:00:00Z",
                                                 "finishedAt": "2025-01-01T00:00:01Z"}}},
                   {"name": "side", "ready": False, "restartCount": 0, "image": "busybox:1.36", "imageID": "",
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "image not found"}}}]}
    pod = cluster.client.get(R.PODS, "web", ns)
    pod["spec"]["nodeName"] = "n1"
    cluster.client.update_status(R.PODS, {**pod, "status": running}, ns)
    cluster.client.create(R.LEASES, {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "me"}}, ns)
    for argv in (("pod", "web"), ("svc", "web"), ("lease", "lock"), ("ns", ns), ("pods",)):
        for _ in range(3):  # an event's age may tick between the two commands
            ours = cluster.pk("describe", *argv, ns=ns)
            theirs = kubectl.run("-n", ns, "describe", *argv, check=False)
            if ours.out == theirs.stdout:
                break
        assert (ours.rc, ours.out) == (theirs.returncode, theirs.stdout), argv


def test_apply_interoperates_with_kubectl_apply(cluster, ns, tmp_path):
    """Both record the same last-applied annotation, so either tool can take over from the other."""
    from .kubectlutil import Kubectl
    kubectl = Kubectl(33, cluster.server.url, str(tmp_path / "kcache"))
    path = manifest(tmp_path, WEB)
    assert kubectl.run("-n", ns, "apply", "-f", path).stdout == "pod/web created\nservice/web created\n"
    assert cluster.pk("apply", "-f", path, ns=ns).out == "pod/web unchanged\nservice/web unchanged\n"
    path = manifest(tmp_path, WEB.replace("nginx:1.25", "nginx:1.26").replace(", tier: front", ""))
    r = cluster.pk("apply", "-f", path, ns=ns)
    assert r.out == "pod/web configured\nservice/web unchanged\n", r.err
    ann = "kubectl.kubernetes.io/last-applied-configuration"
    ours = cluster.client.get(R.PODS, "web", ns)["metadata"]["annotations"][ann]
    assert kubectl.run("-n", ns, "apply", "-f", path).stdout == "pod/web unchanged\nservice/web unchanged\n"
    assert cluster.client.get(R.PODS, "web", ns)["metadata"]["annotations"][ann] == ours
    assert cluster.client.get(R.PODS, "web", ns)["metadata"]["labels"] == {"app": "web"}
