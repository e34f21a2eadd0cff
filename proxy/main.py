"""`pocketkube proxy`: flags and wiring only; the loop lives in proxy.proxier.

Runs in the node's network namespace (like kube-proxy in the host's) and
programs that namespace's iptables. It builds the client from the
kubeconfig (or ``--server``/``--token``), two informers (services,
endpoints) whose events only request a sync, waits for them to sync, then
runs the Proxier until SIGTERM/SIGINT. The rules stay in place when the
proxy stops (existing and new connections keep working through a restart);
``--cleanup`` removes everything the proxy ever added and exits.

``--netns NAME`` programs a named network namespace from outside instead
(``ip netns exec NAME iptables-restore ...``), for tests and benchmarks.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import sys

from api import resources as R
from client.informer import SharedInformers
from client.component import add_connection_flags, config_or_exit, setup_logging, stop_on_signals
from client.rest import Client
from nodeutil.iptables import ConntrackRunner, IptablesError, IptablesRunner
from proxy.proxier import Proxier
from proxy.rules import Config

log = logging.getLogger("proxy")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube proxy",
                                description="Run the pocketkube service proxy (iptables mode) for one node.")
    p.add_argument("--node-name", default=None,
                   help="the node this proxy programs; endpoints with this nodeName are its local ones, the only "
                        "ones a Local traffic policy uses (default: hostname)")
    add_connection_flags(p)
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="pod CIDR; service traffic from outside it is masqueraded (default 10.244.0.0/16)")
    p.add_argument("--masquerade-all", action="store_true", help="SNAT all traffic sent to cluster IPs")
    p.add_argument("--min-sync-period", type=float, default=0.1,
                   help="seconds between syncs at the least; changes in between are batched (default 0.1)")
    p.add_argument("--sync-period", type=float, default=30.0, help="seconds between syncs at the most (default 30)")
    p.add_argument("--netns", default=None, help="program this named network namespace (tests, benchmarks)")
    p.add_argument("--cleanup", action="store_true", help="remove every rule and chain the proxy added, then exit")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _fail(msg: str) -> None:
    print(f"pocketkube proxy: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    for tool in ("iptables-restore", "iptables-save"):
        if shutil.which(tool) is None:
            _fail(f"{tool} not found: apt-get install iptables")
    runner = IptablesRunner(netns=args.netns)
    conntrack = ConntrackRunner(netns=args.netns)
    if shutil.which("conntrack") is None:
        log.warning("conntrack not found (apt-get install conntrack): stale UDP flows will not be removed")
    if args.cleanup:
        proxier = Proxier(runner, conntrack, Config(), services=list, endpoints=list)
        try:
            removed = proxier.cleanup()
        except IptablesError as e:
            _fail(f"cleanup failed: {e}")
        print("removed the proxy's rules" if removed else "nothing to remove")
        return
    try:
        cidr = str(ipaddress.ip_network(args.cluster_cidr, strict=True)) if args.cluster_cidr else None
    except ValueError as e:
        _fail(f"--cluster-cidr: {e}")
    if args.min_sync_period < 0 or args.sync_period <= 0:
        _fail("--min-sync-period must be >= 0 and --sync-period > 0")
    config = config_or_exit("proxy", args)
    node = args.node_name or os.uname().nodename

    client = Client(config, timeout=30.0)
    informers = SharedInformers(client)
    services = informers.informer_for(R.SERVICES)
    endpoints = informers.informer_for(R.ENDPOINTS)
    proxier = Proxier(runner, conntrack, Config(cluster_cidr=cidr, masquerade_all=args.masquerade_all, node_name=node),
                      services=services.store.list, endpoints=endpoints.store.list,
                      min_sync_period=args.min_sync_period, sync_period=args.sync_period)
    for inf in (services, endpoints):
        inf.add_handler(on_add=proxier.request_sync, on_update=proxier.request_sync,
                        on_delete=proxier.request_sync)
    # request_sync wakes the loop so it sees the stop at once
    stop = stop_on_signals(log, " (rules stay in place)", wake=proxier.request_sync)
    log.info("starting proxy for node %s (pid %d) against %s%s", node, os.getpid(), config.server,
             f" in netns {args.netns}" if args.netns else "")
    informers.start_all()
    try:
        proxier.run(stop, ready=lambda: informers.wait_for_sync(0))
    finally:
        informers.stop_all()
        client.close()


if __name__ == "__main__":
    main()
