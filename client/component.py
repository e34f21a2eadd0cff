"""What every component's command line shares: how to reach the API server, and logging.

The scheduler, controller manager, proxy, kubelet and DNS all take
--kubeconfig/--server/--token with the same meaning, log the same way, fail
on a bad kubeconfig with the same one-line message, and stop on SIGTERM/SIGINT
the same way. Keeping that
here means a new component cannot drift from the others.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

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


def stop_on_signals(log: logging.Logger, note: str = "", wake=None) -> threading.Event:
    """An Event set by SIGTERM or SIGINT (logged): every component's loop runs until it is set.

    ``wake`` is called after setting it, for a loop that sleeps on something else."""
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("received signal %d, shutting down%s", signum, note)
        stop.set()
        if wake is not None:
            wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
