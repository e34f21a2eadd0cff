"""`pocketkube dns`: flags and wiring only; the logic lives in the modules beside this one.

Cluster DNS runs in a node's network namespace, like a host-network pod
(docs/design.md, "Interfaces between components"). This builds the client from
the kubeconfig (or ``--server``/``--token``), the Services, Endpoints and
(unless ``--pods disabled|insecure``) Pods informers, the resolver over
their Stores (``records``), the wire handler with its encoded-answer cache
(``handler``), the optional upstream forwarder (``forward``), the UDP and
TCP servers and the health/readiness endpoint (``server``), and the
kube-system/kube-dns registration (``kubedns``). Sockets are bound before
anything else, so a port in use fails at once; DNS is served from then on
(SERVFAIL for cluster names until the caches sync, then answers from the
caches only, API server up or not) until SIGTERM/SIGINT, which withdraws
this process's address from the kube-dns Endpoints.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
import threading
import time

from client.component import add_connection_flags, config_or_exit, setup_logging, stop_on_signals
from client.informer import SharedInformers
from client.rest import Client

from addons.dns import view as dnsview
from addons.dns.forward import Forwarder, parse_upstreams
from addons.dns.handler import DNSHandler
from addons.dns.kubedns import Registrar
from addons.dns.records import PODS_MODES, Resolver
from addons.dns.server import (HealthServer, TCPServer, UDPServer, advertise_address, bind_tcp, bind_udp,
                               parse_listen)

log = logging.getLogger("dns")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube dns",
                                description="Run the pocketkube cluster DNS server (service discovery by name).")
    add_connection_flags(p)
    p.add_argument("--listen", default="0.0.0.0:53",
                   help="address and port for DNS over UDP and TCP (default 0.0.0.0:53)")
    p.add_argument("--health-port", type=int, default=8080,
                   help="HTTP port for /health, /ready and /metrics on the --listen host (default 8080; 0 = off)")
    p.add_argument("--cluster-domain", default="cluster.local", help="the cluster domain (default cluster.local)")
    p.add_argument("--upstream", action="append", default=None, metavar="ADDR[:PORT]",
                   help="resolver for names outside the cluster (repeatable, comma lists, or a resolv.conf "
                        "path); without one those names get SERVFAIL at once")
    p.add_argument("--upstream-timeout", type=float, default=2.0, help="seconds for all upstreams (default 2)")
    p.add_argument("--cluster-ip", default="10.96.0.10", help="ClusterIP of kube-system/kube-dns (default 10.96.0.10)")
    p.add_argument("--advertise-address", default=None,
                   help="address written into the kube-dns Endpoints (default: the --listen host if specific, "
                        "else the first non-loopback IPv4 address of this network namespace)")
    p.add_argument("--node-name", default=None, help="nodeName of this process's address in the Endpoints")
    p.add_argument("--register", action=argparse.BooleanOptionalAction, default=True,
                   help="ensure the kube-dns Service and Endpoints (default on)")
    p.add_argument("--ttl", type=int, default=5, help="TTL of answers and negative answers, seconds (default 5)")
    p.add_argument("--pods", default="verified", choices=PODS_MODES,
                   help="a-b-c-d.<ns>.pod records: verified (a pod has that IP; default), insecure, disabled")
    p.add_argument("--max-udp-size", type=int, default=4096,
                   help="largest UDP answer, the EDNS0 buffer size advertised (default 4096)")
    p.add_argument("--cache-size", type=int, default=100_000, help="encoded answers kept per transport")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _fail(msg: str) -> None:
    print(f"pocketkube dns: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        host, port = parse_listen(args.listen)
    except ValueError as e:
        _fail(f"--listen {args.listen!r}: {e}")
    try:
        upstreams = parse_upstreams(args.upstream)
    except (ValueError, OSError) as e:
        _fail(f"--upstream: {e}")
    try:
        ipaddress.IPv4Address(args.cluster_ip)
        if args.advertise_address:
            ipaddress.ip_address(args.advertise_address)
    except ValueError as e:
        _fail(str(e))
    if args.ttl < 0 or not 512 <= args.max_udp_size <= 65535:
        _fail("--ttl must be >= 0 and --max-udp-size within 512..65535")
    domain = args.cluster_domain.strip(".")
    if not domain or " " in domain:
        _fail("--cluster-domain must be a domain name")
    config = config_or_exit("dns", args)
    address = advertise_address(host, args.advertise_address) if args.register else None
    if args.register and not address:
        _fail("no address to register in kube-system/kube-dns: pass --advertise-address")

    try:
        udp_sock, tcp_sock = bind_udp(host, port), None
        tcp_sock = bind_tcp(host, udp_sock.getsockname()[1])
    except OSError as e:
        _fail(f"cannot listen on {host}:{port}: {e}")

    client = Client(config, timeout=10.0)
    informers = SharedInformers(client)
    svc_inf, ep_inf, pod_inf = dnsview.informers_for(informers, pods=args.pods == "verified")
    cluster = dnsview.ClusterView(svc_inf.store, ep_inf.store, pod_inf.store if pod_inf else None)
    synced = threading.Event()
    resolver = Resolver(cluster, domain, args.ttl, pods=args.pods, synced=synced.is_set, serial=int(time.time()))
    forwarder = Forwarder(upstreams, timeout=args.upstream_timeout) if upstreams else None
    handler = DNSHandler(resolver, max_udp=args.max_udp_size, cache_size=args.cache_size,
                         recursion_available=forwarder is not None)
    dnsview.watch(svc_inf, ep_inf, pod_inf, handler.invalidate)
    registrar = Registrar(client, args.cluster_ip, address, port, node_name=args.node_name) if address else None
    if registrar:
        svc_inf.add_handler(**registrar.handlers())
        ep_inf.add_handler(**registrar.handlers())

    udp = UDPServer(udp_sock, handler, forwarder).start()
    tcp = TCPServer(tcp_sock, handler, forwarder).start()
    health = None
    if args.health_port:
        def metrics() -> dict:
            return {"pocketkube_dns_udp_queries_total": udp.queries,
                    "pocketkube_dns_udp_cache_misses_total": udp.misses,
                    "pocketkube_dns_tcp_queries_total": tcp.queries,
                    "pocketkube_dns_forwarded_total": forwarder.forwarded if forwarder else 0,
                    "pocketkube_dns_forward_failures_total": forwarder.failed if forwarder else 0,
                    "pocketkube_dns_cache_generation": handler.generation}
        try:
            health = HealthServer(host, args.health_port, synced.is_set, metrics).start()
        except OSError as e:
            _fail(f"cannot listen on {host}:{args.health_port} for /health: {e}")

    stop = stop_on_signals(log)
    log.info("serving DNS for %s on %s:%d udp+tcp (pid %d) against %s; upstream: %s", domain, host,
             udp_sock.getsockname()[1], os.getpid(), config.server,
             ", ".join(f"{h}:{p}" for h, p in upstreams) or "none (SERVFAIL)")
    informers.start_all()
    reg_thread = None
    if registrar:
        reg_thread = threading.Thread(target=registrar.run, args=(stop,), name="kube-dns-registrar", daemon=True)
        reg_thread.start()
    try:
        while not stop.is_set() and not informers.wait_for_sync(1.0):
            log.info("waiting for the informer caches to sync with %s", config.server)
        if not stop.is_set():
            synced.set()
            handler.invalidate()
            log.info("caches synced: %d services, %d endpoints%s", len(svc_inf.store), len(ep_inf.store),
                     f", {len(pod_inf.store)} pods" if pod_inf else "")
        stop.wait()
    finally:
        if reg_thread is not None:
            reg_thread.join(5.0)          # no sync racing the withdrawal
        if registrar:
            registrar.withdraw()
        udp.stop()
        tcp.stop()
        if health:
            health.stop()
        if forwarder:
            forwarder.close()
        informers.stop_all()
        client.close()


if __name__ == "__main__":
    main()
