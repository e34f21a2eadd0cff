"""Linux namespaces for node agents: the clone flags, ``setns``/``unshare``, and sockets made inside a netns.

The runtime enters and creates namespaces for its sandboxes and containers;
the CNI plugin, the kubelet's port-forward and the coming network agents
open sockets inside a pod's (or a node's) network namespace. ``setns``
changes only the calling thread, and a socket stays in the namespace it was
created in, so ``socket_in_netns`` lets a throwaway thread enter, make the
socket and end: no long-lived thread ever changes namespace (pyroute2's
``netns=`` forks a helper process instead, a poor idea in a multi-threaded
agent, and it would create a missing namespace unless told not to).

A network namespace is named by a path: ``/proc/<pid>/ns/net`` (a
sandbox's pause process) or ``/var/run/netns/<name>`` (``ip netns``).
"""
from __future__ import annotations

import os
import socket
import threading

from nodeutil.libc import LIBC, check

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000


def process_ns_path(pid: int, kind: str = "net") -> str:
    """The namespace of ``kind`` (net, ipc, uts, pid, mnt) process ``pid`` is in."""
    return f"/proc/{pid}/ns/{kind}"


def unshare(flags: int) -> None:
    check(LIBC.unshare(flags), "unshare")


def setns(path: str, nstype: int = 0) -> None:
    """Move the calling thread into the namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        check(LIBC.setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def socket_in_netns(path: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket created inside the network namespace at ``path`` (FileNotFoundError if it is gone).

    A throwaway thread enters the namespace, makes the socket and ends: the
    caller's threads never change namespace.
    """
    box: dict = {}

    def run() -> None:
        try:
            setns(path, CLONE_NEWNET)
            box["sock"] = socket.socket(family, type, proto)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name="setns-socket", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]
