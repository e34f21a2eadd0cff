"""Protobuf request bodies from real clients: kubectl 1.33's typed commands beside kubectl 1.31's JSON.

One real API server (SQLite, `--kube-version v1.33.0`) serves the module;
each test works in namespaces of its own.

* kubectl 1.33 sends protobuf from `create namespace|configmap|secret|service`.
  The request log (-v=10) is parsed, so each test proves the POST really
  carried `Content-Type: application/vnd.kubernetes.protobuf` and a `k8s\\0`
  body. The same commands through kubectl 1.31 send JSON; the decoded
  protobuf body must be the JSON body, and the stored objects must be equal
  apart from what the server assigns per object.
* `delete --cascade=...`: kubectl 1.33 still sends DeleteOptions as JSON
  (checked, and accepted either way). `create deployment` (no Deployment kind
  yet) must be kubectl's clean NotFound error; replaying kubectl's own
  protobuf Deployment body over HTTP must be a 404 Status.
* Raw HTTP: unknown fields (dropped, a `Warning: 299` header unless
  fieldValidation=Ignore), protobuf PUT, DeleteOptions and Binding bodies, a
  Pod decoded from protobuf equal to the same Pod from JSON, invalid UTF-8 in
  string fields, and a seeded fuzz loop of truncated, bit-flipped and random
  bodies for POST, PUT and DELETE: a 400 (415 for a kind without a schema)
  metav1 Status where the codec refuses the body, never a 500.
* The official Python client (JSON) still works.

The last test checks the server is alive and its log has no Traceback.
"""
from __future__ import annotations

import base64
import copy
import json
import random
import re
import subprocess
import uuid
from dataclasses import dataclass

import httpx
import pytest

import api.protobuf as pb

from ..conftest import ApiServer
from .kubectlutil import Kubectl

PB = "application/vnd.kubernetes.protobuf"
CORE = "k8s.io.api.core.v1."
META = "k8s.io.apimachinery.pkg.apis.meta.v1."


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = ApiServer(str(tmp_path_factory.mktemp("pbkubectl")), extra_args=["--kube-version", "v1.33.0"]).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def http(srv):
    with httpx.Client(base_url=srv.url, timeout=15) as c:
        yield c


@pytest.fixture(scope="module")
def kcache(tmp_path_factory):
    """One kubectl cache dir per version for the module (discovery is cached, so later runs are faster)."""
    return tmp_path_factory.mktemp("kcache")


def kubectl(minor: int, srv, kcache) -> Kubectl:
    return Kubectl(minor, srv.url, str(kcache / f"1.{minor}"))


def make_ns(http: httpx.Client, prefix: str = "pb") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    r = http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert r.status_code == 201, r.text
    return name


@pytest.fixture
def ns(http):
    return make_ns(http)


def status_body(r: httpx.Response) -> dict:
    """The response must be a metav1 Status whose code is the HTTP status."""
    assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.headers, r.text[:300])
    body = r.json()
    assert body["kind"] == "Status" and body["code"] == r.status_code, body
    return body


# ------------------------------------------------------------------ kubectl request logs
@dataclass
class Req:
    verb: str
    url: str
    headers: dict[str, str]
    body: bytes | None


_HEX = re.compile(r"^\s*[0-9a-f]{8}  ((?:[0-9a-f]{2} {1,2}){1,16})")


def _body_from_block(lines: list[str]) -> bytes:
    """A "Request Body" block: a hexdump -C of binary bodies (protobuf), else the text itself (JSON)."""
    if lines and all(_HEX.match(x) for x in lines):
        return bytes.fromhex("".join(_HEX.match(x).group(1).replace(" ", "") for x in lines))
    return "\n".join(x.strip() for x in lines).encode()


