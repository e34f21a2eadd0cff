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
