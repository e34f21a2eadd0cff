"""Stock kubectl (oldest and newest shipped) against a real server: discovery, Tables, create/apply/delete."""
from __future__ import annotations

import json
import textwrap

import pytest

from .kubectlutil import Kubectl

MANIFEST = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata:
      name: web-0
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: nginx:1.25
        ports:
        - containerPort: 80
      - name: side
        image: busybox:1.36
    """)


@pytest.fixture(params=[27, 33])
def kubectl(request, sqlite_server, tmp_path):
    return Kubectl(request.param, sqlite_server.url, str(tmp_path / "kcache"))


def test_version_and_api_resources(kubectl):
    out = kubectl.run("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.33.0"
    out = kubectl.run("api-resources").stdout
    for name in ("pods", "services", "endpoints", "nodes", "namespaces", "events", "leases", "ingresses"):
        assert name in out
    assert " po " in out.replace("\t", " ") or "po   " in out


def test_create_get_table_apply_describe_delete(kubectl, tmp_path):
    f = tmp_path / "pod.yaml"
    f.write_text(MANIFEST)
    out = kubectl.run("create", "-f", str(f)).stdout
    assert "pod/web-0 created" in out
    out = kubectl.run("get", "pods").stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert out.splitlines()[1].split()[:4] == ["web-0", "0/2", "Pending", "0"]
    wide = kubectl.run("get", "po", "-o", "wide").stdout.splitlines()[0]
    assert "IP" in wide and "NODE" in wide and "NOMINATED NODE" in wide
    got = json.loads(kubectl.run("get", "pod", "web-0", "-o", "json").stdout)
    assert got["metadata"]["name"] == "web-0"
    # client-side apply twice with a change in between (strategic merge patch)
    kubectl.run("delete", "pod", "web-0", "--wait=true")
    assert "web-0" not in kubectl.run("get", "pods").stdout
    kubectl.run("apply", "-f", str(f))
    f.write_text(MANIFEST.replace("nginx:1.25", "nginx:1.26").replace("app: web", "app: web\n    tier: api"))
    out = kubectl.run("apply", "-f", str(f)).stdout
    assert "configured" in out
    got = json.loads(kubectl.run("get", "pod", "web-0", "-o", "json").stdout)
    assert [c["image"] for c in got["spec"]["containers"]] == ["nginx:1.26", "busybox:1.36"]
    assert got["metadata"]["labels"]["tier"] == "api"
    out = kubectl.run("describe", "pod", "web-0").stdout
    assert "web-0" in out and "nginx:1.26" in out
    kubectl.run("label", "pod", "web-0", "color=blue")
    kubectl.run("annotate", "pod", "web-0", "note=hi")
    got = json.loads(kubectl.run("get", "pod", "web-0", "-o", "json").stdout)
    assert got["metadata"]["labels"]["color"] == "blue" and got["metadata"]["annotations"]["note"] == "hi"
    out = kubectl.run("get", "pods", "-l", "color=blue", "-o", "name").stdout
    assert out.strip() == "pod/web-0"
    kubectl.run("apply", "--server-side", "-f", str(f))


def test_services_nodes_all_and_errors(kubectl, tmp_path):
    out = kubectl.run("get", "svc").stdout
    assert out.splitlines()[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "kubernetes" in out and "10.96.0.1" in out
    assert "kubernetes" in kubectl.run("get", "endpoints").stdout
    out = kubectl.run("get", "all").stdout
    assert "service/kubernetes" in out
    p = kubectl.run("get", "pod", "nope", check=False)
    assert p.returncode != 0 and 'pods "nope" not found' in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST.replace("name: web-0", "name: Bad_Name"))
    p = kubectl.run("create", "-f", str(bad), check=False)
    assert p.returncode != 0 and "is invalid" in p.stderr
    p = kubectl.run("get", "nodes")
    assert p.returncode == 0
    import re
    out = re.sub(r"\x1b\[[0-9;]*m", "", kubectl.run("cluster-info").stdout)
    assert "Kubernetes control plane is running at" in out
