"""Concurrency, crash safety and several API servers on one PostgreSQL."""
from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest

from tests.conftest import ApiServer, make_pg_database

from .test_api_crud import PODS, pod
from .watchutil import RawWatch


def test_twenty_writers_no_lost_update(http, server):
    http.post("/api/v1/namespaces/default/endpoints", json={"metadata": {"name": "counter", "annotations": {"n": "0"}}})
    per_writer = 10
    errors = []

    def writer():
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for _ in range(per_writer):
                for _attempt in range(500):
                    cur = c.get("/api/v1/namespaces/default/endpoints/counter").json()
                    cur["metadata"]["annotations"]["n"] = str(int(cur["metadata"]["annotations"]["n"]) + 1)
                    r = c.put("/api/v1/namespaces/default/endpoints/counter", json=cur)
                    if r.status_code == 200:
                        break
                    if r.status_code != 409:
                        errors.append(r.text)
                        return
                else:
                    errors.append("gave up")

    threads = [threading.Thread(target=writer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    final = http.get("/api/v1/namespaces/default/endpoints/counter").json()
    assert final["metadata"]["annotations"]["n"] == str(20 * per_writer)


@pytest.mark.parametrize("sync", ["NORMAL", "FULL"])
def test_kill_9_keeps_every_acknowledged_write(tmp_path, sync):
    s = ApiServer(str(tmp_path), extra_args=["--sqlite-synchronous", sync]).start()
    acked: list[str] = []
    stop = threading.Event()

    def storm(worker: int):
        with httpx.Client(base_url=s.url, timeout=5) as c:
            i = 0
            while not stop.is_set() and i < 5000:
                name = f"k{worker}-{i}"
                try:
                    r = c.post(PODS, json=pod(name))
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acked.append(name)
                i += 1

    threads = [threading.Thread(target=storm, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    s.kill()  # SIGKILL mid-storm
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) > 50
    s2 = ApiServer(str(tmp_path), port=s.port).start()
    try:
        with httpx.Client(base_url=s2.url, timeout=30) as c:
            names = {p["metadata"]["name"] for p in c.get(PODS).json()["items"]}
        missing = [n for n in acked if n not in names]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    finally:
        s2.stop()


def test_two_api_servers_on_one_postgres(tmp_path):
    url, drop = make_pg_database()
    a = ApiServer(str(tmp_path / "a"), storage=url)
    b = ApiServer(str(tmp_path / "b"), storage=url)
    os.makedirs(a.data_dir, exist_ok=True)
    os.makedirs(b.data_dir, exist_ok=True)
    a.start()
    b.start()
    try:
        with httpx.Client(base_url=a.url, timeout=30) as ca, httpx.Client(base_url=b.url, timeout=30) as cb:
            rv = cb.get(PODS).json()["metadata"]["resourceVersion"]
            w = RawWatch(b.url, PODS, {"resourceVersion": rv})
            try:
                t0 = time.monotonic()
                names = []
                for i in range(20):
                    c = ca if i % 2 == 0 else cb
                    assert c.post(PODS, json=pod(f"m{i}")).status_code == 201
                    names.append(f"m{i}")
                got, revs = [], []
                for _ in range(20):
                    ev = w.next(timeout=5)
                    got.append(ev[1]["metadata"]["name"])
                    revs.append(int(ev[1]["metadata"]["resourceVersion"]))
                assert got == names  # in write order, whichever server took the write
                assert revs == sorted(revs) and len(set(revs)) == 20
                assert time.monotonic() - t0 < 10
            finally:
                w.close()
            # a write through A shows up in a watch on B within a second
            rv = cb.get(PODS).json()["metadata"]["resourceVersion"]
            w = RawWatch(b.url, PODS, {"resourceVersion": rv})
            try:
                t0 = time.monotonic()
                ca.post(PODS, json=pod("late"))
                ev = w.next(timeout=5)
                assert ev[1]["metadata"]["name"] == "late"
                assert time.monotonic() - t0 < 1.0
            finally:
                w.close()
            # optimistic concurrency holds across servers
            cur = ca.get(f"{PODS}/late").json()
            cur2 = json.loads(json.dumps(cur))
            cur["metadata"]["labels"]["by"] = "a"
            cur2["metadata"]["labels"]["by"] = "b"
            assert ca.put(f"{PODS}/late", json=cur).status_code == 200
            assert cb.put(f"{PODS}/late", json=cur2).status_code == 409
            # no duplicate service IPs when two servers allocate at once
            ips = []
            lock = threading.Lock()

            def mk(c, prefix):
                for i in range(15):
                    r = c.post("/api/v1/namespaces/default/services", json={"metadata": {"name": f"{prefix}{i}"}, "spec": {"ports": [{"port": 80}]}})
                    assert r.status_code == 201, r.text
                    with lock:
                        ips.append(r.json()["spec"]["clusterIP"])

            ts = [threading.Thread(target=mk, args=(ca, "sa")), threading.Thread(target=mk, args=(cb, "sb"))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            assert len(ips) == 30 and len(set(ips)) == 30
    finally:
        a.stop()
        b.stop()
        drop()
