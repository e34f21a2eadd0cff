"""`pocketkube status`: each process of the local cluster (PID, running or not, restarts), every node, the pods.

Reads only: the PID files (a PID counts only while its command line still
names the data directory), the supervisor's restart counts, the fabric
namespace and link, and, when the API server answers, each Node's Ready
and NetworkUnavailable conditions and podCIDR, and the pods by phase. Exit
code 0 when every process runs and every node is Ready, 1 otherwise (3
when there is no cluster at all in that data directory).
"""
from __future__ import annotations

import argparse
import os
import sys

from deploy import netsetup
from deploy.procs import read_pid
from deploy.state import DEFAULT_DATA_DIR, StateError, load_state, node_key, process_keys
from deploy.supervise import read_restarts
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
    for name in [*process_keys(s.node_names), *[node_key(n, "runtime") for n in s.node_names], "supervisor"]:
        node, _, comp = name.rpartition("/")
        path = lay.runtime_pid(node) if comp == "runtime" else lay.pidfile(name)
        pid = read_pid(path)
        procs[name] = {"pid": pid, "running": sys_.alive(pid, lay.marker)}
    info = {"exists": True, "data_dir": lay.data_dir, "settings": s, "processes": procs,
            "restarts": read_restarts(lay), "tls": os.path.exists(os.path.join(lay.path("pki"), "apiserver.crt")),
            "fabric": sys_.exists(f"/run/netns/{s.fabric_ns}"), "link": netsetup.link_exists(sys_, s.host_if),
            "netns": {n: sys_.exists(f"/run/netns/{s.node_netns(n)}") for n in s.node_names},
            "nodes": None, "pods": None, "api_error": None}
    if procs["apiserver"]["running"]:
        try:
            from api import resources as R
            from client.kubeconfig import load_config
            from client.rest import Client

            with Client(load_config(lay.kubeconfig), timeout=5.0) as c:
                info["nodes"] = {n["metadata"]["name"]: n for n in c.list(R.NODES)["items"]}
                pods = c.list(R.PODS)["items"]
                phases: dict[str, int] = {}
                per_node: dict[str, int] = {}
                for p in pods:
                    ph = (p.get("status") or {}).get("phase") or "Pending"
                    phases[ph] = phases.get(ph, 0) + 1
                    nn = (p.get("spec") or {}).get("nodeName") or ""
                    per_node[nn] = per_node.get(nn, 0) + 1
                info["pods"] = {"total": len(pods), "phases": phases, "per_node": per_node}
        except Exception as e:  # noqa: BLE001 - the API server may be starting or stuck
            info["api_error"] = str(e)
    return info


def node_summary(node: dict | None) -> tuple[bool, str]:
    """(Ready, one line: Ready/NotReady (reason), podCIDR, network)."""
    if node is None:
        return False, "NotReady (not registered)"
    conds = {x.get("type"): x for x in (node.get("status") or {}).get("conditions") or []}
    ready = conds.get("Ready", {})
    ok = ready.get("status") == "True"
    text = "Ready" if ok else "NotReady" + (f" ({ready.get('reason') or ready.get('message')})"
                                             if ready.get("reason") or ready.get("message") else "")
    spec = node.get("spec") or {}
    text += f", podCIDR {spec.get('podCIDR') or 'none yet'}"
    net = conds.get("NetworkUnavailable")
    if net is not None:
        text += ", network " + ("up" if net.get("status") == "False" else f"unavailable ({net.get('reason', '')})")
    if spec.get("unschedulable"):
        text += ", cordoned"
    return ok, text


def render(info: dict) -> tuple[str, int]:
    if not info["exists"]:
        return (f"no pocketkube cluster in {info['data_dir']} (start one: pocketkube up"
                + ("" if info["data_dir"] == DEFAULT_DATA_DIR else f" --data-dir {info['data_dir']}") + ")", 3)
    s = info["settings"]
    scheme = "https" if info.get("tls", True) else "http"
    lines = [f"pocketkube cluster in {info['data_dir']}: {len(s.nodes)} node(s), backend {s.backend}",
             f"  API server   {scheme}://127.0.0.1:{s.port} and {scheme}://{s.host_ip}:{s.port}",
             f"  fabric       {s.fabric_ns} ({'present' if info['fabric'] else 'absent'}), link {s.host_if} "
             f"{s.host_ip} ({'present' if info['link'] else 'absent'}), network {s.node_network}",
             f"  host routes  {'on' if s.host_routes else 'off'}; egress {'on' if s.egress else 'off'}",
             "", "  PROCESS                        PID      STATE        RESTARTS"]
    all_running = True
    restarts = info.get("restarts") or {}
    for name, p in info["processes"].items():
        state = "running" if p["running"] else "not running"
        all_running &= p["running"]
        lines.append(f"  {name:<30} {str(p['pid'] or '-'):<8} {state:<12} {restarts.get(name, 0)}")
    lines.append("")
    nodes_ok = True
    if info["nodes"] is not None:
        per_node = (info["pods"] or {}).get("per_node", {})
        for name in s.node_names:
            ok, text = node_summary(info["nodes"].get(name))
            nodes_ok &= ok
            ns = "" if info["netns"].get(name) else f", namespace {s.node_netns(name)} absent"
            lines.append(f"  node {name} ({s.ip_of(name)}): {text}; {per_node.get(name, 0)} pod(s){ns}")
        for name in sorted(set(info["nodes"]) - set(s.node_names)):
            lines.append(f"  node {name}: not one of this cluster's nodes (registered by hand?)")
    elif info["api_error"]:
        nodes_ok = False
        lines.append(f"  API server not answering: {info['api_error']}")
    else:
        nodes_ok = False
        lines.append("  nodes: unknown (the API server is not running)")
    if info["pods"] is not None:
        ph = ", ".join(f"{v} {k}" for k, v in sorted(info["pods"]["phases"].items()))
        lines.append(f"  pods: {info['pods']['total']}" + (f" ({ph})" if ph else ""))
    return "\n".join(lines), 0 if all_running and nodes_ok else 1


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
