"""`pocketkube status`: each process of the local cluster (PID, running or not), the node, the pods.

Reads only: the PID files (a PID counts only while its command line still
names the data directory), the namespace and link, and, when the API
server answers, the node's Ready condition and the pods by phase. Exit code
0 when every process runs and the node is Ready, 1 otherwise (3 when there
is no cluster at all in that data directory).
"""
from __future__ import annotations

import argparse
import os
import sys

from deploy import netsetup
from deploy.procs import read_pid
from deploy.state import COMPONENTS, DEFAULT_DATA_DIR, StateError, load_state
from deploy.system import RealSystem, System


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube status", description="Show the local cluster's processes and node.")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"the cluster's data directory (default {DEFAULT_DATA_DIR})")
    return p


def collect(sys_: System, data_dir: str) -> dict:
    s = load_state(data_dir)
    if s is None:
        return {"exists": False, "data_dir": os.path.abspath(data_dir)}
    lay = s.layout
    procs = {}
    for name in (*COMPONENTS, "runtime"):
        path = lay.runtime_pid if name == "runtime" else lay.pidfile(name)
        pid = read_pid(path)
        procs[name] = {"pid": pid, "running": sys_.alive(pid, lay.marker)}
    info = {"exists": True, "data_dir": lay.data_dir, "settings": s, "processes": procs,
            "netns": sys_.exists(f"/run/netns/{s.netns}"), "link": netsetup.link_exists(sys_, s.host_if),
            "node": None, "pods": None, "api_error": None}
    if procs["apiserver"]["running"]:
        try:
            from api import resources as R
            from client.kubeconfig import load_config
            from client.rest import Client

            with Client(load_config(lay.kubeconfig), timeout=5.0) as c:
                try:
                    node = c.get(R.NODES, s.node_name)
                    conds = {x["type"]: x for x in (node.get("status") or {}).get("conditions") or []}
                    ready = conds.get("Ready", {})
                    info["node"] = {"name": s.node_name, "ready": ready.get("status") == "True",
                                    "reason": ready.get("reason") or ready.get("message") or ""}
                except Exception as e:  # noqa: BLE001
                    info["node"] = {"name": s.node_name, "ready": False, "reason": f"not registered ({e})"}
                pods = c.list(R.PODS)["items"]
                phases: dict[str, int] = {}
                for p in pods:
                    ph = (p.get("status") or {}).get("phase") or "Pending"
                    phases[ph] = phases.get(ph, 0) + 1
                info["pods"] = {"total": len(pods), "phases": phases}
        except Exception as e:  # noqa: BLE001 - the API server may be starting or stuck
            info["api_error"] = str(e)
    return info


def render(info: dict) -> tuple[str, int]:
    if not info["exists"]:
        return (f"no pocketkube cluster in {info['data_dir']} (start one: pocketkube up"
                + ("" if info["data_dir"] == DEFAULT_DATA_DIR else f" --data-dir {info['data_dir']}") + ")", 3)
    s = info["settings"]
    lines = [f"pocketkube cluster in {info['data_dir']}",
             f"  API server   http://127.0.0.1:{s.port} and http://{s.host_ip}:{s.port}",
             f"  node netns   {s.netns} ({'present' if info['netns'] else 'absent'}), link {s.host_if} "
             f"{s.host_ip} <-> {s.node_ip} ({'present' if info['link'] else 'absent'})",
             f"  host routes  {'on' if s.host_routes else 'off'}; egress {'on' if s.egress else 'off'}",
             "", "  PROCESS              PID      STATE"]
    all_running = True
    for name, p in info["processes"].items():
        state = "running" if p["running"] else "not running"
        all_running &= p["running"]
        lines.append(f"  {name:<20} {str(p['pid'] or '-'):<8} {state}")
    lines.append("")
    node_ok = False
    if info["node"]:
        n = info["node"]
        node_ok = n["ready"]
        lines.append(f"  node {n['name']}: {'Ready' if n['ready'] else 'NotReady'}"
                     + ("" if n["ready"] or not n["reason"] else f" ({n['reason']})"))
    elif info["api_error"]:
        lines.append(f"  API server not answering: {info['api_error']}")
    else:
        lines.append("  node: unknown (the API server is not running)")
    if info["pods"] is not None:
        ph = ", ".join(f"{v} {k}" for k, v in sorted(info["pods"]["phases"].items()))
        lines.append(f"  pods: {info['pods']['total']}" + (f" ({ph})" if ph else ""))
    return "\n".join(lines), 0 if all_running and node_ok else 1


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        info = collect(RealSystem(), args.data_dir)
    except StateError as e:
        print(f"pocketkube status: {e}", file=sys.stderr)
        sys.exit(1)
    text, rc = render(info)
    print(text)
    sys.exit(rc)


if __name__ == "__main__":
    main()
