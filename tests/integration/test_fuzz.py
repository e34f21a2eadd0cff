"""Schema-driven fuzzing of every route: no input may produce a 500, a non-Status error or a hang.

Each route (collections, objects and subresources of every resource, and the
discovery endpoints) gets at least 200 generated requests: valid-looking
objects with fields mutated, random JSON, deep nesting, invalid UTF-8,
protobuf envelopes, YAML, wrong or missing Content-Types and odd query
strings. Separate cases send 10 MB bodies. The server must answer every one
within the client timeout with a status below 500, and every error must be a
metav1 Status.
"""
from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import resources as R

from .test_api_crud import POD

EXAMPLES = 200

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)), max_leaves=20)


def _mutate(base: dict, path: list[str], value) -> dict:
    obj = json.loads(json.dumps(base))
    cur = obj
    for p in path[:-1]:
        if not isinstance(cur.get(p), dict):
            cur[p] = {}
        cur = cur[p]
    cur[path[-1]] = value
    return obj


FIELDS = [["metadata", "name"], ["metadata", "labels"], ["metadata", "namespace"], ["metadata", "resourceVersion"],
          ["metadata", "annotations"], ["metadata", "finalizers"], ["metadata", "ownerReferences"], ["spec"],
          ["spec", "containers"], ["spec", "ports"], ["spec", "clusterIP"], ["spec", "type"], ["spec", "selector"],
          ["status"], ["kind"], ["apiVersion"], ["target"], ["subsets"], ["spec", "nodeName"], ["metadata"]]

objects = st.builds(_mutate, st.sampled_from([POD, {"metadata": {"name": "x"}}, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}]),
                    st.sampled_from(FIELDS), json_values)


def _deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


raw_bodies = st.one_of(
    objects.map(lambda o: json.dumps(o).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.just(b"\xff\xfe\xfa invalid utf8 \xc3\x28"),
    st.just(b'{"metadata": {"name": "\xed\xa0\x80"}}'),
    st.integers(50, 5000).map(_deep),
    st.just(b"k8s\x00\n\x02v1\x12\x03Pod\x1a\x00"),
    st.just(b"metadata:\n  name: y\nspec: {containers: [{name: c, image: i}]}\n"),
    st.just(b"a: &a [*a]\n"),
    st.just(b""),
    st.just(b"[" * 100000),
)

content_types = st.sampled_from([
    None, "application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
    "application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json",
    "application/apply-patch+yaml", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/json; charset=utf-8", "garbage/",
])

queries = st.dictionaries(
    st.sampled_from(["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "gracePeriodSeconds",
                     "dryRun", "resourceVersionMatch", "includeObject", "fieldManager", "propagationPolicy"]),
    st.one_of(st.text(max_size=20), st.sampled_from(["-1", "0", "1", "x=y", "a in (b", "!!", "All", "Exact", "999999999999999999999"])),
    max_size=3,
)


def _routes() -> list[tuple[str, str]]:
    out = [("GET", "/api"), ("GET", "/apis"), ("GET", "/api/v1"), ("GET", "/version"), ("GET", "/openapi/v2"),
           ("GET", "/apis/networking.k8s.io/v1"), ("POST", "/api/v1/namespaces/default/bindings"), ("GET", "/nope")]
    for rt in R.STORED:
        ns = "default" if rt.namespaced else None
        coll = rt.collection_path(ns)
        obj = rt.object_path("fuzz-1", ns)
        out += [("GET", coll), ("POST", coll), ("DELETE", coll), ("GET", obj), ("PUT", obj), ("PATCH", obj), ("DELETE", obj)]
        for sub in rt.subresources:
            out += [("POST" if sub == "binding" else "PUT", rt.object_path("fuzz-1", ns, sub)),
                    ("PATCH", rt.object_path("fuzz-1", ns, sub))]
    return out


ROUTES = _routes()


def _check(r: httpx.Response, method: str, path: str) -> None:
    assert r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text[:500]}"
    if r.status_code >= 400 and path.startswith(("/api", "/apis")):
        body = r.json()
        assert body["kind"] == "Status" and body["code"] == r.status_code, body


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from tests.conftest import ApiServer
    s = ApiServer(str(tmp_path_factory.mktemp("fuzz"))).start()
    yield s
    s.stop()


