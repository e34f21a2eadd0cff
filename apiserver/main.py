"""`pocketkube apiserver`: parse flags, build the app, run it on uvicorn.

Flags follow kube-apiserver's names where they exist (docs/design.md lists the
ones every launcher relies on). Only wiring lives here.

uvicorn runs with ``RawUpgradeProtocol`` (apiserver/rawupgrade.py) as its
HTTP protocol: httptools' protocol plus the raw-socket path that SPDY/3.1
exec and port-forward need, on every listener and under TLS alike.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys

from .discovery import DEFAULT_KUBE_VERSION
from .storage.log import storage_url_for


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketkube apiserver", description="Run the pocketkube API server.")
    p.add_argument("--bind-address", default="127.0.0.1",
                   help="address(es) to listen on, comma-separated, e.g. 127.0.0.1,100.64.0.1 (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=6443, help="port to listen on (default 6443)")
    p.add_argument("--data-dir", default="/var/lib/pocketkube", help="directory for the embedded SQLite database")
    p.add_argument("--storage", default=None,
                   help="storage URL: sqlite:////path/db or postgresql+psycopg://user:pw@host/db (default: SQLite in --data-dir)")
    p.add_argument("--sqlite-synchronous", default="NORMAL", choices=["NORMAL", "FULL"],
                   help="SQLite durability: NORMAL survives a killed process, FULL also a power cut (default NORMAL)")
    p.add_argument("--token-auth-file", default=None, help="token file (token,user,uid[,groups]); requests then need a bearer token")
    p.add_argument("--kubelet-token-file", default=None,
                   help="file whose first line is the bearer token sent to kubelets (pods/log, exec, portforward)")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12", help="service IP range (default 10.96.0.0/12)")
    p.add_argument("--service-node-port-range", default="30000-32767", help="NodePort range (default 30000-32767)")
    p.add_argument("--kube-version", default=DEFAULT_KUBE_VERSION,
                   help=f"Kubernetes version reported by /version; the dispatching kubectl runs the matching binary "
                        f"(default {DEFAULT_KUBE_VERSION}: the kubectl the protobuf schema comes from)")
    p.add_argument("--advertise-address", default=None, help="address written into default/kubernetes Endpoints")
    p.add_argument("--tls-cert-file", default=None)
    p.add_argument("--tls-private-key-file", default=None)
    p.add_argument("--compaction-interval", type=float, default=300.0, help="seconds between log compactions (0 disables)")
    p.add_argument("--min-request-timeout", type=int, default=1800,
                   help="a watch without timeoutSeconds ends after a random time in [N, 2N] seconds (default 1800)")
    p.add_argument("--event-ttl", type=float, default=3600.0, help="seconds Events are kept (default 3600)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _fail(msg: str) -> None:
    print(f"pocketkube apiserver: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        net = ipaddress.ip_network(args.service_cluster_ip_range, strict=True)
    except ValueError as e:
        _fail(f"--service-cluster-ip-range: {e}")
    if net.version != 4 or net.num_addresses < 32:
        _fail("--service-cluster-ip-range must be an IPv4 range of at least 32 addresses (for example 10.96.0.0/12)")
    try:
        lo, hi = (int(x) for x in args.service_node_port_range.split("-"))
        if not 1 <= lo < hi <= 65535:
            raise ValueError
    except ValueError:
        _fail("--service-node-port-range must look like 30000-32767")
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        _fail("--tls-cert-file and --tls-private-key-file go together")
    if args.min_request_timeout < 1:
        _fail("--min-request-timeout must be at least 1 second")
    url = args.storage
    if not url:
        try:
            os.makedirs(args.data_dir, exist_ok=True)
        except OSError as e:
            _fail(f"cannot create --data-dir {args.data_dir}: {e.strerror}")
        url = storage_url_for(args.data_dir)
    if args.token_auth_file and not os.path.exists(args.token_auth_file):
        _fail(f"--token-auth-file {args.token_auth_file} does not exist")
    if args.kubelet_token_file and not os.path.exists(args.kubelet_token_file):
        _fail(f"--kubelet-token-file {args.kubelet_token_file} does not exist")
    binds = [a.strip() for a in args.bind_address.split(",") if a.strip()]
    for a in binds:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            _fail(f"--bind-address {a!r} is not an IP address")
    # The address other machines reach us on: the last non-loopback one given.
    reachable = [a for a in binds if a not in ("0.0.0.0", "::") and not ipaddress.ip_address(a).is_loopback]
    advertise = args.advertise_address or (reachable[-1] if reachable else "127.0.0.1")

    import uvicorn

    from .app import ServerConfig, create_app
    from .auth import TokenFileError
    from .rawupgrade import RawUpgradeProtocol

    cfg = ServerConfig(
        storage_url=url, service_cidr=str(net), kube_version=args.kube_version,
        advertise_address=advertise, port=args.port, token_file=args.token_auth_file,
        kubelet_token_file=args.kubelet_token_file,
        sqlite_synchronous=args.sqlite_synchronous, compaction_interval=args.compaction_interval,
        event_ttl=args.event_ttl, node_port_range=(lo, hi), min_request_timeout=args.min_request_timeout,
    )
    try:
        app = create_app(cfg)
    except TokenFileError as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - e.g. PostgreSQL unreachable
        _fail(f"cannot open storage {url.split('@')[-1]}: {e}")
    sockets = []
    for a in binds:
        fam = socket.AF_INET6 if ":" in a else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((a, args.port))
        except OSError as e:
            _fail(f"cannot listen on {a}:{args.port}: {e.strerror} (is another server running there?)")
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    config = uvicorn.Config(
        app, log_level="warning", loop="uvloop", http=RawUpgradeProtocol, access_log=False,
        ssl_certfile=args.tls_cert_file, ssl_keyfile=args.tls_private_key_file,
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