def requests_of(stderr: str) -> list[Req]:
    """The requests in a kubectl -v=10 log (1.31's line format or 1.32+'s klog blocks).

    -v=10 because lower levels truncate long bodies; each request is its curl line, after its body.
    """
    lines = stderr.splitlines()
    out: list[Req] = []
    body: bytes | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if '"Request Body" body=<' in line:                              # 1.32+: a block
            block = []
            while i < len(lines) and lines[i].strip() != ">":
                block.append(lines[i])
                i += 1
            body = _body_from_block(block)
            continue
        m = re.search(r'"Request Body" body="(.*)"$', line)               # 1.32+: one line (empty bodies)
        if m:
            body = json.loads('"' + m.group(1) + '"').encode()
            continue
        m = re.search(r"\] Request Body: (.*)$", line)                    # 1.31
        if m:
            body = m.group(1).encode()
            continue
        m = re.search(r"curl -v -X([A-Z]+) (.*) '([^']+)'$", line)
        if m:
            headers = {}
            for h in re.findall(r'-H "([^"]*)"', m.group(2)):
                k, _, v = h.partition(": ")
                headers[k.lower()] = v
            out.append(Req(m.group(1), m.group(3), headers, body))
            body = None
    return out


def only(reqs: list[Req], verb: str, path_part: str) -> Req:
    got = [r for r in reqs if r.verb == verb and path_part in r.url]
    assert len(got) == 1, (verb, path_part, [(r.verb, r.url) for r in reqs])
    return got[0]


