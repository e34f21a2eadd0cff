#!/usr/bin/env python3
"""Service proxy benchmark: first full sync and one-endpoint programming latency, against raw iptables-restore.

For each size (default: 100 services x 10 endpoints, 1,000 x 10, 2,000 x 5)
it starts, from scratch, a real API server (SQLite, bound to the host end of
a test link), a node network namespace linked to it, and fills the server
with selector-less Services and their Endpoints. Then, in the same run:

raw baseline   in a throw-away namespace, ``iptables-restore --noflush`` of
               exactly the payload the proxy's first sync sends (same chains,
               same rules, built by ``proxy.rules`` from the same objects),
               then a raw restore of exactly the payload of one endpoint
               change on top of it;
proxy          ``pocketkube proxy`` started inside the node namespace: the
               duration of its first (full) sync as it logs it (build +
               iptables-save + restore), and the wall time from process
               start to that sync done (interpreter start, list, build,
               restore);
latency        ``--changes`` times: PUT one Endpoints with one address
               changed, start the clock when the API server acknowledges
               the write, poll ``iptables-save -t nat`` in the node namespace
               until the new ``--to-destination`` shows in the nat table,
               stop the clock when that poll returns. The poll reads the new
               endpoint chain only (``iptables -t nat -S KUBE-SEP-...``,
               the same kernel dump as ``iptables-save`` restricted to one
               chain), because a whole ``iptables-save`` takes longer than
               the latency being measured at 1,000 services; its own
               duration is reported (``poll_ms``), and the last change is
               checked in a full ``iptables-save -t nat``
               (``iptables_save_nat_s`` is how long that dump took).

Ratios: ``first_sync_ratio`` = proxy first sync / raw full restore;
``change_p99_over_raw`` = p99 latency / raw one-change restore.

Everything runs in namespaces this script creates (names ``pk-bench-*``),
removed in ``finally``; no rule is ever added in the machine's own namespace.
Needs root, iproute2 and iptables. Prints progress on stderr and one JSON
line on stdout.

Full syncs: 5, 3 and 2 runs each by size, raw and proxy interleaved; ``first_sync_ratio``
compares the best of each, ``first_sync_ratio_of_medians`` the medians.

Usage: proxy_bench.py [--sizes 100x10,1000x10,2000x5] [--changes 30]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from api import resources as R  # noqa: E402
from client.rest import Client  # noqa: E402
from proxy.proxier import diff_payload  # noqa: E402
from proxy.rules import JUMPS, Config, RulesetBuilder, sep_chain  # noqa: E402


def log(msg: str) -> None:
    print(f"[proxy_bench] {msg}", file=sys.stderr, flush=True)


def run(*args: str, input: bytes | None = None, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])} exited {p.returncode}: {p.stderr.decode(errors='replace')[:500]}")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_link() -> ipaddress.IPv4Network:
    from tests.e2e.netns import used_networks

    used = used_networks()
    cands = list(ipaddress.ip_network("100.64.0.0/16").subnets(new_prefix=30))[64:]
    random.shuffle(cands)
    for net in cands:
        if not any(net.overlaps(u) for u in used if u.version == 4):
            return net
    raise RuntimeError("no free /30 in 100.64.0.0/16")


class Env:
    """One node namespace + host link + API server; torn down by ``close()`` whatever happened."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = f"pk-bench-{tag}-node"
        self.raw_ns = f"pk-bench-{tag}-raw"
        self.host_if, self.node_if = f"pkbh{tag}", f"pkbn{tag}"
        self.tmp = tempfile.mkdtemp(prefix="pk-proxy-bench-")
        self.procs: list[subprocess.Popen] = []
        self.made_ns: list[str] = []

    def setup(self) -> "Env":
        link = pick_link()
        h = list(link.hosts())
        self.host_ip, self.node_ip = str(h[0]), str(h[1])
        run("ip", "netns", "add", self.ns)
        self.made_ns.append(self.ns)
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.node_if, "netns", self.ns)
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        run("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        run("ip", "netns", "exec", self.ns, "ip", "addr", "add", f"{self.node_ip}/30", "dev", self.node_if)
        run("ip", "netns", "exec", self.ns, "ip", "link", "set", self.node_if, "up")
        self.port = free_port()
        self.url = f"http://{self.host_ip}:{self.port}"
        self.api_log = open(os.path.join(self.tmp, "apiserver.log"), "ab")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "apiserver", "--bind-address", self.host_ip, "--port",
             str(self.port), "--data-dir", os.path.join(self.tmp, "data"), "--compaction-interval", "0"],
            stdout=self.api_log, stderr=subprocess.STDOUT, cwd=ROOT))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("API server did not start")

    def start_proxy(self, n: int = 0) -> tuple[subprocess.Popen, str]:
        path = os.path.join(self.tmp, f"proxy-{n}.log")
        f = open(path, "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-m", "deploy.cli", "proxy",
                              "--node-name", "bench-node", "--server", self.url, "--cluster-cidr", "10.244.0.0/16",
                              "--min-sync-period", "0.1", "--sync-period", "3600"],
                             stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(p)
        return p, path

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(15)
        for ns in self.made_ns:
            run("ip", "netns", "del", ns, check=False)
        run("ip", "link", "del", self.host_if, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def endpoints_body(i: int, ips: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": f"svc-{i}", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 8080}]}]}


def pod_ip(n: int) -> str:
    return str(ipaddress.ip_address("10.244.0.0") + 2 + n)


def fill(client: Client, services: int, endpoints: int) -> None:
    for i in range(services):
        client.create(R.SERVICES, {"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": f"svc-{i}", "namespace": "default"},
                                   "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        client.create(R.ENDPOINTS, endpoints_body(i, [pod_ip(i * endpoints + e) for e in range(endpoints)]))


def measure(size: str, changes: int) -> dict:
    services, endpoints = (int(x) for x in size.split("x"))
    env = Env()
    try:
        env.setup()
        client = Client(server=env.url, timeout=60)
        t = time.monotonic()
        fill(client, services, endpoints)
        log(f"{size}: created {services} services + endpoints in {time.monotonic() - t:.1f}s")
        svcs, _ = client.list_all(R.SERVICES)
        eps, _ = client.list_all(R.ENDPOINTS)
        ep_map = {f"{e['metadata']['namespace']}/{e['metadata']['name']}": e for e in eps}
        builder = RulesetBuilder(Config(cluster_cidr="10.244.0.0/16"))
        desired = builder.build(svcs, ep_map)
        full_payload, _, _ = diff_payload(desired, None, {}, list(JUMPS))
        # First full sync: the proxy and a raw restore of its payload, interleaved so both
        # see the same machine load; each proxy run starts from an emptied table
        # (`proxy --cleanup`), each raw one in a fresh namespace.
        raw_fulls, firsts, starts = [], [], []
        proxy = None
        reps = 5 if services <= 100 else 3 if services <= 1000 else 2
        for r in range(reps):
            # Raw namespaces are all kept until the end: deleting one with tens of
            # thousands of rules frees them in a kernel worker, in the background,
            # which would slow down whatever runs next.
            raw_ns = f"{env.raw_ns}{r}"
            run("ip", "netns", "add", raw_ns)
            env.made_ns.append(raw_ns)
            t = time.perf_counter()
            run("ip", "netns", "exec", raw_ns, "iptables-restore", "--noflush", "-w", "5",
                input=full_payload.encode())
            raw_fulls.append(time.perf_counter() - t)
            if proxy is not None:
                proxy.terminate()
                proxy.wait(30)
                run("ip", "netns", "exec", env.ns, sys.executable, "-m", "deploy.cli", "proxy", "--cleanup")
            t_start = time.monotonic()
            proxy, proxy_log = env.start_proxy(r)
            first = None
            deadline = time.monotonic() + 600
            while first is None and time.monotonic() < deadline:
                if proxy.poll() is not None:
                    raise RuntimeError("proxy exited: " + open(proxy_log).read()[-2000:])
                with open(proxy_log) as f:
                    m = re.search(r"sync done (\{.*\})", f.read())
                if m:
                    first = json.loads(m.group(1))
                    break
                time.sleep(0.02)
            if first is None:
                raise RuntimeError("proxy never synced")
            firsts.append(first)
            starts.append(time.monotonic() - t_start)
            log(f"{size}: run {r}: raw restore {raw_fulls[-1]:.3f}s; proxy first sync {first['total_s']:.3f}s "
                f"(build {first['build_s']:.3f}, save {first['save_s']:.3f}, restore {first['restore_s']:.3f}); "
                f"start to synced {starts[-1]:.2f}s")
        raw_full = min(raw_fulls)
        first = min(firsts, key=lambda x: x["total_s"])
        start_to_sync = min(starts)
        # One endpoint change, raw: the payload the proxy would send, on top of the full load
        # left in the last raw namespace (changed there and back, twice).
        applied = {tb: dict(c) for tb, c in desired.tables.items()}
        ep0 = dict(ep_map["default/svc-0"])
        ep0 = {**ep0, "metadata": {**ep0["metadata"], "resourceVersion": "raw-change"},
               "subsets": [{**ep0["subsets"][0], "addresses": [{"ip": "10.250.0.1"}] + ep0["subsets"][0]["addresses"][1:]}]}
        changed = builder.build(svcs, {**ep_map, "default/svc-0": ep0})
        change_payload, written, deleted = diff_payload(changed, applied)
        raw_change = []
        for _ in range(4):
            t = time.perf_counter()
            run("ip", "netns", "exec", raw_ns, "iptables-restore", "--noflush", "-w", "5",
                input=change_payload.encode())
            raw_change.append(time.perf_counter() - t)
            change_payload, _, _ = diff_payload(desired, {tb: dict(c) for tb, c in changed.tables.items()})
            desired, changed = changed, desired
        t = time.perf_counter()
        run("ip", "netns", "exec", raw_ns, "iptables-save", "-t", "nat")
        raw_save = time.perf_counter() - t
        log(f"{size}: ({desired.rule_count()} rules, {desired.chain_count()} chains), "
            f"one change {min(raw_change) * 1000:.1f} ms ({written} chains written, {deleted} deleted), "
            f"iptables-save {raw_save:.3f}s")

        time.sleep(0.5)

        latencies, polls = [], []
        rng = random.Random(42)
        for k in range(changes):
            i = rng.randrange(services)
            ep = client.get(R.ENDPOINTS, f"svc-{i}", "default")
            new_ip = str(ipaddress.ip_address("10.251.0.0") + k + 1)
            ep["subsets"][0]["addresses"][0] = {"ip": new_ip}
            needle = f"--to-destination {new_ip}:8080".encode()
            chain = sep_chain(f"default/svc-{i}:http", "TCP", f"{new_ip}:8080")
            client.update(R.ENDPOINTS, ep)
            t0 = time.monotonic()
            while True:
                tp = time.monotonic()
                out = run("ip", "netns", "exec", env.ns, "iptables", "-w", "-t", "nat", "-S", chain,
                          check=False).stdout
                t1 = time.monotonic()
                polls.append(t1 - tp)
                if needle in out:
                    break
                if t1 - t0 > 30:
                    raise RuntimeError(f"change {k} not programmed within 30 s")
            latencies.append(t1 - t0)
            time.sleep(0.15 + rng.random() * 0.1)  # let min-sync-period pass: changes are measured one by one
        # The last change, as iptables-save shows it (a full dump: slow at scale, so only once).
        t = time.monotonic()
        save = run("ip", "netns", "exec", env.ns, "iptables-save", "-t", "nat").stdout
        save_s = time.monotonic() - t
        if needle not in save:
            raise RuntimeError("the last change is not in iptables-save")
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
        sync_lines = re.findall(r"sync done (\{.*\})", open(proxy_log).read())
        proxy_syncs = len(sync_lines)
        incr = [json.loads(x) for x in sync_lines[1:]]
        last_sync = {k: round(statistics.median([x[k] for x in incr]), 4) for k in ("build_s", "restore_s", "total_s")} \
            if incr else {}
        log(f"{size}: change latency p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms over {changes} "
            f"(poll {statistics.median(polls) * 1000:.0f} ms); proxy syncs {proxy_syncs}, median incremental sync "
            f"{last_sync}; iptables-save -t nat {save_s:.3f}s")
        client.close()
        return {
            "services": services, "endpoints": endpoints, "rules": desired.rule_count(),
            "chains": desired.chain_count(),
            "raw_full_restore_s": round(raw_full, 3),
            "raw_full_restore_runs_s": [round(x, 3) for x in raw_fulls],
            "proxy_first_sync_s": first["total_s"],
            "proxy_first_sync_runs_s": [x["total_s"] for x in firsts],
            "proxy_first_sync_parts_s": {"build": first["build_s"], "save": first["save_s"],
                                         "restore": first["restore_s"]},
            "first_sync_ratio": round(first["total_s"] / raw_full, 3),
            "first_sync_ratio_of_medians": round(statistics.median(x["total_s"] for x in firsts)
                                                 / statistics.median(raw_fulls), 3),
            "proxy_start_to_synced_s": round(start_to_sync, 3),
            "raw_change_restore_ms": round(min(raw_change) * 1000, 1),
            "change_latency_p50_ms": round(p50 * 1000, 1),
            "change_latency_p99_ms": round(p99 * 1000, 1),
            "change_latency_max_ms": round(latencies[-1] * 1000, 1),
            "change_p99_over_raw": round(p99 / min(raw_change), 2),
            "changes": changes,
            "poll_ms": round(statistics.median(polls) * 1000, 1),
            "iptables_save_nat_s": round(save_s, 3),
            "proxy_change_sync": last_sync,
        }
    finally:
        env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100x10,1000x10,2000x5")
    ap.add_argument("--changes", type=int, default=30, help="one-endpoint changes measured per size (default 30)")
    a = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None:
        sys.exit("proxy_bench.py needs root and iptables (apt-get install iptables)")
    results = []
    for size in a.sizes.split(","):
        results.append(measure(size.strip(), a.changes))
    print(json.dumps({"bench": "proxy", "iptables": run("iptables", "--version").stdout.decode().strip(),
                      "min_sync_period_s": 0.1, "sizes": results}))


if __name__ == "__main__":
    main()
