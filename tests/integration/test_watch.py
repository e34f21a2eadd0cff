"""Watch semantics: ordering, replay from any revision, selectors, bookmarks, 410 after compaction."""
from __future__ import annotations

import random
import time

import httpx

from tests.conftest import ApiServer

from .test_api_crud import PODS, pod
from .watchutil import RawWatch


def test_watch_streams_in_order_from_revision(http, server):
    rv = http.get(PODS).json()["metadata"]["resourceVersion"]
    w = RawWatch(server.url, PODS, {"resourceVersion": rv})
    try:
        http.post(PODS, json=pod("w1"))
        cur = http.get(f"{PODS}/w1").json()
        cur["metadata"]["labels"]["x"] = "1"
        http.put(f"{PODS}/w1", json=cur)
        http.delete(f"{PODS}/w1")
        got = [w.next() for _ in range(3)]
        assert [t for t, _ in got] == ["ADDED", "MODIFIED", "DELETED"]
        revs = [int(o["metadata"]["resourceVersion"]) for _, o in got]
        assert revs == sorted(revs) and revs[0] > int(rv)
        assert got[2][1]["metadata"]["name"] == "w1"
    finally:
        w.close()


def test_watch_without_revision_starts_with_current_state(http, server):
    http.post(PODS, json=pod("i1"))
    http.post(PODS, json=pod("i2"))
    w = RawWatch(server.url, PODS)
    try:
        names = sorted(w.next()[1]["metadata"]["name"] for _ in range(2))
        assert names == ["i1", "i2"]
        http.post(PODS, json=pod("i3"))
        t, o = w.next()
        assert (t, o["metadata"]["name"]) == ("ADDED", "i3")
    finally:
        w.close()


def test_selector_transitions(http, server):
    rv = http.get(PODS).json()["metadata"]["resourceVersion"]
    w = RawWatch(server.url, PODS, {"resourceVersion": rv, "fieldSelector": "spec.nodeName="})
    lw = RawWatch(server.url, PODS, {"resourceVersion": rv, "labelSelector": "stage=canary"})
    try:
        http.post(PODS, json=pod("t1"))
        t, o = w.next()
        assert (t, o["metadata"]["name"]) == ("ADDED", "t1")
        http.post(f"{PODS}/t1/binding", json={"metadata": {"name": "t1"}, "target": {"kind": "Node", "name": "n1"}})
        t, o = w.next()
        assert t == "DELETED" and o["metadata"]["name"] == "t1"
        assert not o["spec"].get("nodeName")  # the last state that matched
        cur = http.get(f"{PODS}/t1").json()
        cur["metadata"]["labels"]["stage"] = "canary"
        http.put(f"{PODS}/t1", json=cur)
        t, o = lw.next()
        assert t == "ADDED"
        cur = http.get(f"{PODS}/t1").json()
        cur["metadata"]["labels"]["stage"] = "stable"
        http.put(f"{PODS}/t1", json=cur)
        t, o = lw.next()
        assert t == "DELETED" and o["metadata"]["labels"]["stage"] == "canary"
    finally:
        w.close()
        lw.close()


def test_namespace_scoped_watch_and_all_namespaces(http, server):
    http.post("/api/v1/namespaces", json={"metadata": {"name": "other"}})
    rv = http.get("/api/v1/pods").json()["metadata"]["resourceVersion"]
    one = RawWatch(server.url, PODS, {"resourceVersion": rv})
    every = RawWatch(server.url, "/api/v1/pods", {"resourceVersion": rv})
    try:
        http.post("/api/v1/namespaces/other/pods", json=pod("o1", ns="other"))
        http.post(PODS, json=pod("d1"))
        assert one.next()[1]["metadata"]["name"] == "d1"
        assert [every.next()[1]["metadata"]["name"] for _ in range(2)] == ["o1", "d1"]
    finally:
        one.close()
        every.close()


def test_bookmarks_and_timeout(http, server):
    rv = http.get(PODS).json()["metadata"]["resourceVersion"]
    t0 = time.monotonic()
    r = http.get(PODS, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": 1, "allowWatchBookmarks": "true"})
    assert time.monotonic() - t0 < 5
    lines = [l for l in r.text.splitlines() if l]
    assert lines and '"BOOKMARK"' in lines[-1]


def test_resume_from_random_points_sees_every_event_once(http, server):
    """A client disconnected at random points and resuming from its last RV sees every event, once, in order."""
    rv = http.get(PODS).json()["metadata"]["resourceVersion"]
    writes = 60
    for i in range(writes):
        http.post(PODS, json=pod(f"r{i}"))
    seen = []
    last = rv
    rng = random.Random(7)
    guard = 0
    while len(seen) < writes and guard < 100:
        guard += 1
        w = RawWatch(server.url, PODS, {"resourceVersion": last})
        try:
            for _ in range(rng.randint(1, 9)):
                ev = w.next(timeout=5)
                if ev is None:
                    break
                seen.append(ev[1]["metadata"]["name"])
                last = ev[1]["metadata"]["resourceVersion"]
                if len(seen) == writes:
                    break
        finally:
            w.close()
    assert seen == [f"r{i}" for i in range(writes)]


def test_compacted_revision_gives_410_then_relist_recovers(tmp_path):
    s = ApiServer(str(tmp_path), extra_args=["--compaction-interval", "0.5"]).start()
    try:
        with httpx.Client(base_url=s.url, timeout=30) as http:
            rv0 = http.get(PODS).json()["metadata"]["resourceVersion"]
            http.post(PODS, json=pod("c1"))
            for i in range(3):
                cur = http.get(f"{PODS}/c1").json()
                cur["metadata"]["labels"]["n"] = str(i)
                http.put(f"{PODS}/c1", json=cur)
            time.sleep(1.6)  # two compaction ticks: rv0 is now history
            r = http.get(PODS, params={"watch": "1", "resourceVersion": rv0, "timeoutSeconds": 2})
            first = r.text.splitlines()[0]
            assert '"ERROR"' in first and '"code":410' in first.replace(" ", "")
            lst = http.get(PODS).json()
            assert [p["metadata"]["name"] for p in lst["items"]] == ["c1"]
            w = RawWatch(s.url, PODS, {"resourceVersion": lst["metadata"]["resourceVersion"]})
            try:
                http.post(PODS, json=pod("c2"))
                assert w.next()[1]["metadata"]["name"] == "c2"
            finally:
                w.close()
    finally:
        s.stop()


def test_table_watch(http, server):
    rv = http.get(PODS).json()["metadata"]["resourceVersion"]
    hdr = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    w = RawWatch(server.url, PODS, {"resourceVersion": rv}, headers=hdr)
    try:
        http.post(PODS, json=pod("tw1"))
        http.post(PODS, json=pod("tw2"))
        t, o = w.next()
        assert o["kind"] == "Table" and o["columnDefinitions"][0]["name"] == "Name"
        assert o["rows"][0]["cells"][0] == "tw1"
        t, o = w.next()
        assert not o.get("columnDefinitions") and o["rows"][0]["cells"][0] == "tw2"
    finally:
        w.close()
