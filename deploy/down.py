"""`pocketkube down`: stop everything `up` started and remove everything it made; idempotent.

Order: the supervisor (so it restarts nothing); every node's kubelet (so it
recreates nothing); every pod sandbox through each node's runtime socket
(pause and container processes die, their cgroups go), then the runtime
daemons by their PID files; DNS (it withdraws its address from the
kube-dns Endpoints while the API server is still up), the proxies and
network agents, scheduler, controller-manager, API server; whatever is
still in each node's cgroup tree is killed and the tree removed; then the
egress rules, the host routes, every node namespace (``pk-<id>-*``, also
one state.json forgot), the fabric and the machine's link. The names come
from the data directory (``deploy.state``), so this works even when
state.json is gone.

DIR/data (the stored objects), the credentials and the logs stay, so `up`
brings the same cluster back; ``--purge`` deletes the data directory too
(never following a mount point left under it). A second `down` finds
nothing and says so.
"""
from __future__ import annotations

import argparse
import os
import sys

from deploy import netsetup, procs
from deploy.state import DEFAULT_DATA_DIR, Settings, StateError, load_state, node_key, save_state
from deploy.system import CommandError, RealSystem, System


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube down", description=(
        "Stop the cluster `pocketkube up` started and remove its namespace, link, routes and rules. "
        "The stored objects stay (DIR/data) unless --purge."))
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help=f"the cluster's data directory (default {DEFAULT_DATA_DIR})")
    p.add_argument("--purge", action="store_true", help="also delete the data directory (stored objects, logs, credentials)")
    return p


def looks_like_ours(data_dir: str) -> bool:
    return any(os.path.exists(os.path.join(data_dir, f)) for f in ("state.json", "tokens.csv", "kubeconfig", "run"))


