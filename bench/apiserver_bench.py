#!/usr/bin/env python3
"""API server benchmark: pod creates/s, get/list latency, watch delivery latency, RSS.

Everything is measured against a real `pocketkube apiserver` process on
SQLite, beside baselines measured in the same run on the same machine
(it is shared and noisy, so ratios matter more than absolute figures):

* raw_insert: a raw SQLAlchemy insert loop of the same ~600-byte pod JSON into
  a table of the same shape, one commit per row (synchronous=NORMAL, WAL);
* wrk_ceiling: the load generator's own ceiling against a trivial endpoint
  of the same server (GET /healthz), so we know the generator is not the limit.

Creates are driven by Debian's `wrk` with a Lua script that POSTs the pod body
with a unique name per request, at 1 and 32 connections. Watch latency is
measured by 100 watchers (raw asyncio sockets) spread over 4 processes, from
just before the POST is sent to the arrival of the event at each watcher, so
it includes the create itself. Get, list and watch latency and RSS are
measured on a second server started on a fresh data directory after the
create runs, loaded with ``--pods`` pods and no history, so a list reads the
same rows whichever side created faster.

Usage: python3 bench/apiserver_bench.py [--pods 10000] [--duration 8]
Prints progress on stderr and one JSON line on stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from common import log, pct, pod_body

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

POD = pod_body("default")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: str, sync: str = "NORMAL"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "apiserver", "--port", str(self.port), "--data-dir", data_dir,
             "--sqlite-synchronous", sync, "--compaction-interval", "0"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(os.path.join(data_dir, "apiserver.log"), "wb"))
        for _ in range(400):
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def raw_insert_rate(n: int, body: bytes) -> float:
    """The baseline: raw SQLAlchemy inserts of the same JSON, one commit each."""
    from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, create_engine, event

    d = tempfile.mkdtemp(prefix="pk-raw-")
    try:
        eng = create_engine(f"sqlite:///{d}/raw.db")

        @event.listens_for(eng, "connect")
        def _c(conn, _):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

        md = MetaData()
        t = Table("t", md, Column("id", Integer, primary_key=True, autoincrement=True), Column("key", String(1024)),
                  Column("value", LargeBinary))
        md.create_all(eng)
        ins = t.insert()
        t0 = time.perf_counter()
        with eng.connect() as c:
            for i in range(n):
                c.execute(ins, {"key": f"/registry/core/pods/default/p{i}", "value": body})
                c.commit()
        return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# setup() runs in the main Lua state and hands each thread its own id; request() runs in the
# thread's state, so names built from thread_id and counter never collide across threads.
WRK_THREAD_IDS = r"""
local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
counter = 0
"""

WRK_POST = WRK_THREAD_IDS + r"""
request = function()
  counter = counter + 1
  local name = "w" .. PREFIX .. "-" .. thread_id .. "-" .. counter
  local body = string.gsub(BODY, "__NAME__", name)
  return wrk.format("POST", "/api/v1/namespaces/default/pods", {["Content-Type"]="application/json"}, body)