def pruned(v):
    """A JSON value without nulls and empty objects/lists: what Go's omitempty may or may not write."""
    if isinstance(v, dict):
        out = {k: pruned(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not None and x != {} and x != []}
    if isinstance(v, list):
        return [pruned(x) for x in v]
    return v


# ------------------------------------------------------------------ 1. + 2.: typed creates, 1.33 protobuf vs 1.31 JSON
ASSIGNED_MD = ("uid", "resourceVersion", "creationTimestamp", "managedFields")


def comparable(obj: dict, name_of: dict[str, str]) -> dict:
    """A stored object without what the server assigns per object; namespace/names replaced by placeholders."""
    text = json.dumps(obj)
    for real, placeholder in name_of.items():
        text = text.replace(json.dumps(real)[1:-1], placeholder)
    obj = json.loads(text)
    md = obj["metadata"]
    for k in ASSIGNED_MD:
        md.pop(k, None)
    spec = obj.get("spec") or {}
    if spec.get("clusterIP") not in (None, "None"):       # an allocated address (headless stays "None")
        spec.pop("clusterIP")
        spec.pop("clusterIPs", None)
    for p in spec.get("ports") or []:
        p.pop("nodePort", None)
    return obj


CREATES = {
    "configmap": ("configmaps", ["create", "configmap", "NAME", "--from-literal=a=1", "--from-literal=b=two words",
                                 "--from-file=FILE"]),
    "secret-generic": ("secrets", ["create", "secret", "generic", "NAME", "--from-literal=password=p4ss",
                                   "--from-file=FILE", "--type=Opaque"]),
    "secret-tls": ("secrets", ["create", "secret", "tls", "NAME", "--cert=CERT", "--key=KEY"]),
    "secret-docker-registry": ("secrets", ["create", "secret", "docker-registry", "NAME",
                                           "--docker-server=registry.test:5000", "--docker-username=me",
                                           "--docker-password=pw", "--docker-email=me@example.test"]),
    "service-clusterip": ("services", ["create", "service", "clusterip", "NAME", "--tcp=80:8080", "--tcp=443:8443"]),
    "service-headless": ("services", ["create", "service", "clusterip", "NAME", "--clusterip=None", "--tcp=53:5353"]),
    "service-nodeport": ("services", ["create", "service", "nodeport", "NAME", "--tcp=80:8080"]),
}


def arg(a: str, name: str, files: dict[str, str]) -> str:
    """A CREATES argument with NAME and the FILE/CERT/KEY placeholders filled in."""
    if a == "NAME":
        return name
    flag, eq, value = a.partition("=")
    return f"{flag}={files[value]}" if eq and value in files else a


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    (d / "app.properties").write_text("color=blue\nsize=3\n")
    cert, key = d / "tls.crt", d / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=web",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return {"FILE": str(d / "app.properties"), "CERT": str(cert), "KEY": str(key)}


def test_version_reports_1_33(http):
    v = http.get("/version").json()
    assert (v["major"], v["minor"], v["gitVersion"]) == ("1", "33", "v1.33.0")


@pytest.mark.parametrize("case", list(CREATES))
def test_kubectl_1_33_protobuf_create_stores_what_1_31_json_stores(case, srv, http, kcache, files):
    plural, argv = CREATES[case]
    name = "obj-" + uuid.uuid4().hex[:6]
    stored, sent = {}, {}
    for minor in (33, 31):
        ns = make_ns(http, f"pb{minor}")
        p = kubectl(minor, srv, kcache).run("-n", ns, *[arg(a, name, files) for a in argv], "-v=10")
        assert p.stdout.endswith(" created\n"), p.stdout
        assert "Warning:" not in p.stderr, p.stderr[-2000:]
        req = only(requests_of(p.stderr), "POST", f"/api/v1/namespaces/{ns}/{plural}?")
        assert "fieldManager=kubectl-create" in req.url
        r = http.get(f"/api/v1/namespaces/{ns}/{plural}/{name}")
        assert r.status_code == 200, r.text
        stored[minor] = comparable(r.json(), {ns: "NS"})
        if minor == 33:
            assert req.headers["content-type"] == PB, req.headers     # the protobuf path ran
            assert req.body.startswith(pb.MAGIC), req.body[:20]
            obj, unknown = pb.decode(req.body, want_unknown=True)
            assert unknown == []                                     # the schema knows every field 1.33 sends
            sent[33] = comparable(obj, {ns: "NS"})
        else:
            assert req.headers["content-type"] == "application/json", req.headers
            sent[31] = comparable(json.loads(req.body), {ns: "NS"})
    assert pruned(sent[33]) == pruned(sent[31])    # the decoded protobuf body is the JSON body
    assert stored[33] == stored[31]                # and the server stored the same object


def test_kubectl_1_33_create_namespace_protobuf_like_1_31_json(srv, http, kcache):
    stored, sent = {}, {}
    for minor in (33, 31):
        name = f"pbns{minor}-" + uuid.uuid4().hex[:6]
        p = kubectl(minor, srv, kcache).run("create", "namespace", name, "-v=10")
        assert p.stdout == f"namespace/{name} created\n"
        req = only(requests_of(p.stderr), "POST", "/api/v1/namespaces?")
        assert req.headers["content-type"] == (PB if minor == 33 else "application/json")
        sent[minor] = pb.decode(req.body)[0] if minor == 33 else json.loads(req.body)
        obj = http.get(f"/api/v1/namespaces/{name}").json()
        assert obj["status"]["phase"] == "Active"
        stored[minor] = comparable(obj, {name: "NAME"})
    # 1.31 sends "spec": {} (Go's JSON never omits a struct); the decoded protobuf has no spec at all
    assert stored[33] == stored[31], (f"sent: 1.33 decoded {sent[33]} vs 1.31 JSON {sent[31]}; "
                                      "stored objects differ (the registry sets generation only when spec is present)")


# ------------------------------------------------------------------ delete --cascade
def test_kubectl_1_33_delete_with_each_cascade(srv, http, kcache, ns):
    k = kubectl(33, srv, kcache)
    k.run("-n", ns, "create", "configmap", "cm", "--from-literal=a=b")
    k.run("-n", ns, "create", "secret", "generic", "sec", "--from-literal=a=b")
    k.run("-n", ns, "create", "service", "nodeport", "svc", "--tcp=80:8080")
    k.run("-n", ns, "create", "service", "clusterip", "hl", "--clusterip=None")
    for (plural, name), cascade in zip([("configmaps", "cm"), ("secrets", "sec"), ("services", "svc"), ("services", "hl")],
                                       ["foreground", "background", "orphan", "foreground"]):
        p = k.run("-n", ns, "delete", plural, name, f"--cascade={cascade}", "-v=10")
        assert p.stdout == f'{plural[:-1]} "{name}" deleted\n', p.stdout
        req = only(requests_of(p.stderr), "DELETE", f"/{plural}/{name}")
        # kubectl 1.33 sends DeleteOptions as JSON today; a protobuf one must say the same.
        if req.headers.get("content-type") == PB:
            opts = pb.decode(req.body)[0]
        else:
            assert req.headers["content-type"] == "application/json"
            opts = json.loads(req.body)
        assert opts.get("propagationPolicy") == cascade.capitalize(), opts
        assert http.get(f"/api/v1/namespaces/{ns}/{plural}/{name}").status_code == 404
    other = make_ns(http)
    p = k.run("delete", "namespace", other, "--cascade=background", "-v=10")
    assert p.stdout == f'namespace "{other}" deleted\n'
    r = http.get(f"/api/v1/namespaces/{other}")
    assert r.status_code == 404 or r.json()["status"]["phase"] == "Terminating"


def test_delete_dry_run_in_the_body_keeps_the_object(srv, http, kcache, ns):
    """kubectl delete --dry-run=server puts dryRun in the DeleteOptions body (no query parameter)."""
    k = kubectl(33, srv, kcache)
    k.run("-n", ns, "create", "configmap", "keep", "--from-literal=a=b")
    p = k.run("-n", ns, "delete", "configmap", "keep", "--dry-run=server", "-v=10")
    req = only(requests_of(p.stderr), "DELETE", "/configmaps/keep")
    assert "dryRun" not in req.url and json.loads(req.body)["dryRun"] == ["All"]
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/keep").status_code == 200, \
        "kubectl delete --dry-run=server deleted the object: DeleteOptions.dryRun in the body is ignored"
    r = http.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/keep", headers={"Content-Type": PB},
                     content=pb.encode({"apiVersion": "v1", "kind": "DeleteOptions", "dryRun": ["All"]}))
    assert r.status_code == 200, r.text
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/keep").status_code == 200, \
        "a protobuf DeleteOptions{dryRun: [All]} deleted the object"


