"""What every component's command line shares: how to reach the API server, and logging.

The scheduler, controller manager, proxy (and later the kubelet and DNS) all
take --kubeconfig/--server/--token with the same meaning, log the same way,
and fail on a bad kubeconfig with the same one-line message. Keeping that
here means a new component cannot drift from the others.
"""
from __future__ import annotations

import argparse
import logging
import sys

from client.kubeconfig import Config, ConfigError, load_config


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, ...)")
    p.add_argument("--server", default=None, help="API server URL (overrides the kubeconfig)")
    p.add_argument("--token", default=None, help="bearer token (overrides the kubeconfig)")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "debug":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise


def config_or_exit(prog: str, args: argparse.Namespace) -> Config:
    """The client config from the connection flags, or exit 2 with a message naming the fix."""
    try:
        return load_config(args.kubeconfig, server=args.server, token=args.token)
    except ConfigError as e:
        print(f"pocketkube {prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
