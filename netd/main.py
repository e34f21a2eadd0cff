"""`pocketkube netd`: flags and wiring only; the loop lives in netd.agent.

Runs inside its node's network namespace (``ip netns exec NODE pocketkube
netd ...``), like the proxy: the VXLAN device it makes must be created in
that namespace, where its UDP socket lives. It builds the client, one Node
informer (it needs every Node: desired state = f(all Nodes)), waits until
its own Node exists with ``spec.podCIDR`` (a kubelet registers it, the
controller-manager allocates the range; each try is one cache read, the
wait itself is unbounded and logged every few seconds), then runs the Agent
until SIGTERM/SIGINT. Routes and entries stay in place when netd stops, so
pod traffic keeps flowing through a restart, and the next netd adopts them.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from api import resources as R
from client.component import add_connection_flags, config_or_exit, setup_logging, stop_on_signals
from client.informer import SharedInformers
from client.rest import Client
from client.workqueue import WorkQueue
from netd import backends as B
from netd.agent import KEY, Agent, Config, wait_for_node
from nodeutil.netlink import RealNetlink

log = logging.getLogger("netd")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube netd",
                                description="Run the pod network agent (flannel's role) for one node.")
    p.add_argument("--node-name", default=None, help="the node this agent runs on (default: hostname)")
    add_connection_flags(p)
    p.add_argument("--backend", default=B.VXLAN, choices=list(B.BACKENDS),
                   help="vxlan: an overlay, works wherever nodes reach each other by UDP; host-gw: plain routes, "
                        "nodes must share one L2 segment (default vxlan, as flannel)")
    p.add_argument("--iface", default=None,
                   help="the node's fabric interface (default: the interface holding --public-ip)")
    p.add_argument("--public-ip", default=None, help="this node's address on the fabric (default: its InternalIP)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="the pod network; remote podCIDRs outside it are ignored (default 10.244.0.0/16)")
    p.add_argument("--vni", type=int, default=1, help="VXLAN network identifier; the device is flannel.<VNI> "
                                                      "(default 1)")
    p.add_argument("--vxlan-port", type=int, default=8472, help="VXLAN UDP port (default 8472, as flannel/Linux)")
    p.add_argument("--resync-period", type=float, default=10.0,
                   help="seconds between full resyncs that read the kernel back and repair drift (default 10)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _fail(msg: str) -> None:
    print(f"pocketkube netd: error: {msg}", file=sys.stderr)
    sys.exit(2)


def config_from_args(args: argparse.Namespace) -> Config:
    """The agent's Config; exits 2 on a bad flag."""
    try:
        cidr = str(ipaddress.ip_network(args.cluster_cidr, strict=True)) if args.cluster_cidr else None
    except ValueError as e:
        _fail(f"--cluster-cidr: {e}")
    if args.public_ip:
        try:
            ipaddress.IPv4Address(args.public_ip)
        except ValueError as e:
            _fail(f"--public-ip: {e}")
    if not 0 < args.vni < 2 ** 24:
        _fail("--vni must be between 1 and 16777215")
    if not 0 < args.vxlan_port < 65536:
        _fail("--vxlan-port must be a UDP port")
    if args.resync_period <= 0:
        _fail("--resync-period must be > 0")
    if args.iface and len(args.iface) > 15:
        _fail("--iface: an interface name has at most 15 characters")
    return Config(node_name=args.node_name or os.uname().nodename, backend=args.backend, iface=args.iface,
                  public_ip=args.public_ip, cluster_cidr=cidr, vni=args.vni, port=args.vxlan_port,
                  resync_period=args.resync_period)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    cfg = config_from_args(args)
    config = config_or_exit("netd", args)

    client = Client(config, timeout=30.0)
    informers = SharedInformers(client)
    nodes = informers.informer_for(R.NODES)
    queue = WorkQueue(max_delay=30.0, name="netd")
    agent = Agent(RealNetlink(), client, cfg, nodes=nodes.store.list, get_node=nodes.store.get_by_key)
    enqueue = lambda *_: queue.add(KEY)  # noqa: E731
    nodes.add_handler(on_add=enqueue, on_update=agent.on_update(enqueue), on_delete=enqueue)
    stop = stop_on_signals(log, " (routes stay in place)", wake=queue.shutdown)
    log.info("starting netd (%s) for node %s (pid %d) against %s", cfg.backend, cfg.node_name, os.getpid(),
             config.server)
    informers.start_all()
    try:
        while not stop.is_set() and not informers.wait_for_sync(0.5):
            pass
        if wait_for_node(lambda: nodes.store.get_by_key(cfg.node_name), cfg, stop) is not None:
            agent.run(queue, stop)
    finally:
        queue.shutdown()
        informers.stop_all()
        client.close()


if __name__ == "__main__":
    main()