# ------------------------------------------------------------------ create deployment (no such kind yet)
def test_kubectl_1_33_create_deployment_is_a_clean_not_found(srv, http, kcache, ns):
    k = kubectl(33, srv, kcache)
    p = k.run("-n", ns, "create", "deployment", "web", "--image=nginx", "-v=10", check=False)
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == "error: failed to create deployment: the server could not find the requested resource"
    req = only(requests_of(p.stderr), "POST", f"/apis/apps/v1/namespaces/{ns}/deployments?")
    assert req.headers["content-type"] == PB and req.body.startswith(pb.MAGIC)
    assert re.search(r'verb="POST" url="[^"]*/deployments[^"]*" status="404 Not Found"', p.stderr)
    # kubectl's own protobuf Deployment body, replayed: a 404 Status, not a 415/500
    r = http.post(f"/apis/apps/v1/namespaces/{ns}/deployments", content=req.body, headers={"Content-Type": PB})
    assert r.status_code == 404 and status_body(r)["reason"] == "NotFound"
    p = k.run("-n", ns, "get", "deployments", check=False)
    assert p.returncode == 1 and p.stderr.strip() == 'error: the server doesn\'t have a resource type "deployments"'


# ------------------------------------------------------------------ 3. raw HTTP
def varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num: int, raw: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(num << 3 | 2) + varint(len(raw)) + raw


UNKNOWN_99 = b"\x98\x06\x05"    # field 99, varint 5: in no Kubernetes message


def cm(name: str, ns: str, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": {"app": "x"}},
            "data": {"a": "1"}, **extra}