end
"""


def wrk_run(url: str, conns: int, duration: int, script: str | None, path: str = "/") -> dict:
    threads = min(conns, 2)
    args = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--latency"]
    sf = None
    if script:
        sf = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        sf.write(script)
        sf.close()
        args += ["-s", sf.name]
    args.append(url + path)
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60).stdout
    if sf:
        os.unlink(sf.name)
    rps = float("nan")
    non2xx = 0
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "Non-2xx" in line:
            non2xx = int(line.split()[-1])
    return {"rps": rps, "non2xx": non2xx}


def post_script(prefix: str) -> str:
    body = json.dumps(POD).replace('"web-0"', '"__NAME__"')
    return f"PREFIX = {json.dumps(prefix)}\nBODY = {json.dumps(body)}\n" + WRK_POST


def load_pods(url: str, n: int) -> None:
    """Fill the store with n pods using several client processes."""
    def worker(start, count):
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(start, start + count):
                p = json.loads(json.dumps(POD))
                p["metadata"]["name"] = f"fill-{i}"
                r = c.post("/api/v1/namespaces/default/pods", json=p)
                assert r.status_code in (201, 409), r.text

    procs = []
    per = n // 8
    for k in range(8):
        pr = mp.Process(target=worker, args=(k * per, per if k < 7 else n - 7 * per))
        pr.start()
        procs.append(pr)
    for pr in procs:
        pr.join()


def watcher_proc(url: str, count: int, ready, q, stop_after: int):
    """`count` watchers on raw asyncio sockets (HTTP/1.1, chunked), so the
    client side adds as little as possible to the measured latency."""
    host, port = url.split("//", 1)[1].split(":")
    port = int(port)

    async def one(rv: str):
        lat = []
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /api/v1/namespaces/bench/pods?watch=1&resourceVersion={rv} HTTP/1.1\r\n"
                     f"Host: {host}\r\nAccept: application/json\r\n\r\n".encode())
        await writer.drain()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # response headers
        ready.put(1)
        buf = b""
        while len(lat) < stop_after:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                break
            chunk = await reader.readexactly(size + 2)
            now = time.time()
            buf += chunk[:-2]
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line:
                    ev = json.loads(line)
                    lat.append(now - float(ev["object"]["metadata"]["annotations"]["sent"]))
        writer.close()
        return lat

    async def bounded(rv: str):
        try:
            return await asyncio.wait_for(one(rv), 90)  # every loop here is bounded
        except asyncio.TimeoutError:
            return []

    async def main():
        rv = httpx.get(url + "/api/v1/namespaces/bench/pods", params={"limit": 1}).json()["metadata"]["resourceVersion"]
        res = await asyncio.gather(*(bounded(rv) for _ in range(count)))
        q.put([x for r in res for x in r])

    asyncio.run(main())


def watch_latency(url: str, watchers: int = 100, events: int = 100, rate: float = 50.0) -> dict:
    run = f"{time.time_ns() % 10**9:x}"
    httpx.post(url + "/api/v1/namespaces", json={"metadata": {"name": "bench"}})
    ctx = mp.get_context("fork")
    ready, q = ctx.Queue(), ctx.Queue()
    nproc = 4
    procs = [ctx.Process(target=watcher_proc, args=(url, watchers // nproc, ready, q, events)) for _ in range(nproc)]
    for p in procs:
        p.start()
    for _ in range(watchers):
        ready.get(timeout=60)
    time.sleep(0.5)
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(events):
            p = json.loads(json.dumps(POD))
            p["metadata"]["name"] = f"wl-{run}-{i}"
            p["metadata"]["namespace"] = "bench"
            p["metadata"]["annotations"]["sent"] = repr(time.time())
            c.post("/api/v1/namespaces/bench/pods", json=p)
            time.sleep(1.0 / rate)
    lats = []
    for _ in range(nproc):
        lats.extend(q.get(timeout=120))
    for p in procs:
        p.join(30)
    return {"watchers": watchers, "events": events, "deliveries": len(lats),
            "p50_ms": round(pct(lats, 50) * 1000, 2), "p99_ms": round(pct(lats, 99) * 1000, 2)}


def get_list_latency(url: str, n: int) -> dict:
    gets = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for i in range(500):
            t0 = time.perf_counter()
            r = c.get(f"/api/v1/namespaces/default/pods/fill-{(i * 7919) % n}")
            gets.append(time.perf_counter() - t0)
            assert r.status_code == 200
        lists = []
        count = 0
        for _ in range(7):
            t0 = time.perf_counter()
            r = c.get("/api/v1/namespaces/default/pods")
            lists.append(time.perf_counter() - t0)
            count = len(r.json()["items"])
        tables = []
        for _ in range(3):
            t0 = time.perf_counter()
            c.get("/api/v1/namespaces/default/pods", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
            tables.append(time.perf_counter() - t0)
    return {"get_p50_ms": round(pct(gets, 50) * 1000, 2), "get_p99_ms": round(pct(gets, 99) * 1000, 2),
            "list_items": count, "list_p50_s": round(pct(lists, 50), 3), "list_p99_s": round(pct(lists, 99), 3),
            "list_table_p50_s": round(pct(tables, 50), 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--duration", type=int, default=8)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench needs wrk: apt-get install wrk")
    body = json.dumps(POD).encode()
    result = {"bench": "apiserver", "storage": "sqlite", "sqlite_synchronous": "NORMAL", "pod_body_bytes": len(body)}
    log("baseline: raw SQLAlchemy insert loop ...")
    result["raw_insert_per_s"] = round(raw_insert_rate(5000, body))
    d = tempfile.mkdtemp(prefix="pk-bench-")
    srv = Server(d)
    try:
        log("load generator ceiling (wrk GET /healthz, 32 connections) ...")
        result["wrk_ceiling_healthz_per_s"] = round(wrk_run(srv.url, 32, args.duration, None, "/healthz")["rps"])
        for conns in (1, 32):
            log(f"pod creates with {conns} connection(s) ...")
            r = wrk_run(srv.url, conns, args.duration, post_script(f"c{conns}"))
            result[f"creates_per_s_{conns}conn"] = round(r["rps"])
            result[f"creates_non2xx_{conns}conn"] = r["non2xx"]
        result["creates_32conn_vs_raw_insert"] = round(result["creates_per_s_32conn"] / result["raw_insert_per_s"], 3)
        result["creates_32conn_vs_wrk_ceiling"] = round(result["creates_per_s_32conn"] / result["wrk_ceiling_healthz_per_s"], 3)
        # A clean slate for the latency part: a fresh server on a fresh data directory. Deleting what wrk
        # made would leave its rows in the log (compaction is off), and a list would then read more
        # history on the side that created faster, which confounds before/after comparisons.
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)
        d = tempfile.mkdtemp(prefix="pk-bench-")
        srv = Server(d)
        log(f"loading {args.pods} pods ...")
        load_pods(srv.url, args.pods)
        result.update(get_list_latency(srv.url, args.pods))
        result["rss_mb_with_pods"] = round(srv.rss_mb(), 1)
        log("watch latency with 100 watchers ...")
        wl = watch_latency(srv.url)
        result.update({f"watch_{k}": v for k, v in wl.items()})
        result["rss_mb_after_watch"] = round(srv.rss_mb(), 1)
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)
    result["targets"] = {"creates_per_s_32conn": ">= 1000", "watch_p99_ms": "<= 50", "list_10k_s": "<= 1", "rss_mb": "<= 300"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
