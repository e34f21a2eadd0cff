"""Protobuf request bodies from real clients: kubectl 1.33's typed commands beside kubectl 1.31's JSON.

One SQLite server at the default --kube-version (1.33) serves the module;
each test works in its own namespace. kubectl 1.33 sends protobuf from
`create namespace|configmap|secret|service` (checked in its -v=8 request
log, so the protobuf path is proven to have run); kubectl 1.31 sends the
same objects as JSON, and the stored objects must be the same apart from
what the server assigns. Raw HTTP then feeds the server malformed,
truncated and bit-flipped protobuf: always a 400/415 Status, never a 500.
"""
from __future__ import annotations

import json
import random
import uuid

import httpx
import pytest

import api.protobuf as pb
from api import resources as R
from client.rest import Client

from ..conftest import ApiServer
from .kubectlutil import Kubectl
from .test_configmap_secret_clients import tls_pair

PB = "application/vnd.kubernetes.protobuf"
ASSIGNED = ("uid", "resourceVersion", "creationTimestamp", "name", "namespace", "managedFields")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ApiServer(str(tmp_path_factory.mktemp("pbkubectl"))).start()
    try:
        yield s
    finally:
        s.stop()
        assert "Traceback" not in s.read_log()


@pytest.fixture(scope="module")
def api(srv):
    c = Client(server=srv.url)
    yield c
    c.close()


@pytest.fixture
def ns(api):
    name = "pb-" + uuid.uuid4().hex[:8]
    api.create(R.NAMESPACES, {"metadata": {"name": name}})
    return name


def kubectl(minor: int, srv, tmp_path) -> Kubectl:
    return Kubectl(minor, srv.url, str(tmp_path / f"kcache-{minor}"))


def comparable(obj: dict) -> dict:
    """An object without what the server assigns per object (names differ by client)."""
    obj = json.loads(json.dumps(obj))
    md = obj["metadata"]
    for k in ASSIGNED:
        md.pop(k, None)
    for k in ("app",):
        md.get("labels", {}).pop(k, None)
    spec = obj.get("spec", {})
    for k in ("clusterIP", "clusterIPs", "selector"):
        spec.pop(k, None)
    for p in spec.get("ports", []):
        p.pop("nodePort", None)
        p.pop("name", None)
    return obj


def test_version_default_makes_the_dispatcher_run_kubectl_1_33(srv):
    v = httpx.get(srv.url + "/version", timeout=10).json()
    assert (v["major"], v["minor"], v["gitVersion"]) == ("1", "33", "v1.33.0")


def test_kubectl_1_33_typed_creates_send_protobuf_and_store_what_1_31_json_stores(srv, api, ns, tmp_path):
    new, old = kubectl(33, srv, tmp_path), kubectl(31, srv, tmp_path)
    cert, key = tls_pair(tmp_path)
    (tmp_path / "app.properties").write_text("color=blue\n")
    commands = [
        ("configmaps", ["create", "configmap", "{n}", "--from-literal=a=1", f"--from-file={tmp_path / 'app.properties'}"]),
        ("secrets", ["create", "secret", "generic", "{n}", "--from-literal=password=p4ss", "--type=Opaque"]),
        ("secrets", ["create", "secret", "tls", "{n}", f"--cert={cert}", f"--key={key}"]),
        ("secrets", ["create", "secret", "docker-registry", "{n}", "--docker-server=registry.test:5000",
                     "--docker-username=me", "--docker-password=pw"]),
        ("services", ["create", "service", "clusterip", "{n}", "--tcp=80:8080"]),
        ("services", ["create", "service", "clusterip", "{n}", "--clusterip=None"]),
        ("services", ["create", "service", "nodeport", "{n}", "--tcp=80:8080"]),
    ]
    for i, (plural, argv) in enumerate(commands):
        rt = R.resolve(plural)
        got = {}
        for k, tag in ((new, "n"), (old, "o")):
            name = f"{tag}{i}"
            p = k.run("-n", ns, *[a.replace("{n}", name) for a in argv], "-v=8")
            assert "created" in p.stdout
            sent = "protobuf" if "Content-Type: " + PB in p.stderr else "json"   # the request headers, -v=8
            got[tag] = (api.get(rt, name, ns), sent)
        assert got["n"][1] == "protobuf", f"kubectl 1.33 `{' '.join(argv)}` did not send protobuf"
        assert got["o"][1] == "json"
        assert comparable(got["n"][0]) == comparable(got["o"][0]), argv