def test_unknown_protobuf_fields_are_dropped_with_a_warning(http, ns):
    c = pb.default_codec()
    url = f"/api/v1/namespaces/{ns}/configmaps"
    H = {"Content-Type": PB}
    r = http.post(url, content=pb.encode(cm("plain", ns)), headers=H)
    assert r.status_code == 201 and "warning" not in r.headers
    plain = r.json()
    for q, name in (("", "top"), ("?fieldValidation=Strict", "strict"), ("?fieldValidation=Warn", "warn")):
        av, kind, raw = c.unwrap(pb.encode(cm(name, ns)))
        r = http.post(url + q, content=c.wrap(av, kind, raw + UNKNOWN_99), headers=H)
        assert r.status_code == 201, r.text
        assert r.headers["warning"] == '299 - "unknown field number 99 in ConfigMap (dropped)"', r.headers
        got = http.get(f"{url}/{name}").json()
        assert got["data"] == plain["data"] and got["metadata"]["labels"] == plain["metadata"]["labels"]
        assert set(got) == set(plain) and set(got["metadata"]) == set(plain["metadata"])
    av, kind, raw = c.unwrap(pb.encode(cm("ignored", ns)))
    r = http.post(url + "?fieldValidation=Ignore", content=c.wrap(av, kind, raw + UNKNOWN_99), headers=H)
    assert r.status_code == 201 and "warning" not in r.headers
    # nested: inside metadata, with the path in the warning
    meta = c.encode_message(META + "ObjectMeta", {"name": "nested", "namespace": ns}) + UNKNOWN_99
    body = c.wrap("v1", "ConfigMap", field(1, meta) + c.encode_message(CORE + "ConfigMap", {"data": {"a": "1"}}))
    r = http.post(url, content=body, headers=H)
    assert r.status_code == 201, r.text
    assert r.headers["warning"] == '299 - "unknown field number 99 in ObjectMeta at \\"metadata\\" (dropped)"' or \
        r.headers["warning"] == "299 - \"unknown field number 99 in ObjectMeta at 'metadata' (dropped)\"", r.headers
    assert r.json()["data"] == {"a": "1"}


def test_protobuf_put_updates_and_conflicts(http, ns):
    url = f"/api/v1/namespaces/{ns}/configmaps"
    H = {"Content-Type": PB}
    cur = http.post(url, content=pb.encode(cm("u", ns)), headers=H).json()
    upd = copy.deepcopy(cur)
    upd["data"] = {"a": "2", "b": "new\nline"}
    upd["binaryData"] = {"blob": base64.b64encode(b"\x00\xff").decode()}
    r = http.put(f"{url}/u", content=pb.encode(upd), headers=H)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["data"] == upd["data"] and out["binaryData"] == upd["binaryData"]
    assert int(out["metadata"]["resourceVersion"]) > int(cur["metadata"]["resourceVersion"])
    assert out["metadata"]["uid"] == cur["metadata"]["uid"]
    # the same update through JSON gives the same object (apart from the resourceVersion)
    j = http.put(f"{url}/u", json={**upd, "metadata": {**upd["metadata"], "resourceVersion": out["metadata"]["resourceVersion"]}})
    assert j.status_code == 200
    assert {**j.json(), "metadata": {**j.json()["metadata"], "resourceVersion": "x"}} == \
        {**out, "metadata": {**out["metadata"], "resourceVersion": "x"}}
    r = http.put(f"{url}/u", content=pb.encode(upd), headers=H)     # the stale resourceVersion of `cur`
    assert r.status_code == 409 and status_body(r)["reason"] == "Conflict"
    http.post(url, content=pb.encode(cm("other", ns)), headers=H)
    named_u = {**upd, "metadata": {"name": "u", "namespace": ns}}
    r = http.put(f"{url}/other", content=pb.encode(named_u), headers=H)  # name in the body != the URL's
    assert r.status_code == 400 and "does not match the name on the URL" in status_body(r)["message"]
    # checked before the lookup, as Kubernetes does: a 400 even when nothing is stored under the URL's name
    r = http.put(f"{url}/missing", content=pb.encode(named_u), headers=H)
    assert r.status_code == 400 and "does not match the name on the URL" in status_body(r)["message"]
    r = http.put(f"{url}/missing", json={**named_u, "metadata": {"name": "u", "namespace": "elsewhere"}})
    assert r.status_code == 400, r.text
    assert http.get(f"{url}/missing").status_code == 404


