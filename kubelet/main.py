"""`pocketkube kubelet`: flags and wiring only; the loops live in pods.py, node.py, probes.py, server.py.

Start order: make sure the node's runtime daemon answers (start it if not:
``pocketkube runtime`` in its own session, so it outlives this process),
register the Node (retrying until the API server answers), make sure a CNI
config exists (write pocketkube's bridge config for the node's pod CIDR, with
``--cni-mtu`` if given, when the directory has none; without ``--pod-cidr``
the pod CIDR is the Node's ``spec.podCIDR``, waited for until the
controller-manager's node IPAM sets it) and our plugin is installed in the
CNI bin dir,
start the pod and service informers (pods filtered by
``spec.nodeName=<node>``), adopt whatever the runtime already runs, and serve
the kubelet API. A garbage-collection pass every 10 s removes sandboxes of
pods that no longer exist and network attachments with no sandbox.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys

from api import resources as R
from client.component import add_connection_flags, config_or_exit, setup_logging, stop_on_signals
from client.errors import ApiError
from client.informer import SharedInformers
from client.rest import Client
from kubelet import rundir

log = logging.getLogger("kubelet")

GC_PERIOD = 10.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube kubelet", description="Run the pocketkube node agent.")
    p.add_argument("--node-name", default=None, help="this node's name (default: the hostname)")
    add_connection_flags(p)
    p.add_argument("--pod-cidr", default=None, help="this node's pod CIDR, e.g. 10.244.1.0/24 "
                                                     "(default: the Node's spec.podCIDR)")
    p.add_argument("--register-network-unavailable", action="store_true",
                   help="register the Node with NetworkUnavailable=True and the node.kubernetes.io/network-"
                        "unavailable:NoSchedule taint, for a cluster whose per-node network agent (pocketkube netd) "
                        "clears the condition once the node's routes are up (default off)")
    p.add_argument("--cni-mtu", type=int, default=None,
                   help="MTU of pods' eth0 and the cni0 bridge in the default CNI config the kubelet writes "
                        "(68-65535; default: the kernel's, 1500; an overlay needs its device's MTU)")
    p.add_argument("--node-ip", default=None, help="InternalIP to publish (default: first global IPv4 address)")
    p.add_argument("--address", default=None, help="address the kubelet API listens on (default: --node-ip)")
    p.add_argument("--port", type=int, default=10250, help="kubelet API port (default 10250)")
    p.add_argument("--cluster-dns", default="10.96.0.10", help="nameserver for pods' resolv.conf")
    p.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain (default cluster.local)")
    p.add_argument("--root-dir", default="/var/lib/pocketkube/kubelet", help="kubelet and runtime state")
    p.add_argument("--run-dir", default=None,
                   help="state that dies with the pods (their hosts/resolv.conf files, network records, IP leases, "
                        "CNI cache); a tmpfs is mounted there unless it is on one (default ROOT/run)")
    p.add_argument("--cni-conf-dir", default=None, help="CNI config directory (default ROOT/cni/net.d)")
    p.add_argument("--cni-bin-dir", default=None,
                   help="CNI plugin directories, ':'-separated (default ROOT/cni/bin:/opt/cni/bin:/usr/lib/cni)")
    p.add_argument("--runtime-socket", default=None, help="runtime socket (default ROOT/runtime/runtime.sock)")
    p.add_argument("--apiserver-token-file", default=None,
                   help="file with the token the API server presents to the kubelet API "
                        "(default: accept the token of this kubelet's own kubeconfig)")
    p.add_argument("--cgroup-root", default=None, help="cgroup path for this node's pods (default pocketkube/NODE)")
    p.add_argument("--max-pods", type=int, default=110, help="pods capacity to publish (default 110)")
    p.add_argument("--workers", type=int, default=8, help="pods synced in parallel (default 8)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _fail(msg: str) -> None:
    print(f"pocketkube kubelet: error: {msg}", file=sys.stderr)
    sys.exit(2)


def first_ipv4() -> str | None:
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            addr = parts[parts.index("inet") + 1].split("/")[0]
            if not addr.startswith("127."):
                return addr
    return None


def _default_conflist_mtu(conf_dir: str) -> int | None:
    """The MTU in the conflist an earlier run of the kubelet wrote (None if there is none or it has no MTU)."""
    from kubelet.cni.invoke import DEFAULT_CONFLIST

    try:
        with open(os.path.join(conf_dir, DEFAULT_CONFLIST)) as f:
            plugins = json.load(f).get("plugins") or [{}]
        return plugins[0].get("mtu")
    except (OSError, ValueError, AttributeError):
        return None


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.cni_mtu is not None and not 68 <= args.cni_mtu <= 65535:
        _fail("--cni-mtu must be between 68 and 65535")
    if os.geteuid() != 0:
        _fail("must run as root (namespaces, cgroups, network)")
    node_name = args.node_name or socket.gethostname()
    node_ip = args.node_ip or first_ipv4()
    if not node_ip:
        _fail("no global IPv4 address found; give one with --node-ip")
    try:
        ipaddress.ip_address(node_ip)
        if args.pod_cidr:
            ipaddress.ip_network(args.pod_cidr, strict=True)
    except ValueError as e:
        _fail(str(e))
    if not 0 < args.port < 65536:
        _fail("--port must be between 1 and 65535")
    config = config_or_exit("kubelet", args)
    root = os.path.abspath(args.root_dir)
    os.makedirs(root, exist_ok=True)
    run = os.path.abspath(args.run_dir or os.path.join(root, "run"))
    try:
        how = rundir.ensure(run)
        moved = rundir.adopt_old_layout(root, run)
    except OSError as e:
        _fail(f"--run-dir {run}: {e}")
    log.info("run directory %s (%s)%s", run, how, f"; moved {', '.join(moved)} there from {root}" if moved else "")

    from kubelet.cni.invoke import CNI, install_plugin, write_default_conflist
    from kubelet.node import NodeAgent, wait_for_pod_cidr
    from kubelet.pods import PodSyncer
    from kubelet.runtime.client import RuntimeUnavailable, ensure_runtime
    from kubelet.server import KubeletServer

    rt_root = os.path.join(root, "runtime")
    try:
        runtime = ensure_runtime(rt_root, args.runtime_socket or os.path.join(rt_root, "runtime.sock"),
                                 args.cgroup_root or f"pocketkube/{node_name}", os.path.join(root, "runtime.log"))
    except RuntimeUnavailable as e:
        _fail(str(e))

    stop = stop_on_signals(log, ' (pods keep running)')

    client = Client(config, timeout=30.0, user_agent="pocketkube-kubelet/0.1")
    agent = NodeAgent(client, node_name=node_name, node_ip=node_ip, pod_cidr=args.pod_cidr, port=args.port,
                      capacity={"pods": str(args.max_pods)},
                      register_network_unavailable=args.register_network_unavailable)
    node = None
    delay = 0.2
    while not stop.is_set():
        try:
            node = agent.register()
            break
        except ApiError as e:
            log.warning("cannot register node %s yet (%s); retrying", node_name, e)
            stop.wait(delay)
            delay = min(delay * 2, 5.0)
    if node is None:
        return
    agent.run()  # heartbeats from now on: the Lease stays fresh while the kubelet waits for its pod CIDR
    pod_cidr = args.pod_cidr or (node.get("spec") or {}).get("podCIDR")
    conf_dir = args.cni_conf_dir or os.path.join(root, "cni", "net.d")
    bin_dirs = (args.cni_bin_dir.split(":") if args.cni_bin_dir else
                [os.path.join(root, "cni", "bin"), "/opt/cni/bin", "/usr/lib/cni"])
    install_plugin(bin_dirs[0])
    has_conf = os.path.isdir(conf_dir) and any(f.endswith((".conflist", ".conf", ".json")) for f in os.listdir(conf_dir))
    if not has_conf:
        if not pod_cidr:
            pod_cidr = wait_for_pod_cidr(client, node_name, stop)
            if pod_cidr is None:
                return
        try:
            ipaddress.ip_network(pod_cidr, strict=True)
        except ValueError as e:
            _fail(f"node {node_name}'s podCIDR: {e}")
        write_default_conflist(conf_dir, pod_cidr, data_dir=os.path.join(run, "cni", "ipam"), mtu=args.cni_mtu)
    elif args.cni_mtu is not None and _default_conflist_mtu(conf_dir) != args.cni_mtu:
        log.warning("--cni-mtu %d is ignored: %s already has a CNI config (remove it to have the kubelet write "
                    "its own)", args.cni_mtu, conf_dir)
    network = CNI(conf_dir, bin_dirs, os.path.join(run, "cni", "cache"))
    # Warm pyroute2 up now: it imports most of itself lazily on first use, and the first
    # sandboxes would otherwise wait on the import lock one after another (~0.5 s).
    from kubelet.cni import plugin as cni_plugin
    cni_plugin._shared_netlink().link("lo")
    try:
        network.load()
    except Exception as e:  # noqa: BLE001 - a broken conflist is a start-up error with its message
        _fail(f"CNI config: {e}")

    tokens = set()
    if args.apiserver_token_file:
        try:
            with open(args.apiserver_token_file) as f:
                tokens = {line.strip() for line in f if line.strip()}
        except OSError as e:
            _fail(f"--apiserver-token-file: {e}")
    elif config.token:
        tokens = {config.token}
    if not tokens:
        log.warning("no --apiserver-token-file and no token in the kubeconfig: the kubelet API refuses logs and "
                    "exec requests")

    informers = SharedInformers(client)
    pods = informers.informer_for(R.PODS, field_selector=f"spec.nodeName={node_name}")
    services = informers.informer_for(R.SERVICES)
    syncer = PodSyncer(client=client, pods_store=pods.store, services_store=services.store, runtime=runtime,
                       network=network, node_name=node_name, node_ip=node_ip, root_dir=root, run_dir=run,
                       cluster_dns=args.cluster_dns, cluster_domain=args.cluster_domain, workers=args.workers)
    syncer.register(pods)
    informers.start_all()
    while not stop.is_set() and not informers.wait_for_sync(1.0):
        log.info("waiting for the informers to sync with %s", config.server)
    if stop.is_set():
        return
    server = KubeletServer(pods_store=pods.store, syncer=syncer, runtime=runtime, tokens=tokens,
                           host=args.address or node_ip, port=args.port)
    server.start()
    syncer.start()
    log.info("kubelet %s running (node IP %s, pod CIDR %s, API on %s:%d, pid %d)", node_name, node_ip, pod_cidr,
             args.address or node_ip, args.port, os.getpid())
    try:
        while not stop.wait(GC_PERIOD):
            garbage_collect(syncer, network, pods.store)
    finally:
        agent.stop()
        syncer.stop()
        server.stop()
        informers.stop_all()
        client.close()


def garbage_collect(syncer, network, store) -> None:
    """Sandboxes of pods that are gone get a sync (which tears them down); attachments with no sandbox go."""
    # attachments first, sandboxes second: an attachment made in between has its sandbox in the list
    try:
        attachments = network.cached()
    except Exception as e:  # noqa: BLE001
        log.warning("gc: network cache: %s", e)
        attachments = []
    try:
        sandboxes = syncer.runtime.call("list_sandboxes")["items"]
    except Exception as e:  # noqa: BLE001
        log.warning("gc: runtime: %s", e)
        return
    live_ids = {s["id"] for s in sandboxes}
    for s in sandboxes:
        p = s["pod"]
        pod = store.get_by_key(f"{p['namespace']}/{p['name']}")
        if pod is None or pod["metadata"]["uid"] != p["uid"]:
            syncer.queue.add(f"{p['namespace']}/{p['name']}")
    try:
        for att in attachments:
            if att.container_id not in live_ids:
                log.info("gc: releasing network of vanished sandbox %s", att.container_id)
                network.delete(att.container_id, "", att.ifname, att.args)
    except Exception as e:  # noqa: BLE001
        log.warning("gc: network: %s", e)


# ------------------------------------------------------------- node clean-up
# What `pocketkube down` and the test fixtures undo of a node once its kubelet is stopped; deploy imports
# components only through their entry points, so these live here and delegate.
def remove_all_sandboxes(socket_path: str, timeout: float = 60.0) -> tuple[int, list[str]]:
    """Remove every pod sandbox through the node's runtime (kills pause + containers, removes their cgroups);
    (how many, errors). Nothing to do when no runtime answers on ``socket_path``."""
    if not os.path.exists(socket_path):
        return 0, []
    from kubelet.runtime.client import RuntimeClient

    rc = RuntimeClient(socket_path, timeout=timeout)
    if not rc.ping():
        return 0, []
    return rc.remove_all_sandboxes()


def unmount_run_dir(path: str) -> tuple[bool, list[str]]:
    """Detach the tmpfs the kubelet mounted on its run directory (``kubelet.rundir``), once its pods are gone;
    (it was mounted, errors)."""
    try:
        return rundir.unmount(path), []
    except OSError as e:
        return False, [f"run directory {path}: {e}"]


if __name__ == "__main__":
    main()
