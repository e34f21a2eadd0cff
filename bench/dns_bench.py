#!/usr/bin/env python3
"""Cluster DNS benchmark: queries/s and p50/p99 latency with 1,000 services loaded, against a raw UDP baseline.

It starts, from scratch, a real API server (SQLite, 127.0.0.1) and fills it
with ``--services`` Services (default 1,000) spread over 5 namespaces: 90 %
ClusterIP, 10 % headless with 3 ready endpoint addresses each (one with a
hostname). Then ``pocketkube dns`` (``python -m addons.dns.main``) on
127.0.0.1 and a free port, waits for /ready and for the last service to
resolve, and drives it from a separate process:

cluster mix   1,000 distinct names: an A query per service (ClusterIP and
              headless), SRV ``_http._tcp`` for every 10th service, and PTR
              for every 20th ClusterIP -- a realistic spread, not one name;
nxdomain mix  1,000 distinct names under the cluster domain that do not exist.

For each mix: the highest throughput (``dnsperf`` with 100 queries in
flight for ``--duration`` s; qps and the mean latency it reports) and the
latency at a fixed ``--rate`` (default 5,000 qps; p50/p99 from dnsperf's
per-query lines, ``-v``). Without dnsperf (``apt-get install dnsperf``) a
Python multi-process load generator does the same (``--loadgen python``
forces it); which one ran is in the output.

Baselines, measured in the same run with the same load generator:
``udp_echo_qps`` (the better of a run before and one after the DNS runs)
is a trivial Python UDP responder (the same recvfrom /
sendto loop, answering each query with its own bytes and QR set, no DNS
work at all): the ceiling of a one-thread Python UDP server here, and of
the load generator. ``cluster_qps_over_udp_echo`` is the DNS server's
throughput as a fraction of it. ``dnslib_qps`` is dnslib's parse + answer
(through the real resolver) + encode loop in one process with no sockets
and no cache -- what every query would cost without the encoded-answer
cache; ``cluster_qps_over_dnslib`` shows what the cache buys.

Targets (issue 6): >= 10,000 qps for cluster names, p99 <= 5 ms at
5,000 qps. Everything binds 127.0.0.1; processes are stopped by PID and the
data directory removed in ``finally``. Progress on stderr, one JSON line on
stdout.

Usage: dns_bench.py [--services 1000] [--duration 10] [--rate 5000] [--loadgen auto|dnsperf|python]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from api import resources as R  # noqa: E402
from bench.common import log, pct  # noqa: E402
from client.rest import Client  # noqa: E402

NAMESPACES = [f"bench-{c}" for c in "abcde"]

UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
recv, send = s.recvfrom, s.sendto
cache = {}
while True:
    data, addr = recv(4096)
    r = cache.get(data[2:])          # the same dict lookup the DNS server does on a hit
    if r is None:
        r = cache[data[2:]] = bytes([data[2] | 0x80]) + data[3:]
    send(data[:2] + r, addr)
"""


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def stop_proc(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


def wait_http(url: str, timeout: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready at {url}")


# ------------------------------------------------------------------ objects
def service_objects(n: int) -> tuple[list[dict], list[dict]]:
    services, endpoints = [], []
    for i in range(n):
        ns = NAMESPACES[i % len(NAMESPACES)]
        name = f"svc-{i:04d}"
        headless = i % 10 == 9
        spec = {"ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                          {"name": "metrics", "port": 9090, "protocol": "TCP"}]}
        if headless:
            spec["clusterIP"] = "None"
        services.append({"metadata": {"name": name, "namespace": ns, "labels": {"app": name}}, "spec": spec})
        if headless:
            base = 2 + (i // 10) * 3
            addrs = [{"ip": f"10.244.{(base + k) // 250}.{(base + k) % 250 + 1}"} for k in range(3)]
            addrs[0]["hostname"] = f"{name}-0"
            endpoints.append({"metadata": {"name": name, "namespace": ns},
                              "subsets": [{"addresses": addrs,
                                           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                                     {"name": "metrics", "port": 9090, "protocol": "TCP"}]}]})
    return services, endpoints


def load(client: Client, services: list[dict], endpoints: list[dict]) -> list[dict]:
    for ns in NAMESPACES:
        client.create(R.NAMESPACES, {"metadata": {"name": ns}})
    created = [client.create(R.SERVICES, s) for s in services]
    for e in endpoints:
        client.create(R.ENDPOINTS, e)
    return created


def cluster_queries(created: list[dict]) -> list[tuple[str, str]]:
    out = []
    for i, svc in enumerate(created):
        md = svc["metadata"]
        fq = f"{md['name']}.{md['namespace']}.svc.cluster.local"
        if i % 10 == 0:
            out.append((f"_http._tcp.{fq}", "SRV"))
        elif i % 20 == 1 and svc["spec"].get("clusterIP") not in (None, "", "None"):
            out.append((".".join(reversed(svc["spec"]["clusterIP"].split("."))) + ".in-addr.arpa", "PTR"))
        else:
            out.append((fq, "A"))
    return out


def nx_queries(n: int) -> list[tuple[str, str]]:
    return [(f"missing-{i:04d}.{NAMESPACES[i % len(NAMESPACES)]}.svc.cluster.local", "A") for i in range(n)]


# ------------------------------------------------------------ load: dnsperf
def dnsperf(port: int, queries: list[tuple[str, str]], path: str, duration: float,
            rate: int | None) -> dict:
    with open(path, "w") as f:
        for name, t in queries:
            f.write(f"{name} {t}\n")
    args = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", path, "-l", str(duration), "-c", "4",
            "-T", "1", "-q", "100", "-t", "2"]
    if rate:
        args += ["-Q", str(rate), "-v"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    out = p.stdout
    res: dict = {}
    m = re.search(r"Queries sent:\s+(\d+)", out)
    res["sent"] = int(m.group(1)) if m else 0
    m = re.search(r"Queries lost:\s+(\d+)", out)
    res["lost"] = int(m.group(1)) if m else 0
    m = re.search(r"Queries per second:\s+([\d.]+)", out)
    res["qps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    res["mean_ms"] = float(m.group(1)) * 1000 if m else None
    if rate:
        # per-query lines: "> NOERROR name A 0.000123"
        lat = [float(x) for x in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M)]
        res["latencies"] = lat
    codes = dict((c, int(n)) for c, n in re.findall(r"(NOERROR|NXDOMAIN|SERVFAIL|REFUSED|FORMERR) (\d+)", out))
    res["rcodes"] = codes
    if not m and p.returncode != 0:
        raise RuntimeError(f"dnsperf failed: {p.stderr[-2000:]}")
    return res


# ------------------------------------------------------ load: Python fallback
def _py_worker(port: int, wires: list[bytes], duration: float, rate: float | None, window: int, q) -> None:
    import select

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    outstanding: dict[int, float] = {}
    lat: list[float] = []
    sent = 0
    qid = random.getrandbits(16)
    start = time.perf_counter()
    end = start + duration
    i = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = sent if rate is None else int((now - start) * rate) + 1
        while sent < due and len(outstanding) < window:
            qid = (qid + 1) & 0xFFFF
            w = wires[i % len(wires)]
            i += 1
            try:
                s.send(qid.to_bytes(2, "big") + w[2:])
            except BlockingIOError:
                break
            outstanding[qid] = time.perf_counter()
            sent += 1
        r, _, _ = select.select([s], [], [], 0.0005)
        if r:
            while True:
                try:
                    data = s.recv(65535)
                except BlockingIOError:
                    break
                t0 = outstanding.pop(int.from_bytes(data[:2], "big"), None)
                if t0 is not None:
                    lat.append(time.perf_counter() - t0)
        for k, t0 in list(outstanding.items()):      # lost after 2 s
            if now - t0 > 2.0:
                del outstanding[k]
    q.put((sent, lat, time.perf_counter() - start))


def pyload(port: int, queries: list[tuple[str, str]], duration: float, rate: int | None, procs: int = 2) -> dict:
    from dnslib import DNSRecord

    wires = [bytes(DNSRecord.question(n, t).pack()) for n, t in queries]
    q: mp.Queue = mp.Queue()
    ps = [mp.Process(target=_py_worker, args=(port, wires[k::procs] or wires, duration,
                                              rate / procs if rate else None, 50, q)) for k in range(procs)]
    for p in ps:
        p.start()
    results = [q.get(timeout=duration + 60) for _ in ps]
    for p in ps:
        p.join(10)
    sent = sum(r[0] for r in results)
    lat = [x for r in results for x in r[1]]
    elapsed = max(r[2] for r in results)
    return {"sent": sent, "lost": sent - len(lat), "qps": len(lat) / elapsed, "latencies": lat,
            "mean_ms": (sum(lat) / len(lat) * 1000) if lat else None, "rcodes": {}}


# ---------------------------------------------------------------- baselines
def dnslib_loop_qps(created: list[dict], endpoints: list[dict], queries: list[tuple[str, str]],
                    seconds: float = 3.0) -> float:
    """Parse + resolve + encode per query in-process, no cache: the cost the cache avoids."""
    from dnslib import DNSRecord

    from addons.dns.handler import DNSHandler
    from addons.dns.records import Resolver
    from addons.dns.view import ClusterView

    h = DNSHandler(Resolver(ClusterView.from_objects(created, endpoints)), cache_size=0)
    wires = [bytes(DNSRecord.question(n, t).pack()) for n, t in queries]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for w in wires[:100]:
            h.answer(w)
            h.udp_cache.clear()
        n += 100
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--loadgen", default="auto", choices=["auto", "dnsperf", "python"])
    args = ap.parse_args()
    use_dnsperf = args.loadgen == "dnsperf" or (args.loadgen == "auto" and shutil.which("dnsperf"))
    if args.loadgen == "dnsperf" and not shutil.which("dnsperf"):
        sys.exit("dnsperf not found: apt-get install dnsperf")

    tmp = tempfile.mkdtemp(prefix="pk-dns-bench-")
    api = dnsp = echo = None
    logs = []
    try:
        api_port, dns_port, health_port, echo_port = free_port(), free_port(), free_port(), free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        f = open(os.path.join(tmp, "apiserver.log"), "ab")
        logs.append(f)
        api = subprocess.Popen([sys.executable, "-m", "deploy.cli", "apiserver", "--port", str(api_port),
                                "--data-dir", os.path.join(tmp, "data")], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_http(api_url + "/readyz", 30, api, "apiserver")
        client = Client(server=api_url)
        services, endpoints = service_objects(args.services)
        t = time.monotonic()
        created = load(client, services, endpoints)
        log(f"loaded {len(created)} services + {len(endpoints)} endpoints in {time.monotonic() - t:.1f}s")

        f = open(os.path.join(tmp, "dns.log"), "ab")
        logs.append(f)
        t = time.monotonic()
        dnsp = subprocess.Popen([sys.executable, "-m", "addons.dns.main", "--server", api_url,
                                 "--listen", f"127.0.0.1:{dns_port}", "--health-port", str(health_port),
                                 "--log-level", "warning"], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_http(f"http://127.0.0.1:{health_port}/ready", 60, dnsp, "dns")
        ready_s = time.monotonic() - t
        import dns.message
        import dns.query
        last = created[-1]["metadata"]
        m = dns.query.udp(dns.message.make_query(f"{last['name']}.{last['namespace']}.svc.cluster.local", "A"),
                          "127.0.0.1", port=dns_port, timeout=2)
        assert m.answer, m
        log(f"dns ready in {ready_s:.2f}s")

        cq = cluster_queries(created)
        nq = nx_queries(1000)

        f = open(os.path.join(tmp, "echo.log"), "ab")
        logs.append(f)
        echo = subprocess.Popen([sys.executable, "-c", UDP_ECHO, str(echo_port)], stdout=subprocess.PIPE,
                                stderr=f)
        assert b"ready" in echo.stdout.readline()

        def run(port: int, queries: list, rate: int | None, tag: str) -> dict:
            if use_dnsperf:
                return dnsperf(port, queries, os.path.join(tmp, f"{tag}.txt"), args.duration, rate)
            return pyload(port, queries, args.duration, rate)

        out: dict = {"bench": "dns", "loadgen": "dnsperf" if use_dnsperf else "python",
                     "services": len(created), "headless_services": len(endpoints),
                     "duration_s": args.duration, "rate_qps": args.rate, "dns_ready_s": round(ready_s, 2)}
        log("baseline: UDP echo, max throughput")
        echo_runs = [run(echo_port, cq, None, "echo-max")["qps"]]
        log("baseline: dnslib parse + resolve + encode, no cache")
        out["dnslib_qps"] = round(dnslib_loop_qps(created, endpoints, cq))
        for tag, queries in (("cluster", cq), ("nxdomain", nq)):
            log(f"{tag}: max throughput")
            mx = run(dns_port, queries, None, f"{tag}-max")
            log(f"{tag}: {mx['qps']:.0f} qps, rcodes {mx['rcodes']}; latency at {args.rate} qps")
            at = run(dns_port, queries, args.rate, f"{tag}-rate")
            lat = at["latencies"]
            out[f"{tag}_qps"] = round(mx["qps"])
            out[f"{tag}_max_mean_ms"] = round(mx["mean_ms"], 3) if mx["mean_ms"] is not None else None
            out[f"{tag}_max_lost"] = mx["lost"]
            out[f"{tag}_rcodes"] = mx["rcodes"]
            out[f"{tag}_at_rate_qps"] = round(at["qps"])
            out[f"{tag}_p50_ms"] = round(pct(lat, 50) * 1000, 3) if lat else None
            out[f"{tag}_p99_ms"] = round(pct(lat, 99) * 1000, 3) if lat else None
            out[f"{tag}_at_rate_lost"] = at["lost"]
            out[f"{tag}_at_rate_samples"] = len(lat)
        log("baseline: UDP echo again (the better of the two runs counts)")
        echo_runs.append(run(echo_port, cq, None, "echo-max2")["qps"])
        out["udp_echo_qps"] = round(max(echo_runs))
        out["cluster_qps_over_udp_echo"] = round(out["cluster_qps"] / out["udp_echo_qps"], 3)
        out["cluster_qps_over_dnslib"] = round(out["cluster_qps"] / out["dnslib_qps"], 1)
        out["target_qps_met"] = out["cluster_qps"] >= 10_000
        out["target_p99_met"] = out["cluster_p99_ms"] is not None and out["cluster_p99_ms"] <= 5.0
        print(json.dumps(out), flush=True)
    finally:
        for p in (echo, dnsp, api):
            stop_proc(p)
        for f in logs:
            f.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