def test_protobuf_delete_options(http, ns):
    url = f"/api/v1/namespaces/{ns}/configmaps"
    H = {"Content-Type": PB}
    for n in ("d1", "d2", "d3"):
        assert http.post(url, content=pb.encode(cm(n, ns)), headers=H).status_code == 201
    r = http.request("DELETE", f"{url}/d1", headers=H,
                     content=pb.encode({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}))
    assert r.status_code == 200 and r.json()["metadata"]["name"] == "d1", r.text
    assert http.get(f"{url}/d1").status_code == 404
    # the preconditions were really decoded: a wrong uid is a 409, the right one deletes
    uid = http.get(f"{url}/d2").json()["metadata"]["uid"]
    wrong = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "not-" + uid}, "propagationPolicy": "Orphan"}
    r = http.request("DELETE", f"{url}/d2", headers=H, content=pb.encode(wrong))
    assert r.status_code == 409 and uid in status_body(r)["message"]
    right = {**wrong, "preconditions": {"uid": uid}}
    assert http.request("DELETE", f"{url}/d2", headers=H, content=pb.encode(right)).status_code == 200
    # DeleteOptions is registered in every group version: a meta.k8s.io/v1 envelope is fine too
    r = http.request("DELETE", f"{url}/d3", headers=H,
                     content=pb.encode({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}))
    assert r.status_code == 200, r.text
    # a protobuf body of another kind is a 400
    assert http.post(url, content=pb.encode(cm("d4", ns)), headers=H).status_code == 201
    r = http.request("DELETE", f"{url}/d4", headers=H, content=pb.encode(cm("d4", ns)))
    assert r.status_code == 400 and "DeleteOptions" in status_body(r)["message"]
    r = http.request("DELETE", f"{url}/d4", headers=H, content=pb.default_codec().wrap("policy/v1", "Eviction", b""))
    assert r.status_code in (400, 415) and status_body(r)
    r = http.request("DELETE", f"{url}/d4", headers=H, content=b"k8s\x00\xff\xff")
    assert r.status_code == 400 and status_body(r)
    assert http.get(f"{url}/d4").status_code == 200      # none of those deleted it


def test_kind_without_a_schema_is_415_and_mismatches_are_400(http, ns):
    H = {"Content-Type": PB}
    c = pb.default_codec()
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", content=c.wrap("policy/v1", "Eviction", b""), headers=H)
    assert r.status_code == 415 and "Eviction (policy/v1)" in status_body(r)["message"]
    r = http.post(f"/api/v1/namespaces/{ns}/pods/p/eviction", content=c.wrap("policy/v1", "Eviction", b""), headers=H)
    assert r.status_code in (404, 405, 415) and status_body(r)
    r = http.post(f"/api/v1/namespaces/{ns}/secrets", content=pb.encode(cm("x", ns)), headers=H)
    assert r.status_code == 400 and "ConfigMap" in status_body(r)["message"]
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", content=json.dumps(cm("x", ns)).encode(), headers=H)
    assert r.status_code == 400 and status_body(r)                  # JSON labelled protobuf
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", content=pb.encode(cm("x", ns)),
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and status_body(r)                  # protobuf labelled JSON
    r = http.patch(f"/api/v1/namespaces/{ns}/configmaps/x", content=pb.encode(cm("x", ns)), headers=H)
    assert r.status_code == 415 and status_body(r)
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/x").status_code == 404


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"note": "ä ✓"}},
       "spec": {"containers": [{"name": "web", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 1"],
                                "ports": [{"name": "http", "containerPort": 80}],
                                "env": [{"name": "A", "value": "1"},
                                        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 3}}],
                "terminationGracePeriodSeconds": 0, "restartPolicy": "Never",
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}}


