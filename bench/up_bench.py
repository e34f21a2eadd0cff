"""`pocketkube up` benchmark: time to a Ready node with DNS answering, and idle memory. One JSON line.

Runs the real launcher on a throwaway data directory and node network
(``--no-host-routes``, a free port; ``down --purge`` at the end) and measures:

* ``up_s``: wall time of ``pocketkube up`` (it returns once the node is
  Ready and DNS answers), target <= 10 s; beside it, in the same run, the
  time for a bare ``pocketkube apiserver`` to answer ``/readyz``
  (``apiserver_alone_s``), the floor any cluster start pays;
* ``idle_pss_mb``: after 20 s idle, the PSS of every process of the
  cluster summed (API server, scheduler, controller-manager, kubelet,
  runtime, proxy, DNS, and pause processes; PSS counts shared pages once),
  target <= 300 MB; beside it the PSS of as many idle Python interpreters
  (``python_floor_mb``) and the ratio.
With ``--nodes N`` (and ``--backend``) the same for an N-node cluster on a
fabric (issue 15's targets for 3 nodes: up <= 15 s, idle PSS <= 450 MB).
Needs root: ``python3 bench/up_bench.py [--nodes 3] [--backend host-gw|vxlan]``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.kubelet_bench import pss_kb  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.e2e.multinode import pick_fabric_subnet  # noqa: E402
from tests.e2e.netns import pick_link_subnet  # noqa: E402


def pocketkube(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def apiserver_alone(tmp: str) -> float:
    import httpx

    port = free_port()
    t = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "deploy.cli", "apiserver", "--data-dir", os.path.join(tmp, "alone"),
                          "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        while time.monotonic() - t < 60:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - t
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        return float("nan")
    finally:
        p.terminate()
        p.wait(10)


def python_floor(n: int) -> float:
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(n)]
    time.sleep(1.5)
    total = sum(pss_kb(p.pid) for p in procs)
    for p in procs:
        p.kill()
        p.wait()
    return total / 1024


def cluster_pids(data: str) -> list[int]:
    """Every process of the cluster: run/*.pid (components, supervisor), each node's runtime and pause processes."""
    from deploy.state import load_state
    from kubelet.runtime.client import RuntimeClient

    pids = []
    run_dir = os.path.join(data, "run")
    for d, _dirs, files in os.walk(run_dir):            # run/<key>.pid; a node's are run/<node>/<name>.pid
        for f in files:
            if f.endswith(".pid"):
                with open(os.path.join(d, f)) as fh:
                    pids.append(int(fh.read().split()[0]))
    st = load_state(data)
    lay = st.layout
    for node in st.node_names:
        with open(lay.runtime_pid(node)) as fh:
            pids.append(int(fh.read().split()[0]))
        items = RuntimeClient(lay.runtime_socket(node)).call("list_sandboxes")["items"]
        pids += [sb["pid"] for sb in items if sb["state"] == "ready"]
    return pids


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--backend", default=None, help="host-gw | vxlan (default: up's)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("up_bench: needs root", file=sys.stderr)
        sys.exit(2)
    tmp = tempfile.mkdtemp(prefix="pk-up-bench-")
    data = os.path.join(tmp, "pk")
    net = pick_fabric_subnet() if a.nodes > 1 else pick_link_subnet()
    args = ["--data-dir", data, "--node-network", str(net), "--port", str(free_port()), "--no-host-routes",
            "--nodes", str(a.nodes)] + (["--backend", a.backend] if a.backend else [])
    out: dict = {"bench": "up", "nodes": a.nodes, "backend": a.backend or "default"}
    out["apiserver_alone_s"] = round(apiserver_alone(tmp), 2)
    try:
        t = time.monotonic()
        r = pocketkube("up", *args)
        out["up_s"] = round(time.monotonic() - t, 2)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            sys.exit(1)
        out["up_over_apiserver_alone"] = round(out["up_s"] / max(0.01, out["apiserver_alone_s"]), 1)
        time.sleep(20)
        pids = cluster_pids(data)
        out["processes"] = len(pids)
        out["idle_pss_mb"] = round(sum(pss_kb(p) for p in pids) / 1024, 1)
        out["python_floor_mb"] = round(python_floor(len(pids)), 1)   # one idle interpreter per process
        out["pss_over_python_floor"] = round(out["idle_pss_mb"] / max(0.1, out["python_floor_mb"]), 2)
        out["targets"] = {"up_s": 10 if a.nodes == 1 else 15, "idle_pss_mb": 300 if a.nodes == 1 else 450}
    finally:
        pocketkube("down", "--data-dir", data, "--purge")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