def down(sys_: System, data_dir: str, purge: bool = False, quiet: bool = False,
         sandbox_remover=None, cgroup_killer=procs.kill_cgroup_tree, run_dir_unmounter=None) -> int:
    """Tear the cluster down; the kubelet's own cleanup (its runtime's sandboxes, its run directory's tmpfs)
    comes from its entry point, ``kubelet.main``, imported only when not injected (tests inject fakes)."""
    if sandbox_remover is None or run_dir_unmounter is None:
        from kubelet import main as kubelet_main
        sandbox_remover = sandbox_remover or kubelet_main.remove_all_sandboxes
        run_dir_unmounter = run_dir_unmounter or kubelet_main.unmount_run_dir
    say = (lambda m: None) if quiet else (lambda m: print(m, flush=True))  # noqa: E731
    data_dir = os.path.abspath(data_dir)
    try:
        saved = load_state(data_dir)
    except StateError as e:
        say(f"pocketkube down: {e}; removing what the data directory's names point at")
        saved = None
    s = saved or Settings(data_dir=data_dir)
    lay = s.layout
    done: list[str] = []
    errors: list[str] = []

    def attempt(what: str, fn):
        try:
            return fn()
        except (CommandError, OSError) as e:
            errors.append(f"{what}: {e}")
            return None

    if attempt("supervisor", lambda: procs.stop_components(sys_, lay, ["supervisor"], grace=5.0)):
        done.append("stopped supervisor")
    nodes = s.node_names
    stopped = attempt("kubelets", lambda: procs.stop_components(sys_, lay, [node_key(n, "kubelet") for n in nodes],
                                                                grace=15.0)) or []
    done += [f"stopped {n}" for n in stopped]
    for node in nodes:
        r = attempt(f"{node} runtime", lambda: procs.stop_runtime(sys_, lay, lay.runtime_socket(node),
                                                                  lay.runtime_pid(node), sandbox_remover))
        if r:
            what, errs = r
            done += [f"removed {w}" if "sandbox" in w else f"stopped {node} {w}" for w in what]
            errors += errs
    # a version-1 (one-node) cluster kept its kubelet in DIR/kubelet and its PID files without the node
    legacy = os.path.isdir(lay.path("kubelet"))
    if legacy:
        done += [f"stopped {n}" for n in attempt("kubelet", lambda: procs.stop_components(
            sys_, lay, ["kubelet"], grace=15.0)) or []]
        r = attempt("runtime", lambda: procs.stop_runtime(sys_, lay, lay.path("kubelet", "runtime", "runtime.sock"),
                                                          lay.path("kubelet", "runtime", "runtime.pid"),
                                                          sandbox_remover))
        if r:
            done += [f"removed {w}" if "sandbox" in w else f"stopped {w}" for w in r[0]]
            errors += r[1]
    rest = ["dns"] + [node_key(n, c) for n in nodes for c in ("proxy", "netd")] + ["scheduler", "controller-manager"]
    rest += ["proxy"] if legacy else []
    stopped = attempt("components", lambda: procs.stop_components(sys_, lay, rest)) or []
    stopped += attempt("apiserver", lambda: procs.stop_components(sys_, lay, ["apiserver"])) or []
    done += [f"stopped {n}" for n in stopped]
    def clear(what: str, fn, said: str) -> None:
        """A step answering (whether there was anything, errors)."""
        r = attempt(what, fn)
        if r:
            found, errs = r
            if found:
                done.append(said)
            errors.extend(errs)

    for node in nodes:
        clear("cgroups", lambda: cgroup_killer(s.cgroup_root_of(node)), f"removed cgroups {s.cgroup_root_of(node)}")
        clear("run directory", lambda: run_dir_unmounter(lay.kubelet_run_dir(node)),
              f"unmounted {lay.kubelet_run_dir(node)}")
    if legacy:
        legacy_cg = f"pocketkube/{s.legacy_netns}"
        clear("cgroups", lambda: cgroup_killer(legacy_cg), f"removed cgroups {legacy_cg}")
        clear("run directory", lambda: run_dir_unmounter(lay.path("kubelet", "run")),
              f"unmounted {lay.path('kubelet', 'run')}")
    done += attempt("egress", lambda: netsetup.remove_egress(sys_, s)) or []
    done += [f"removed {w}" for w in attempt("routes", lambda: netsetup.remove_host_routes(sys_, s)) or []]
    for n in s.nodes:
        done += [f"removed {w}" for w in attempt("node network", lambda: netsetup.remove_node(
            sys_, s, n["name"], int(n["index"]))) or []]
    for ns in attempt("namespaces", lambda: netsetup.cluster_namespaces(sys_, s)) or []:
        if ns != s.fabric_ns:        # a node state.json forgot, or a version-1 cluster's pk-<id>-node
            done += [f"removed {w}" for w in attempt("namespace", lambda: netsetup.remove_netns_named(sys_, ns)) or []]
    done += [f"removed {w}" for w in attempt("fabric", lambda: netsetup.remove_fabric(sys_, s)) or []]
    if saved is not None and not errors:
        saved.host_routes_added, saved.egress_applied = [], {}
        if os.path.isdir(data_dir):
            save_state(saved)
    if purge and os.path.isdir(data_dir):
        if errors:
            errors.append(f"not purging {data_dir}: clean-up was incomplete")
        elif not looks_like_ours(data_dir):
            errors.append(f"not purging {data_dir}: it does not look like a pocketkube data directory")
        else:
            left = procs.safe_rmtree(data_dir)
            if left:
                errors.append(f"left mount points alone under {data_dir}: {', '.join(left)}")
            done.append(f"deleted {data_dir}")
    for d in done:
        say(f"  {d}")
    for e in errors:
        say(f"  error: {e}")
    if errors:
        say("pocketkube down: finished with errors (run it again; what is already gone is skipped)")
        return 1
    if not done:
        say(f"pocketkube down: nothing to do (no cluster from {data_dir} is running)")
    else:
        kept = "" if purge else f"; stored objects kept in {lay.db_dir} (--purge deletes them)"
        say(f"pocketkube down: done{kept}")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys_ = RealSystem()
    if sys_.geteuid() != 0:
        print("pocketkube down: must run as root\n    fix: sudo pocketkube down ...", file=sys.stderr)
        sys.exit(1)
    sys.exit(down(sys_, args.data_dir, args.purge))


if __name__ == "__main__":
    main()