def test_protobuf_pod_equals_json_pod_and_binds(http, ns):
    base = f"/api/v1/namespaces/{ns}/pods"
    stored = {}
    for enc, name in (("pb", "web-pb"), ("json", "web-json")):
        obj = copy.deepcopy(POD)
        obj["metadata"]["name"] = name
        if enc == "pb":
            r = http.post(base, content=pb.encode(obj), headers={"Content-Type": PB})
        else:
            r = http.post(base, json=obj)
        assert r.status_code == 201, r.text
        stored[enc] = comparable(r.json(), {name: "NAME"})
    assert stored["pb"] == stored["json"]
    # pods/binding with a protobuf Binding, and the bindings collection
    b = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web-pb"}, "target": {"kind": "Node", "name": "node-a"}}
    r = http.post(f"{base}/web-pb/binding", content=pb.encode(b), headers={"Content-Type": PB})
    assert r.status_code == 201, r.text
    assert http.get(f"{base}/web-pb").json()["spec"]["nodeName"] == "node-a"
    b["metadata"]["name"] = "web-json"
    r = http.post(f"/api/v1/namespaces/{ns}/bindings", content=pb.encode(b), headers={"Content-Type": PB})
    assert r.status_code == 201, r.text
    assert http.get(f"{base}/web-json").json()["spec"]["nodeName"] == "node-a"
    r = http.post(f"{base}/web-pb/binding", content=pb.encode(b), headers={"Content-Type": PB})
    assert r.status_code in (400, 409) and status_body(r)           # names differ / already bound


EVENT = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev"},
         "involvedObject": {"kind": "Pod", "name": "web", "namespace": "NS"}, "reason": "Started",
         "message": "hello", "type": "Normal", "source": {"component": "kubelet"}}
UTF8_CASES = {   # (collection, object, path of the string whose first byte becomes 0xff)
    "configmap-name": ("configmaps", cm("utf", "NS"), ("metadata", "name")),
    "configmap-data-key": ("configmaps", cm("utf", "NS"), ("data", None)),
    "configmap-data-value": ("configmaps", cm("utf", "NS"), ("data", "a")),
    "configmap-label-value": ("configmaps", cm("utf", "NS"), ("metadata", "labels", "app")),
    "event-involvedObject-name": ("events", EVENT, ("involvedObject", "name")),
    "event-source-component": ("events", EVENT, ("source", "component")),
}


def with_invalid_utf8(obj: dict, path: tuple) -> bytes:
    """obj as a protobuf body whose string at path starts with 0xff (path ending in None: the map's keys)."""
    obj = copy.deepcopy(obj)
    marker = "\x01" + uuid.uuid4().hex[:10]
    cur = obj
    for k in path[:-1]:
        cur = cur[k]
    if path[-1] is None:
        cur.update({marker: v for v in cur.values()})
        for k in [k for k in cur if k != marker]:
            del cur[k]
    else:
        cur[path[-1]] = marker
    body = pb.encode(obj)
    assert body.count(marker.encode()) == 1
    return body.replace(marker.encode(), b"\xff" + marker.encode()[1:])


@pytest.mark.parametrize("case", list(UTF8_CASES))
def test_invalid_utf8_in_a_protobuf_string_is_a_400(http, ns, case):
    """A proto string must be UTF-8, and JSON cannot carry anything else: the JSON path answers such bytes with 400."""
    plural, obj, path = UTF8_CASES[case]
    obj = json.loads(json.dumps(obj).replace('"NS"', json.dumps(ns)))
    r = http.post(f"/api/v1/namespaces/{ns}/{plural}", content=with_invalid_utf8(obj, path), headers={"Content-Type": PB})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert status_body(r)["reason"] == "BadRequest"
    # the JSON path, for comparison: the same bytes in a JSON body are a 400
    j = http.post(f"/api/v1/namespaces/{ns}/{plural}", headers={"Content-Type": "application/json"},
                  content=b'{"metadata": {"name": "\xffx"}}')
    assert j.status_code == 400 and status_body(j)["reason"] == "BadRequest"