@pytest.mark.parametrize("method,path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_fuzz_route(fuzz_server, method, path):
    client = httpx.Client(base_url=fuzz_server.url, timeout=15)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(body=raw_bodies, ctype=content_types, query=queries)
    def run(body, ctype, query):
        headers = {} if ctype is None else {"Content-Type": ctype}
        q = dict(query)
        q.pop("watch", None)
        r = client.request(method, path, content=body if method != "GET" else None, headers=headers, params=q)
        _check(r, method, path)

    try:
        run()
        assert fuzz_server.proc.poll() is None
    finally:
        client.close()


@pytest.mark.parametrize("method,path", [("POST", "/api/v1/namespaces/default/pods"), ("PUT", "/api/v1/namespaces/default/pods/x"),
                                         ("PATCH", "/api/v1/namespaces/default/pods/x"), ("POST", "/api/v1/nodes")])
def test_ten_megabyte_bodies_are_refused(fuzz_server, method, path):
    big = b'{"metadata":{"name":"x","annotations":{"a":"' + b"x" * (10 * 1024 * 1024) + b'"}}}'
    with httpx.Client(base_url=fuzz_server.url, timeout=30) as c:
        r = c.request(method, path, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["reason"] == "RequestEntityTooLarge"

        def chunks():  # no Content-Length: the server must count as it reads
            for _ in range(10):
                yield b"x" * (1024 * 1024)

        r = c.request(method, path, content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_watch_queries_never_hang(fuzz_server):
    with httpx.Client(base_url=fuzz_server.url, timeout=10) as c:
        for q in [{"resourceVersion": "x"}, {"resourceVersion": "-5"}, {"labelSelector": "(("}, {"resourceVersion": "99999999"},
                  {"fieldSelector": "spec.nope=1"}, {"allowWatchBookmarks": "maybe"}, {"timeoutSeconds": "abc"}]:
            r = c.get("/api/v1/namespaces/default/pods", params={"watch": "1", "timeoutSeconds": "1", **q})
            assert r.status_code < 500


# ------------------------------------------------------------------ protobuf bodies (kubectl 1.32+)
# Valid protobuf bodies of each route's own kind, then truncated, bit-flipped, overwritten (0x80/0xff make
# bad varints and invalid UTF-8) or grown: such bodies get past the envelope into the message decoder and,
# when they still decode, into defaults, validation and storage. One test samples all routes, so the whole
# case stays a few seconds.
PB_EXAMPLES = 400


def _pb_seeds() -> dict[str, bytes]:
    import api.protobuf as pb
    from tests.unit.test_protobuf import OBJECTS
    out = {}
    for kind, obj in OBJECTS.items():
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["name"] = "fuzz-1"
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = "default"
        out[kind] = pb.encode(obj)
    out["DeleteOptions"] = pb.encode({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                      "propagationPolicy": "Background", "preconditions": {"uid": "u"}})
    return out


PB_SEEDS = _pb_seeds()


def _pb_routes() -> list[tuple[str, str, str]]:
    out = [("POST", "/api/v1/namespaces/default/pods/fuzz-1/binding", "Binding"),
           ("POST", "/api/v1/namespaces/default/bindings", "Binding")]
    for rt in R.STORED:
        if rt.kind not in PB_SEEDS:
            continue
        ns = "default" if rt.namespaced else None
        obj = rt.object_path("fuzz-1", ns)
        out += [("POST", rt.collection_path(ns), rt.kind), ("PUT", obj, rt.kind), ("DELETE", obj, "DeleteOptions")]
        if "status" in rt.subresources:
            out.append(("PUT", rt.object_path("fuzz-1", ns, "status"), rt.kind))
    return out


PB_ROUTES = _pb_routes()


@st.composite
def _pb_request(draw):
    method, path, kind = draw(st.sampled_from(PB_ROUTES))
    b = bytearray(PB_SEEDS[kind])
    for _ in range(draw(st.integers(1, 3))):
        if not b:
            break
        i = draw(st.integers(0, len(b) - 1))
        op = draw(st.sampled_from(["cut", "flip", "set", "grow"]))
        if op == "cut":
            b = b[:i]
        elif op == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            b[i] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xC3, 0xFF]))
        else:
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
    return method, path, bytes(b)


def test_fuzz_protobuf_bodies(fuzz_server):
    client = httpx.Client(base_url=fuzz_server.url, timeout=15, headers={"Content-Type": "application/vnd.kubernetes.protobuf"})

    @settings(max_examples=PB_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(req=_pb_request())
    def run(req):
        method, path, body = req
        _check(client.request(method, path, content=body), method, path)

    try:
        run()
        assert fuzz_server.proc.poll() is None
    finally:
        client.close()
