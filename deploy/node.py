"""`pocketkube node add [NAME]` and `pocketkube node remove NAME`: grow and shrink a running local cluster.

add: the lowest free node index (and so the next free fabric address), name
``node-<index>`` unless given; its identity (a ``system:node:<name>``
token; the API server reads its token file only at start, so it is
restarted when a token was added: watches reconnect, nothing is lost), its
namespace and veth into the fabric, its kubelet, proxy and network agent;
wait until it is Ready with its network agent up, then the host route to
its podCIDR.

remove, in Kubernetes' drain order: cordon (``spec.unschedulable``),
delete its pods (force: grace period 0, as ``kubectl drain --force
--grace-period 0``), stop its kubelet, proxy and agent, delete the Node
(after the kubelet, so nothing registers it again; the controller-manager
releases its podCIDR and the other nodes' agents remove their routes, FDB
and neighbour entries for it), remove its runtime's sandboxes and the
runtime, its cgroups, run directory, host route, namespace and veth, and
its token.

The supervisor is stopped for the change and started again after it, so
it never restarts a process that is being removed or half-added. state.json
records the node before anything is made (add) and forgets it only after
everything is gone (remove), so `down` always finds it.
"""
from __future__ import annotations

import argparse
import os
import sys

from deploy import netsetup, procs, supervise
from deploy.state import DEFAULT_DATA_DIR, NODE_COMPONENTS, StateError, load_state, node_key, node_name_problems, \
    save_state
from deploy.system import RealSystem, System
from deploy.up import Launcher, UpError, component_commands, ensure_credentials, forget_node_credentials, out, step


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube node", description="Add a node to the local cluster or remove one.")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add", help="add a node (kubelet, proxy, network agent in a new namespace on the fabric)")
    a.add_argument("name", nargs="?", default=None, help="its name (default node-<next free index>)")
    a.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    a.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to be Ready (default 60)")
    r = sub.add_parser("remove", help="drain a node and remove it with everything it had")
    r.add_argument("name")
    r.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    return p


def stop_supervisor(sys_: System, lay) -> bool:
    return bool(procs.stop_components(sys_, lay, ["supervisor"], grace=5.0))


def add(sys_: System, data_dir: str, name: str | None, timeout: float = 60.0) -> int:
    s = load_state(data_dir)
    if s is None:
        out(f"pocketkube node add: no cluster in {data_dir} (pocketkube up first)")
        return 1
    lay = s.layout
    if not sys_.alive(procs.read_pid(lay.pidfile("apiserver")), lay.marker):
        out("pocketkube node add: the API server is not running (pocketkube up first)")
        return 1
    index = s.next_index()
    name = name or s.default_node_name(index)
    problems = node_name_problems(name)
    if name in s.node_names:
        problems.append(f"node {name} already exists")
    try:
        s.nodes.append({"name": name, "index": index})
        s.ip_of(name)
    except ValueError as e:
        problems.append(f"{e} (the fabric {s.node_network} is full)")
    if problems:
        out("pocketkube node add: " + "; ".join(problems))
        return 1
    save_state(s)
    launcher = Launcher(sys_, s, timeout=timeout, running={"supervisor": 0})
    out(f"pocketkube node add: {name} (index {index}, {s.ip_of(name)})")
    stop_supervisor(sys_, lay)
    try:
        new_token = ensure_credentials(sys_, s)
        netsetup.setup_node(sys_, s, name)
        step(f"namespace {s.node_netns(name)}, {s.node_if} {s.ip_of(name)} on the fabric", launcher.t0)
        cmds = component_commands(s)
        supervise.write_commands(lay, cmds)
        if new_token:
            procs.stop_components(sys_, lay, ["apiserver"])
            launcher.start("apiserver", cmds["apiserver"])
            launcher.wait("the API server (restarted to read the new token)", launcher.api_ready, 30)
            step("API server restarted with the node's token", launcher.t0)
        for key in (node_key(name, c) for c in NODE_COMPONENTS):
            launcher.start(key, cmds[key])
        step(f"started {name}'s kubelet, proxy and netd", launcher.t0)
        launcher.wait_node(name)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        msg = str(e) if isinstance(e, UpError) else f"{type(e).__name__}: {e}"
        out(f"pocketkube node add: failed: {msg}")
        out(f"  the node stays recorded; `pocketkube node remove {name}` removes what was made")
        return 1
    finally:
        launcher.close()
        launcher.running.pop("supervisor", None)
        launcher.ensure_supervisor()
    out(f"node {name} is Ready")
    return 0


