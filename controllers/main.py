"""`pocketkube controller-manager`: flags and wiring only; the loops live in their modules.

Wave 1 runs one controller, the endpoints controller
(``controllers.endpoints``). This builds the client from the kubeconfig (or
``--server``/``--token``), three shared informers (services, pods,
endpoints), waits for them to sync, enqueues leftover Endpoints, and runs the
workers until SIGTERM/SIGINT.

``--cluster-cidr`` is accepted now (docs/design.md's launcher flags) for the
node IPAM controller of a later wave; the endpoints controller needs no
address range.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from api import resources as R
from client.cache import namespace_index
from client.informer import SharedInformers
from client.component import add_connection_flags, config_or_exit, setup_logging, stop_on_signals
from client.rest import Client
from controllers.endpoints import EndpointsController

log = logging.getLogger("controller-manager")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube controller-manager",
                                description="Run the pocketkube controllers (wave 1: endpoints).")
    add_connection_flags(p)
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="cluster pod CIDR (default 10.244.0.0/16)")
    p.add_argument("--concurrent-endpoint-syncs", type=int, default=5,
                   help="endpoints sync workers (default 5)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        ipaddress.ip_network(args.cluster_cidr, strict=True)
    except ValueError as e:
        print(f"pocketkube controller-manager: error: --cluster-cidr: {e}", file=sys.stderr)
        sys.exit(2)
    if args.concurrent_endpoint_syncs < 1:
        print("pocketkube controller-manager: error: --concurrent-endpoint-syncs must be at least 1", file=sys.stderr)
        sys.exit(2)
    config = config_or_exit("controller-manager", args)

    stop = stop_on_signals(log)

    client = Client(config, timeout=30.0)
    informers = SharedInformers(client)
    services = informers.informer_for(R.SERVICES, indexers={"namespace": namespace_index})
    pods = informers.informer_for(R.PODS, indexers={"namespace": namespace_index})
    endpoints = informers.informer_for(R.ENDPOINTS)
    controller = EndpointsController(client, services.store, pods.store, endpoints.store,
                                     workers=args.concurrent_endpoint_syncs)
    controller.register(services, pods, endpoints)
    log.info("starting controller-manager (endpoints; pid %d) against %s", os.getpid(), config.server)
    informers.start_all()
    while not stop.is_set() and not informers.wait_for_sync(1.0):
        log.info("waiting for the informers to sync with %s", config.server)
    try:
        if stop.is_set():
            return
        controller.enqueue_leftovers()
        controller.run(stop)
    finally:
        controller.stop()
        informers.stop_all()
        client.close()


if __name__ == "__main__":
    main()
