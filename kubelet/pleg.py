"""The pod lifecycle event generator (PLEG): notice what changed in the runtime by relisting it.

Containers exit and pause processes die without the kubelet asking; the
runtime does not push events, so (as the kubelet's generic PLEG does) every
``RELIST_PERIOD`` one pass lists all sandboxes and containers, builds a
signature per pod (each sandbox's state, each container's state and exit
code) and enqueues the pods whose signature changed since the last pass.
It only enqueues: ``PodSyncer.sync`` reads the runtime again and decides
(docs/design.md style 1).

``seen`` lets the sync that just started a new pod record what the runtime
now has for it, so the next pass does not enqueue the pod only for the sync
to find its own work.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from kubelet.runtime.client import RuntimeCallError

log = logging.getLogger("kubelet.pleg")

RELIST_PERIOD = 0.5


def entry(sandbox: dict, containers: list[dict]) -> tuple:
    """What the PLEG compares per sandbox: its state and each container's state and exit code."""
    return (sandbox["id"], sandbox["state"],
            tuple(sorted((c["id"], c["state"], c["exit_code"]) for c in containers)))


class PLEG:
    def __init__(self, runtime, enqueue: Callable[[str], None], period: float = RELIST_PERIOD):
        self.runtime = runtime
        self.enqueue = enqueue
        self.period = period
        self._sig: dict[str, Any] = {}

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.period):
            try:
                self.relist()
            except RuntimeCallError as e:
                log.warning("runtime relist failed: %s", e)

    def relist(self) -> None:
        """One pass: enqueue every pod whose sandboxes or containers changed since the last pass."""
        sandboxes = self.runtime.call("list_sandboxes", namespace=None, name=None)["items"]
        containers = self.runtime.call("list_containers")["items"]
        by_sb: dict[str, list] = {}
        for c in containers:
            by_sb.setdefault(c["sandbox_id"], []).append(c)
        sig: dict[str, list] = {}
        for sb in sandboxes:
            p = sb["pod"]
            sig.setdefault(f"{p['namespace']}/{p['name']}", []).append(entry(sb, by_sb.get(sb["id"], [])))
        for key, s in sig.items():
            if self._sig.get(key) != s:
                self.enqueue(key)
        self._sig = sig

    def seen(self, key: str, sandbox: dict, containers: list[dict]) -> None:
        """Take ``sandbox`` with ``containers`` as the pod's whole current state, already synced (a relist
        snapshot taken before this call may still overwrite it: one extra sync)."""
        self._sig[key] = [entry(sandbox, containers)]
