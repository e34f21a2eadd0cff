"""`pocketkube controller-manager`: flags and wiring only; the loops live in their modules.

Three controllers, named as in kube-controller-manager's ``--controllers``:

* ``endpoint`` (``controllers.endpoints``): each Service's Endpoints;
* ``nodeipam`` (``controllers.nodeipam``): a ``spec.podCIDR`` for every Node,
  active only with ``--allocate-node-cidrs`` (off by default, as upstream),
  from ``--cluster-cidr`` cut into ``--node-cidr-mask-size`` blocks, never
  inside ``--service-cluster-ip-range``;
* ``nodelifecycle`` (``controllers.nodetaint``): the NoSchedule taints that
  follow each Node's conditions. Upstream's node lifecycle controller also
  evicts pods from dead nodes (NoExecute) after grace periods; only its
  taint-by-condition pass is here.

``--controllers`` takes upstream's syntax: ``*`` is every controller on by
default, ``foo`` turns one on, ``-foo`` turns one off (``*,-nodelifecycle``
runs all but the taints). All of them share one node informer and one
client; the informers sync before anything acts, and the IPAM controller
occupies the blocks the Nodes already hold before it hands out a new one.
Runs until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from api import resources as R
from client.cache import namespace_index
from client.component import add_connection_flags, config_or_exit, setup_logging, stop_on_signals
from client.events import ClientEventSink, EventRecorder
from client.informer import SharedInformers
from client.rest import Client
from controllers.cidrset import CIDRSet, CIDRSetError
from controllers.endpoints import EndpointsController
from controllers.nodeipam import COMPONENT as IPAM_COMPONENT, NodeIPAMController
from controllers.nodetaint import NodeTaintController

log = logging.getLogger("controller-manager")

# kube-controller-manager's names and defaults.
CONTROLLERS = ("endpoint", "nodeipam", "nodelifecycle")
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_NODE_CIDR_MASK_SIZE = 24
DEFAULT_SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
MAX_IPV4_NODE_MASK = 30  # a /30 still holds the bridge gateway and one pod


def _go_bool(value: str) -> bool:
    """Go's strconv.ParseBool, for ``--allocate-node-cidrs=false`` as kube-controller-manager takes it."""
    v = value.strip().lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r} (true or false)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube controller-manager",
                                description="Run the pocketkube controllers (endpoint, nodeipam, nodelifecycle).")
    add_connection_flags(p)
    p.add_argument("--controllers", default="*",
                   help="comma-separated controllers to run: '*' is all on by default, 'foo' enables foo, "
                        f"'-foo' disables it; known: {', '.join(CONTROLLERS)} (default *)")
    p.add_argument("--allocate-node-cidrs", nargs="?", const=True, default=False, type=_go_bool,
                   help="give every Node a spec.podCIDR from --cluster-cidr (default false)")
    p.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR,
                   help=f"cluster pod CIDR the node blocks are cut from (default {DEFAULT_CLUSTER_CIDR})")
    p.add_argument("--node-cidr-mask-size", type=int, default=DEFAULT_NODE_CIDR_MASK_SIZE,
                   help=f"prefix length of each node's block (default {DEFAULT_NODE_CIDR_MASK_SIZE})")
    p.add_argument("--service-cluster-ip-range", default=DEFAULT_SERVICE_CLUSTER_IP_RANGE,
                   help="service ClusterIP range; where it overlaps --cluster-cidr no node gets a block "
                        f"(default {DEFAULT_SERVICE_CLUSTER_IP_RANGE})")
    p.add_argument("--concurrent-endpoint-syncs", type=int, default=5,
                   help="endpoints sync workers (default 5)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def parse_controllers(value: str) -> set[str]:
    """kube-controller-manager's ``--controllers`` list -> the set to run; ValueError names a bad entry."""
    enabled: set[str] = set()
    star = False
    off: set[str] = set()
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            star = True
            continue
        name = item[1:] if item.startswith("-") else item
        if name not in CONTROLLERS:
            raise ValueError(f"unknown controller {name!r} (known: {', '.join(CONTROLLERS)})")
        (off if item.startswith("-") else enabled).add(name)
    if star:
        enabled |= set(CONTROLLERS) - off
    return enabled - off


def validate(args: argparse.Namespace) -> tuple[set[str], CIDRSet | None, int]:
    """Check the flags; returns (controllers, the allocator or None, blocks reserved). ValueError says what is wrong."""
    try:
        controllers = parse_controllers(args.controllers)
    except ValueError as e:
        raise ValueError(f"--controllers: {e}") from None
    try:
        cluster = ipaddress.ip_network(args.cluster_cidr, strict=True)
    except ValueError as e:
        raise ValueError(f"--cluster-cidr: {e}") from None
    try:
        service = ipaddress.ip_network(args.service_cluster_ip_range, strict=True)
    except ValueError as e:
        raise ValueError(f"--service-cluster-ip-range: {e}") from None
    mask = args.node_cidr_mask_size
    if mask < cluster.prefixlen:
        raise ValueError(f"--node-cidr-mask-size {mask} must be at least the --cluster-cidr prefix length "
                         f"({cluster.prefixlen}): a node's block cannot be bigger than the cluster range")
    if cluster.version == 4 and mask > MAX_IPV4_NODE_MASK:
        raise ValueError(f"--node-cidr-mask-size {mask} must be at most {MAX_IPV4_NODE_MASK} for IPv4 "
                         "(a block needs room for the bridge gateway and a pod)")
    try:
        cidrs = CIDRSet(cluster, mask)
    except CIDRSetError as e:
        raise ValueError(f"--node-cidr-mask-size: {e}") from None
    if args.concurrent_endpoint_syncs < 1:
        raise ValueError("--concurrent-endpoint-syncs must be at least 1")
    reserved = cidrs.reserve(service)
    if args.allocate_node_cidrs and "nodeipam" in controllers and cidrs.free == 0:
        raise ValueError(f"--service-cluster-ip-range {service} covers all of --cluster-cidr {cluster}: "
                         "no block is left for any node")
    return controllers, (cidrs if args.allocate_node_cidrs else None), reserved


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        controllers, cidrs, reserved = validate(args)
    except ValueError as e:
        print(f"pocketkube controller-manager: error: {e}", file=sys.stderr)
        sys.exit(2)
    config = config_or_exit("controller-manager", args)

    stop = stop_on_signals(log)

    client = Client(config, timeout=30.0)
    informers = SharedInformers(client)
    recorder = EventRecorder(ClientEventSink(client), component=IPAM_COMPONENT)
    running: list = []
    endpoints_ctl = None
    if "endpoint" in controllers:
        services = informers.informer_for(R.SERVICES, indexers={"namespace": namespace_index})
        pods = informers.informer_for(R.PODS, indexers={"namespace": namespace_index})
        endpoints = informers.informer_for(R.ENDPOINTS)
        endpoints_ctl = EndpointsController(client, services.store, pods.store, endpoints.store,
                                            workers=args.concurrent_endpoint_syncs)
        endpoints_ctl.register(services, pods, endpoints)
        running.append(endpoints_ctl)
    ipam_ctl = None
    if "nodeipam" in controllers and cidrs is not None:
        nodes = informers.informer_for(R.NODES)
        ipam_ctl = NodeIPAMController(client, nodes.store, cidrs, recorder)
        ipam_ctl.register(nodes)
        running.append(ipam_ctl)
        log.info("node IPAM: /%d blocks of %s (%d blocks, %d reserved for the service range %s)",
                 cidrs.mask_size, cidrs.cluster, cidrs.max_cidrs, reserved, args.service_cluster_ip_range)
    elif "nodeipam" in controllers:
        log.info("node IPAM is off (--allocate-node-cidrs=false)")
    if "nodelifecycle" in controllers:
        nodes = informers.informer_for(R.NODES)
        taint_ctl = NodeTaintController(client, nodes.store)
        taint_ctl.register(nodes)
        running.append(taint_ctl)
    names = ", ".join(sorted(c for c in controllers if c != "nodeipam" or cidrs is not None)) or "none"
    log.info("starting controller-manager (%s; pid %d) against %s", names, os.getpid(), config.server)
    informers.start_all()
    while not stop.is_set() and not informers.wait_for_sync(1.0):
        log.info("waiting for the informers to sync with %s", config.server)
    recorder.start()
    try:
        if stop.is_set():
            return
        if endpoints_ctl is not None:
            endpoints_ctl.enqueue_leftovers()
        if ipam_ctl is not None:
            ipam_ctl.occupy_existing()  # before any worker hands out a block
        for ctl in running:
            ctl.start()
        stop.wait()
    finally:
        for ctl in running:
            ctl.stop()
        recorder.stop()
        informers.stop_all()
        client.close()


if __name__ == "__main__":
    main()
