#!/usr/bin/env python3
"""Scheduler benchmark: pods/s from creation to bound, end to end through a real API server.

For each scenario (1,000 pods onto 100 nodes, 5,000 pods onto 500 nodes) a
fresh `pocketkube apiserver` on SQLite gets the nodes (capacity, allocatable,
Ready, as a kubelet would write them), then several creator processes POST
the pods (the ~600-byte pod body of the kubectl contract, with requests and
a nodeSelector) as fast as they can, while a watcher in this process records
when each pod is seen bound. Measured:

* throughput: pods / (last bind seen - first create sent);
* p50 / p99 of create-to-bind latency per pod (create = just before its
  POST, bind = its MODIFIED event with spec.nodeName arriving on the watch);
* ``backlog_pods_per_s``: the pods are created first, then the component
  starts; binds/s from its first bind to its last, i.e. placement + binding
  alone, with the API server serving no creates meanwhile;
* the same run with a trivial binder instead of the scheduler - a process
  that watches pending pods and binds each to the first node with the same
  number of bind connections and the same HTTP path for binds - which is the
  API server's own ceiling for this workload on this machine;
  ``ratio`` = scheduler / trivial.

Everything (API server, scheduler, creators, watcher) shares this machine's
cores, as it would on a one-machine cluster. The scheduler runs with its
default flags (leader election on, events on); after the last bind the
benchmark waits for its events to be flushed and reports how many exist.

The machine is shared and noisy, so each side runs ``--repeat`` times
(interleaved) and the median run is reported with every run's figure;
``*_cpu_ms_per_pod`` (CPU time of the API server and of the component per
pod) is the figure least disturbed by other load.

Usage: python3 bench/scheduler_bench.py [--scenarios 1000x100,5000x500] [--creators 3] [--repeat 3]
Prints progress on stderr and one JSON line on stdout.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from common import log, pct, pod_body  # noqa: E402

NS = "bench"
POD = pod_body(NS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: str, sync: str):
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
        raise RuntimeError("API server did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def setup_cluster(url: str, nodes: int) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
        assert r.status_code in (201, 409), r.text

        def one(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as cc:
                name = f"node-{i:04d}"
                node = cc.post("/api/v1/nodes", json={"metadata": {"name": name, "labels": {
                    "kubernetes.io/os": "linux", "kubernetes.io/hostname": name}}}).json()
                alloc = {"cpu": "32", "memory": "128Gi", "pods": "110"}
                node["status"] = {"capacity": alloc, "allocatable": alloc,
                                  "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
                r = cc.put(f"/api/v1/nodes/{name}/status", json=node)
                assert r.status_code == 200, r.text

        with ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(nodes)))


# ------------------------------------------------------------------ creators
def creator(url: str, names: list[str], go, out) -> None:
    """POST pods over one keep-alive connection (stdlib: the cheapest client); report send times."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    template = json.dumps(POD).replace('"web-0"', '"__NAME__"')
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    sent = {}
    go.wait()
    for name in names:
        body = template.replace("__NAME__", name).encode()
        sent[name] = time.time()
        conn.request("POST", f"/api/v1/namespaces/{NS}/pods", body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise RuntimeError(f"create {name}: HTTP {resp.status}")
    conn.close()
    out.put(sent)


# -------------------------------------------------------------- the watcher
class BindWatcher:
    """Watches the bench namespace and records when each pod is first seen bound."""

    def __init__(self, url: str, expected: int):
        from client.rest import Client

        self.client = Client(server=url, timeout=30)
        self.expected = expected
        self.bound: dict[str, float] = {}
        self.done = threading.Event()
        lst = self.client.list(__import__("api.resources", fromlist=["PODS"]).PODS, NS, limit=1)
        self.rv = lst["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from api.resources import PODS

        with self.client.watch(PODS, NS, resource_version=self.rv, allow_bookmarks=False) as w:
            self._watch = w
            for typ, obj in w:
                if typ in ("ADDED", "MODIFIED") and (obj.get("spec") or {}).get("nodeName"):
                    name = obj["metadata"]["name"]
                    if name not in self.bound:
                        self.bound[name] = time.time()
                        if len(self.bound) >= self.expected:
                            self.done.set()
                            return

    def close(self) -> None:
        w = getattr(self, "_watch", None)
        if w is not None:
            w.close()
        self.client.close()


# ------------------------------------------------------------ trivial binder
def trivial_binder(url: str, workers: int) -> None:
    """The API's own ceiling: watch pending pods, bind each to the first node, nothing else."""
    from api.resources import PODS
    from client.kubeconfig import load_config
    from client.rest import Client

    client = Client(load_config(server=url), timeout=30)  # binds take its lean transport, as the scheduler's
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ex = ThreadPoolExecutor(workers)

    def bind(name: str, ns: str) -> None:
        try:
            client.bind(name, ns, "node-0000")
        except Exception as e:  # noqa: BLE001
            print(f"bind {name}: {e}", file=sys.stderr)

    items, rv = client.list_all(PODS, NS, field_selector="spec.nodeName=")
    print("ready", flush=True)
    for obj in items:
        ex.submit(bind, obj["metadata"]["name"], obj["metadata"]["namespace"])
    with client.watch(PODS, NS, resource_version=rv, field_selector="spec.nodeName=", allow_bookmarks=False) as w:
        threading.Thread(target=lambda: (stop.wait(), w.close()), daemon=True).start()
        for typ, obj in w:
            if typ == "ADDED":
                ex.submit(bind, obj["metadata"]["name"], obj["metadata"]["namespace"])
    ex.shutdown(wait=True)


# -------------------------------------------------------------- one run
def run_once(n_pods: int, n_nodes: int, mode: str, creators: int, sync: str, bind_workers: int,
             sched_args: list[str]) -> dict:
    d = tempfile.mkdtemp(prefix="pk-sched-bench-")
    server = Server(d, sync)
    proc = None
    watcher = None
    try:
        setup_cluster(server.url, n_nodes)
        log_path = os.path.join(d, f"{mode}.log")
        if mode == "scheduler":
            proc = subprocess.Popen([sys.executable, "-m", "deploy.cli", "scheduler", "--server", server.url,
                                     "--identity", "bench", "--bind-workers", str(bind_workers), *sched_args],
                                    cwd=ROOT, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                r = httpx.get(f"{server.url}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler")
                if r.status_code == 200 and r.json()["spec"].get("holderIdentity") == "bench":
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("scheduler did not take the lease")
            time.sleep(0.5)  # informers synced (they sync before the election starts)
        else:
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--trivial-binder", server.url,
                                     "--bind-workers", str(bind_workers)],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=open(log_path, "wb"), text=True)
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.3)
        watcher = BindWatcher(server.url, n_pods)
        names = [f"pod-{i:05d}" for i in range(n_pods)]
        go = mp.Event()
        out = mp.Queue()
        ps = [mp.Process(target=creator, args=(server.url, names[k::creators], go, out)) for k in range(creators)]
        for p in ps:
            p.start()
        time.sleep(0.3)
        cpu0 = (cpu_seconds(server.proc.pid), cpu_seconds(proc.pid))
        spy = None
        profile = os.environ.get("SCHED_BENCH_PYSPY")  # e.g. /tmp/prof: writes <prefix>-<mode>-<who>.txt
        if profile:
            spy = [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "raw", "--nonblocking", "--gil",
                                     "-r", "250", "-o", f"{profile}-{mode}-{who}.txt"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for who, pid in (("component", proc.pid), ("apiserver", server.proc.pid))]
        go.set()
        sent: dict[str, float] = {}
        for _ in ps:
            sent.update(out.get(timeout=600))
        for p in ps:
            p.join(30)
        create_end = max(sent.values())
        if not watcher.done.wait(timeout=max(120, n_pods / 20)):
            raise RuntimeError(f"{mode}: only {len(watcher.bound)}/{n_pods} pods bound")
        cpu1 = (cpu_seconds(server.proc.pid), cpu_seconds(proc.pid))
        for sp in spy or ():
            sp.send_signal(signal.SIGINT)
            sp.wait(30)
        first = min(sent.values())
        last = max(watcher.bound.values())
        lat = [watcher.bound[n] - sent[n] for n in names]
        res = {
            "pods_per_s": round(n_pods / (last - first), 1),
            "p50_ms": round(pct(lat, 50) * 1000, 1),
            "p99_ms": round(pct(lat, 99) * 1000, 1),
            "create_per_s": round(n_pods / (create_end - first), 1),
            # CPU per pod while pods were created and bound: robust to a noisy shared machine
            "apiserver_cpu_ms_per_pod": round((cpu1[0] - cpu0[0]) * 1000 / n_pods, 2),
            f"{mode}_cpu_ms_per_pod": round((cpu1[1] - cpu0[1]) * 1000 / n_pods, 2),
        }
        if mode == "scheduler":
            # events are written behind the binds; wait for them and count
            deadline = time.monotonic() + 60
            count = 0
            while time.monotonic() < deadline:
                count = len(httpx.get(f"{server.url}/api/v1/namespaces/{NS}/events", timeout=30).json()["items"])
                if count >= n_pods:
                    break
                time.sleep(0.5)
            res["events_written"] = count
            res["events_flushed_s_after_last_bind"] = round(time.time() - last, 1)
            # no node over-committed
            pods = httpx.get(f"{server.url}/api/v1/namespaces/{NS}/pods", timeout=60).json()["items"]
            per_node: dict[str, int] = {}
            for p in pods:
                per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
            res["max_pods_per_node"] = max(per_node.values())
            res["nodes_used"] = len(per_node)
        return res
    finally:
        if watcher is not None:
            watcher.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