def _bodies(ns: str, rng: random.Random) -> list[tuple[str, str, bytes]]:
    """(method, path, body): valid bodies of each kind truncated, bit-flipped, byte-replaced, spliced; random envelopes."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": ns},
           "spec": {"type": "NodePort", "selector": {"app": "x"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
           "type": "Opaque", "data": {"k": base64.b64encode(b"\x00secret").decode()}, "stringData": {"p": "q"}}
    pod = copy.deepcopy(POD)
    pod["metadata"].update(name="s", namespace=ns)
    seeds = [("configmaps", pb.encode(cm("s", ns, binaryData={"b": "AAE="}))), ("secrets", pb.encode(sec)),
             ("services", pb.encode(svc)), ("pods", pb.encode(pod))]
    out: list[tuple[str, str, bytes]] = []
    for i in range(300):
        plural, good = seeds[i % len(seeds)]
        b = bytearray(good)
        how = i % 5
        if how == 0:
            b = b[:rng.randrange(len(b))]
        elif how == 1:
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif how == 2:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(4, len(b))] = rng.choice([0x00, 0x7F, 0x80, 0xFF, 0xC3, 0x08, 0x0A, 0x12, 0x1A])
        elif how == 3:
            at = rng.randrange(4, len(b))
            b = b[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))) + b[at:]
        else:
            b = bytearray(pb.MAGIC + bytes(rng.randrange(256) for _ in range(rng.randint(0, 80))))
        method = ("POST", "PUT", "DELETE")[i % 3] if i % 7 else "DELETE"
        path = f"/api/v1/namespaces/{ns}/{plural}" + ("" if method == "POST" else "/s")
        out.append((method, path, bytes(b)))
    return out


def test_malformed_truncated_and_bit_flipped_protobuf_is_never_a_500(srv, http, ns):
    rng = random.Random(20261207)
    seen: dict[int, int] = {}
    for method, path, body in _bodies(ns, rng):
        r = http.request(method, path, content=body, headers={"Content-Type": PB})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, (method, path, body, r.status_code, r.text[:300])
        if r.status_code >= 400:
            status_body(r)
        # where the codec itself refuses the body, the answer is exactly its 400 / 415
        try:
            obj, _ = pb.decode(body)
        except pb.NoSchema:
            assert r.status_code == 415, (method, path, body, r.text[:300])
        except pb.CodecError:
            assert r.status_code == 400, (method, path, body, r.text[:300])
        except Exception as e:  # noqa: BLE001 - the codec must only ever raise CodecError
            pytest.fail(f"pb.decode raised {type(e).__name__}: {e} on {body!r} (server: {r.status_code})")
        else:
            if method == "DELETE" and obj.get("kind") != "DeleteOptions":
                assert r.status_code == 400, (method, path, body, r.text[:300])
    assert seen.get(400, 0) > 100, seen
    assert http.get("/readyz").status_code == 200 and srv.proc.poll() is None


# ------------------------------------------------------------------ 4. the Python client (JSON)
def test_python_client_still_works(srv, ns):
    pytest.importorskip("kubernetes")
    from kubernetes import client as k8s
    cfg = k8s.Configuration()
    cfg.host = srv.url
    with k8s.ApiClient(cfg) as api:
        v1 = k8s.CoreV1Api(api)
        v1.create_namespaced_config_map(ns, {"metadata": {"name": "py"}, "data": {"a": "1"}})
        got = v1.read_namespaced_config_map("py", ns)
        assert got.data == {"a": "1"}
        got.data = {"a": "2"}
        assert v1.replace_namespaced_config_map("py", ns, got).data == {"a": "2"}
        svc = v1.create_namespaced_service(ns, {"metadata": {"name": "py"},
                                                "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 8080
        v1.delete_namespaced_config_map("py", ns)
        assert [c.metadata.name for c in v1.list_namespaced_config_map(ns).items] == []


# ------------------------------------------------------------------ last
def test_zz_server_alive_and_log_has_no_traceback(srv, http):
    assert srv.proc.poll() is None and http.get("/readyz").status_code == 200
    log = srv.read_log()
    assert "Traceback" not in log, log[max(0, log.index("Traceback") - 300):][:4000]