def test_kubectl_1_33_create_namespace_and_delete_with_cascade(srv, api, tmp_path):
    k = kubectl(33, srv, tmp_path)
    name = "pbns-" + uuid.uuid4().hex[:6]
    p = k.run("create", "namespace", name, "-v=8")
    assert p.stdout == f"namespace/{name} created\n" and "Content-Type: " + PB in p.stderr
    assert api.get(R.NAMESPACES, name)["status"]["phase"] == "Active"
    for cascade in ("background", "foreground", "orphan"):
        k.run("-n", name, "create", "configmap", f"c-{cascade}", "--from-literal=a=b")
        out = k.run("-n", name, "delete", "configmap", f"c-{cascade}", f"--cascade={cascade}").stdout
        assert out == f'configmap "c-{cascade}" deleted\n'
    k.run("delete", "namespace", name, "--wait=false")


def test_kubectl_1_33_create_deployment_fails_cleanly_until_the_kind_exists(srv, ns, tmp_path):
    p = kubectl(33, srv, tmp_path).run("-n", ns, "create", "deployment", "web", "--image=nginx", check=False)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "500" not in p.stderr and "Internal" not in p.stderr


# ------------------------------------------------------------------ raw HTTP
def cm_body(name: str, ns: str) -> bytes:
    return pb.encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
                      "data": {"a": "1"}})


def test_protobuf_put_delete_options_and_unknown_field_warnings(srv, ns):
    url = f"{srv.url}/api/v1/namespaces/{ns}/configmaps"
    with httpx.Client(timeout=10, headers={"Content-Type": PB}) as h:
        c = pb.default_codec()
        api_version, kind, raw = c.unwrap(cm_body("w", ns))
        r = h.post(url, content=c.wrap(api_version, kind, raw + b"\x98\x06\x05"))
        assert r.status_code == 201, r.text
        assert 'unknown field number 99 in ConfigMap' in r.headers["warning"] and r.headers["warning"].startswith("299 - ")
        assert "99" not in json.dumps(r.json()["data"])
        r = h.post(url + "?fieldValidation=Ignore", content=c.wrap(api_version, kind, raw.replace(b"\n\x01w", b"\n\x01x") + b"\x98\x06\x05"))
        assert r.status_code == 201 and "warning" not in r.headers
        cur = r.json()
        upd = {**cur, "data": {"a": "2"}}
        r = h.put(f"{url}/x", content=pb.encode(upd))
        assert r.status_code == 200 and r.json()["data"] == {"a": "2"}
        r = h.request("DELETE", f"{url}/x", content=pb.encode({"apiVersion": "v1", "kind": "Namespace",
                                                               "metadata": {"name": "n"}}))
        assert r.status_code == 400 and r.json()["kind"] == "Status"
        r = h.request("DELETE", f"{url}/x", content=pb.encode({"apiVersion": "v1", "kind": "DeleteOptions",
                                                               "gracePeriodSeconds": 0}))
        assert r.status_code == 200, r.text
        r = h.post(url, content=c.wrap("policy/v1", "Eviction", b""))
        assert r.status_code == 415 and "Eviction (policy/v1)" in r.json()["message"]


def test_malformed_protobuf_bodies_are_400_never_500(srv, ns):
    good = cm_body("fz", ns)
    rng = random.Random(14)
    bodies = [good[:n] for n in range(0, len(good), 3)]
    for _ in range(250):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        bodies.append(bytes(b))
    bodies += [b"k8s\x00" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))) for _ in range(50)]
    url = f"{srv.url}/api/v1/namespaces/{ns}/configmaps"
    seen = set()
    with httpx.Client(timeout=10, headers={"Content-Type": PB}) as h:
        for i, b in enumerate(bodies):
            r = h.post(url, content=b) if i % 2 else h.put(f"{url}/fz", content=b)
            seen.add(r.status_code)
            assert r.status_code < 500, (r.status_code, b, r.text)
            if r.status_code >= 400:
                assert r.json()["kind"] == "Status"
        assert h.get(srv.url + "/readyz").status_code == 200
    assert seen & {400}
