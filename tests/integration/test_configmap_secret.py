"""ConfigMap and Secret through a real API server (SQLite and PostgreSQL): CRUD, watch, the write rules."""
from __future__ import annotations

import pytest

from tests.integration.watchutil import RawWatch

CMS = "/api/v1/namespaces/default/configmaps"


def test_configmap_crud_and_watch(server, http):
    rv = http.get(CMS).json()["metadata"]["resourceVersion"]
    w = RawWatch(server.url, CMS, {"resourceVersion": rv})
    try:
        r = http.post(CMS, json={"metadata": {"name": "app"}, "data": {"mode": "fast"}})
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "ConfigMap" and r.json()["data"] == {"mode": "fast"}
        assert w.next()[0] == "ADDED"
        r = http.patch(f"{CMS}/app", json={"data": {"level": "2"}, "immutable": True},
                       headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"mode": "fast", "level": "2"}
        typ, obj = w.next()
        assert typ == "MODIFIED" and obj["immutable"] is True
        r = http.patch(f"{CMS}/app", json={"data": {"level": "3"}},
                       headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 422
        assert r.json()["message"] == 'ConfigMap "app" is invalid: data: Forbidden: field is immutable when `immutable` is set'
        r = http.post(CMS, json={"metadata": {"name": "bad"}, "data": {"bad key": "v"}})
        assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "data[bad key]"
        big = {"metadata": {"name": "big"}, "data": {"a": "x" * (1024 * 1024 + 1)}}
        r = http.post(CMS, json=big)
        assert r.status_code == 422
        assert r.json()["message"] == 'ConfigMap "big" is invalid: Too long: must have at most 1048576 bytes'
        table = http.get(CMS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
        assert table["rows"][0]["cells"][:2] == ["app", 2]
        assert http.delete(f"{CMS}/app").status_code == 200
        assert w.next()[0] == "DELETED"
        assert http.get(f"{CMS}/app").status_code == 404
    finally:
        w.close()


def test_configmaps_are_discovered(http):
    res = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert res["configmaps"]["shortNames"] == ["cm"] and res["configmaps"]["namespaced"] is True


SECRETS = "/api/v1/namespaces/default/secrets"


def test_secret_crud_watch_and_field_selector(server, http):
    rv = http.get(SECRETS).json()["metadata"]["resourceVersion"]
    w = RawWatch(server.url, SECRETS, {"resourceVersion": rv, "fieldSelector": "type=kubernetes.io/basic-auth"})
    try:
        r = http.post(SECRETS, json={"metadata": {"name": "plain"}, "stringData": {"token": "s3cr3t"}})
        assert r.status_code == 201, r.text
        obj = r.json()
        assert obj["type"] == "Opaque" and obj["data"] == {"token": "czNjcjN0"} and "stringData" not in obj
        assert "stringData" not in http.get(f"{SECRETS}/plain").json()
        r = http.post(SECRETS, json={"metadata": {"name": "auth"}, "type": "kubernetes.io/basic-auth",
                                     "stringData": {"username": "u", "password": "p"}})
        assert r.status_code == 201, r.text
        typ, obj = w.next()
        assert (typ, obj["metadata"]["name"]) == ("ADDED", "auth")  # "plain" is not basic-auth
        r = http.put(f"{SECRETS}/auth", json={**obj, "stringData": {"password": "q"}})
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"username": "dQ==", "password": "cQ=="}
        assert w.next()[0] == "MODIFIED"
        r = http.patch(f"{SECRETS}/auth", json={"type": "Opaque"}, headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 422
        assert r.json()["details"]["causes"][0]["field"] == "type"
        r = http.post(SECRETS, json={"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
                                     "data": {"tls.crt": "not-base64!"}})
        assert r.status_code == 422 and "not-base64" not in r.text
        fields = {c["field"] for c in r.json()["details"]["causes"]}
        assert fields == {"data[tls.crt]", "data[tls.key]"}
        listed = http.get(SECRETS, params={"fieldSelector": "type=Opaque"}).json()["items"]
        assert [s["metadata"]["name"] for s in listed] == ["plain"]
        table = http.get(SECRETS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
        assert [row["cells"][:3] for row in table["rows"]] == [["auth", "kubernetes.io/basic-auth", 2],
                                                               ["plain", "Opaque", 1]]
        assert http.delete(f"{SECRETS}/auth").status_code == 200
        assert w.next()[0] == "DELETED"
    finally:
        w.close()