def remove(sys_: System, data_dir: str, name: str, sandbox_remover=None, cgroup_killer=procs.kill_cgroup_tree,
           run_dir_unmounter=None, api=None) -> int:
    if sandbox_remover is None or run_dir_unmounter is None:
        from kubelet import main as kubelet_main
        sandbox_remover = sandbox_remover or kubelet_main.remove_all_sandboxes
        run_dir_unmounter = run_dir_unmounter or kubelet_main.unmount_run_dir
    s = load_state(data_dir)
    if s is None or name not in s.node_names:
        out(f"pocketkube node remove: no node {name} in {data_dir}")
        return 1
    if len(s.nodes) == 1:
        out("pocketkube node remove: it is the last node (pocketkube down removes the whole cluster)")
        return 1
    if name == s.first_node:
        out(f"pocketkube node remove: {name} runs the cluster DNS and carries the host route to the services; "
            "remove another node")
        return 1
    lay = s.layout
    index = int(s.node(name)["index"])
    errors: list[str] = []
    was_supervised = stop_supervisor(sys_, lay)
    api = api if api is not None else ApiSteps(lay)
    try:
        api.cordon(name)
        n = api.delete_pods(name)
        out(f"  cordoned {name}, deleted {n} pod(s)")
    except Exception as e:  # noqa: BLE001 - a dead API server must not keep a node from going
        errors.append(f"drain: {e}")
    stopped = procs.stop_components(sys_, lay, [node_key(name, c) for c in NODE_COMPONENTS], grace=15.0)
    out(f"  stopped {', '.join(stopped) or 'nothing (not running)'}")
    try:
        api.delete_node(name)
        out(f"  deleted Node {name}")
    except Exception as e:  # noqa: BLE001
        errors.append(f"delete Node: {e}")
    what, errs = procs.stop_runtime(sys_, lay, lay.runtime_socket(name), lay.runtime_pid(name), sandbox_remover)
    errors += errs
    _found, errs = cgroup_killer(s.cgroup_root_of(name))
    errors += errs
    _found, errs = run_dir_unmounter(lay.kubelet_run_dir(name))
    errors += errs
    for entry in [e for e in s.host_routes_added if netsetup.parse_route_entry(s, e)[1] == s.ip_of(name)]:
        netsetup.remove_host_route(sys_, s, entry)
        s.host_routes_added.remove(entry)
    done = netsetup.remove_node(sys_, s, name, index)
    out(f"  removed {', '.join(what + done) or 'its network'}")
    if errors:
        for e in errors:
            out(f"  error: {e}")
        out("pocketkube node remove: finished with errors; the node stays recorded (run it again)")
        save_state(s)
        if was_supervised:
            _start_supervisor(lay)
        return 1
    s.nodes = [n for n in s.nodes if n["name"] != name]
    save_state(s)
    forget_node_credentials(s, name)
    supervise.write_commands(lay, {k: v for k, v in supervise.read_commands(lay).items()
                                   if not k.startswith(name + "/")})
    procs.safe_rmtree(lay.node_dir(name))
    for key in NODE_COMPONENTS:
        for path in (lay.pidfile(node_key(name, key)),):
            if os.path.exists(path):
                os.unlink(path)
    if was_supervised:
        _start_supervisor(lay)
    out(f"node {name} removed")
    return 0


def _start_supervisor(lay) -> None:
    p = procs.spawn(supervise.supervisor_command(lay), lay.log("supervisor.out"))
    procs.write_pid(lay.pidfile("supervisor"), p.pid)


class ApiSteps:
    """The API side of `node remove`, through the admin kubeconfig."""

    def __init__(self, lay):
        self.lay = lay
        self._c = None

    def client(self):
        if self._c is None:
            from client.kubeconfig import load_config
            from client.rest import Client

            self._c = Client(load_config(self.lay.kubeconfig), timeout=10.0)
        return self._c

    def cordon(self, name: str) -> None:
        from api import resources as R

        self.client().patch(R.NODES, name, {"spec": {"unschedulable": True}})

    def delete_pods(self, name: str) -> int:
        from api import resources as R
        from client.errors import NotFound

        pods = self.client().list(R.PODS, field_selector=f"spec.nodeName={name}")["items"]
        for p in pods:
            try:
                self.client().delete(R.PODS, p["metadata"]["name"], p["metadata"]["namespace"],
                                     grace_period_seconds=0)
            except NotFound:
                pass
        return len(pods)

    def delete_node(self, name: str) -> None:
        from api import resources as R
        from client.errors import NotFound

        try:
            self.client().delete(R.NODES, name)
        except NotFound:
            pass


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys_ = RealSystem()
    if sys_.geteuid() != 0:
        print("pocketkube node: must run as root", file=sys.stderr)
        sys.exit(1)
    data_dir = os.path.abspath(args.data_dir)
    try:
        if args.action == "add":
            sys.exit(add(sys_, data_dir, args.name, args.timeout))
        sys.exit(remove(sys_, data_dir, args.name))
    except StateError as e:
        print(f"pocketkube node: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