def run_backlog(n_pods: int, n_nodes: int, mode: str, creators: int, sync: str, bind_workers: int) -> float:
    """Pods already waiting, then the component starts: binds/s from its first bind to its last.

    Creation is out of the picture, so this is the placement + bind rate the
    API server allows when it serves nothing else.
    """
    d = tempfile.mkdtemp(prefix="pk-sched-backlog-")
    server = Server(d, sync)
    proc = None
    watcher = None
    try:
        setup_cluster(server.url, n_nodes)
        names = [f"pod-{i:05d}" for i in range(n_pods)]
        go, out = mp.Event(), mp.Queue()
        ps = [mp.Process(target=creator, args=(server.url, names[k::creators], go, out)) for k in range(creators)]
        for p in ps:
            p.start()
        go.set()
        for _ in ps:
            out.get(timeout=600)
        for p in ps:
            p.join(30)
        watcher = BindWatcher(server.url, n_pods)
        if mode == "scheduler":
            args = [sys.executable, "-m", "deploy.cli", "scheduler", "--server", server.url, "--identity", "bench",
                    "--bind-workers", str(bind_workers)]
        else:
            args = [sys.executable, os.path.abspath(__file__), "--trivial-binder", server.url,
                    "--bind-workers", str(bind_workers)]
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not watcher.done.wait(timeout=max(120, n_pods / 20)):
            raise RuntimeError(f"backlog {mode}: only {len(watcher.bound)}/{n_pods} pods bound")
        times = sorted(watcher.bound.values())
        return round((n_pods - 1) / (times[-1] - times[0]), 1)
    finally:
        if watcher is not None:
            watcher.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (its latency and CPU figures come with it)."""
    return sorted(runs, key=lambda r: r["pods_per_s"])[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="1000x100,5000x500", help="PODSxNODES,... (default 1000x100,5000x500)")
    ap.add_argument("--creators", type=int, default=3, help="pod creator processes (default 3)")
    ap.add_argument("--bind-workers", type=int, default=8,
                    help="bind connections, scheduler and trivial binder alike (default 8)")
    ap.add_argument("--sqlite-synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    ap.add_argument("--scheduler-args", default="", help="extra flags for the scheduler, space separated")
    ap.add_argument("--only", choices=["scheduler", "trivial"], help="run one side only (profiling)")
    ap.add_argument("--backlog", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure binds/s for pods created before the component starts (default on)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per side and scenario, interleaved; the median run is reported (default 3)")
    ap.add_argument("--trivial-binder", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trivial_binder:
        trivial_binder(args.trivial_binder, args.bind_workers)
        return
    results = []
    load_before = os.getloadavg()
    for spec in args.scenarios.split(","):
        n_pods, n_nodes = (int(x) for x in spec.lower().split("x"))
        log(f"== {n_pods} pods onto {n_nodes} nodes")
        runs: dict[str, list[dict]] = {"trivial": [], "scheduler": []}
        for r in range(args.repeat):  # interleaved, so both sides see the same machine noise
            for mode in ("trivial", "scheduler"):
                if args.only and args.only != mode:
                    continue
                res = run_once(n_pods, n_nodes, mode, args.creators, args.sqlite_synchronous, args.bind_workers,
                               args.scheduler_args.split() if mode == "scheduler" else [])
                runs[mode].append(res)
                log(f"   {mode} #{r + 1}: {res}")
        if args.only:
            continue
        base, sched = median_run(runs["trivial"]), median_run(runs["scheduler"])
        backlog = {}
        if args.backlog:
            for mode in ("trivial", "scheduler"):
                backlog[mode] = run_backlog(n_pods, n_nodes, mode, args.creators, args.sqlite_synchronous,
                                            args.bind_workers)
            log(f"   backlog (pods created first), binds/s: {backlog}")
        results.append({
            "pods": n_pods, "nodes": n_nodes,
            "pods_per_s": sched["pods_per_s"], "p50_ms": sched["p50_ms"], "p99_ms": sched["p99_ms"],
            "pods_per_s_runs": [x["pods_per_s"] for x in runs["scheduler"]],
            "trivial_binder_pods_per_s": base["pods_per_s"],
            "trivial_binder_pods_per_s_runs": [x["pods_per_s"] for x in runs["trivial"]],
            "ratio_to_trivial": round(sched["pods_per_s"] / base["pods_per_s"], 2),
            "trivial_p50_ms": base["p50_ms"], "trivial_p99_ms": base["p99_ms"],
            "create_per_s": sched["create_per_s"],
            "scheduler_cpu_ms_per_pod": sched["scheduler_cpu_ms_per_pod"],
            "apiserver_cpu_ms_per_pod": sched["apiserver_cpu_ms_per_pod"],
            "trivial_binder_cpu_ms_per_pod": base["trivial_cpu_ms_per_pod"],
            "trivial_apiserver_cpu_ms_per_pod": base["apiserver_cpu_ms_per_pod"],
            "events_written": sched.get("events_written"),
            "events_flushed_s_after_last_bind": sched.get("events_flushed_s_after_last_bind"),
            "nodes_used": sched.get("nodes_used"), "max_pods_per_node": sched.get("max_pods_per_node"),
            **({"backlog_pods_per_s": backlog["scheduler"], "backlog_trivial_pods_per_s": backlog["trivial"]}
               if backlog else {}),
        })
    first = results[0] if results else {}
    print(json.dumps({
        "bench": "scheduler", "storage": "sqlite", "sqlite_synchronous": args.sqlite_synchronous,
        "cores": os.cpu_count(), "creators": args.creators, "bind_workers": args.bind_workers,
        "repeat": args.repeat, "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "target_pods_per_s_1000x100": 300,
        "meets_target": bool(first.get("pods") == 1000 and first.get("pods_per_s", 0) >= 300),
        "scenarios": results,
    }))


if __name__ == "__main__":
    main()
