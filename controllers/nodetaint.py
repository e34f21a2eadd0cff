"""Taint nodes by condition: the NoSchedule pass of Kubernetes' node lifecycle controller.

A Node's conditions say what is wrong with it; taints are what the scheduler
acts on, and what a pod can tolerate one by one (a CNI DaemonSet tolerates
``network-unavailable``, so it can start on a node no other pod may use
yet). Upstream's ``doNoScheduleTaintingPass`` turns one into the other, and
so does this controller:

=========================  ===========  ==========================================
condition                  status       NoSchedule taint
=========================  ===========  ==========================================
Ready                      False        ``node.kubernetes.io/not-ready``
Ready                      Unknown      ``node.kubernetes.io/unreachable``
Ready                      (missing)    ``node.kubernetes.io/unreachable``
MemoryPressure             True         ``node.kubernetes.io/memory-pressure``
DiskPressure               True         ``node.kubernetes.io/disk-pressure``
PIDPressure                True         ``node.kubernetes.io/pid-pressure``
NetworkUnavailable         True         ``node.kubernetes.io/network-unavailable``
``spec.unschedulable``     true         ``node.kubernetes.io/unschedulable``
=========================  ===========  ==========================================

A missing Ready condition counts as Unknown: that is the rule the scheduler
already applies to its virtual ready taint (``scheduler.types.node_ready_taint``),
and what upstream reaches too, once its grace period turns a silent node's
Ready to Unknown (pocketkube has no such heartbeat monitor yet, so a Node
that never reported stays unreachable from the start; the taint goes when
the kubelet posts Ready=True). The first Ready condition wins, as in the
scheduler.

Only NoSchedule taints with these seven keys are this controller's: it adds
the missing ones (with ``timeAdded``, as upstream's
``SwapNodeControllerTaint``), removes the ones no longer wanted, keeps a
wanted one as it is (its value and time), and never touches any other taint
(a user's ``dedicated=gpu:NoSchedule``, a ``not-ready:NoExecute``).

The write is upstream's ``PatchNodeTaints``: ``spec.taints`` has no
``patchMergeKey``, so a patch replaces the whole list; the patch carries the
cached ``resourceVersion``, making it compare-and-swap, so a taint someone
added meanwhile is not lost: the server answers 409 and the key is retried
with backoff from the work queue, against the newer cache.

Level-triggered (docs/design.md style 1-3): events enqueue a node name;
``sync(name)`` reads the cache, computes the desired list (``compute_taints``,
pure) and writes only on a difference.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from api import resources as R
from api.kinds.node import (
    TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_NETWORK_UNAVAILABLE, TAINT_NOT_READY, TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE,
)
from api.meta import now
from client.cache import Store
from client.errors import NotFound
from client.workqueue import WorkQueue
from controllers.workers import QueueWorkers

log = logging.getLogger(__name__)

NO_SCHEDULE = "NoSchedule"

# Upstream's nodeConditionToTaintKeyStatusMap (Ready "missing" is handled in desired_taint_keys).
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
}
MANAGED_KEYS = frozenset({k for m in CONDITION_TAINTS.values() for k in m.values()} | {TAINT_UNSCHEDULABLE})


# --------------------------------------------------------------- pure part
def _md(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def desired_taint_keys(node: dict) -> list[str]:
    """The keys of the NoSchedule taints ``node``'s conditions and ``spec.unschedulable`` call for, in order."""
    keys: list[str] = []
    seen_types: set[str] = set()
    for cond in (node.get("status") or {}).get("conditions") or ():
        ctype = cond.get("type")
        if ctype in seen_types or ctype not in CONDITION_TAINTS:
            continue  # the first condition of a type wins, as in the scheduler
        seen_types.add(ctype)
        key = CONDITION_TAINTS[ctype].get(cond.get("status"))
        if key:
            keys.append(key)
    if "Ready" not in seen_types:
        keys.insert(0, TAINT_UNREACHABLE)
    if (node.get("spec") or {}).get("unschedulable"):
        keys.append(TAINT_UNSCHEDULABLE)
    return keys


def is_managed(taint: dict) -> bool:
    return taint.get("effect") == NO_SCHEDULE and taint.get("key") in MANAGED_KEYS


def compute_taints(node: dict, timestamp: str | None = None) -> list[dict] | None:
    """The Node's whole new ``spec.taints``, or None when it already is right.

    Taints that are not ours keep their place; ours that stay keep theirs
    (value and ``timeAdded`` too); new ones go at the end with ``timeAdded``.
    """
    current = list((node.get("spec") or {}).get("taints") or [])
    want = desired_taint_keys(node)
    have = [t.get("key") for t in current if is_managed(t)]
    if sorted(have) == sorted(want):
        return None
    wanted = set(want)
    out: list[dict] = []
    kept: set[str] = set()
    for t in current:
        if not is_managed(t):
            out.append(t)
        elif t["key"] in wanted and t["key"] not in kept:
            out.append(t)
            kept.add(t["key"])
    ts = timestamp or now()
    out.extend({"key": k, "effect": NO_SCHEDULE, "timeAdded": ts} for k in want if k not in kept)
    return out


def taint_patch(node: dict, taints: list[dict]) -> dict:
    """Upstream's PatchNodeTaints body: the whole list (null when empty) guarded by the resourceVersion."""
    patch: dict[str, Any] = {"spec": {"taints": taints or None}}
    rv = _md(node).get("resourceVersion")
    if rv:
        patch["metadata"] = {"resourceVersion": rv}
    return patch


# ----------------------------------------------------------- the controller
def _relevant(old: dict, new: dict) -> bool:
    """Can this update change the taints? (heartbeats rewrite timestamps only)."""
    if old is new:
        return True  # resync replay
    return desired_taint_keys(old) != desired_taint_keys(new) or \
        (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints")


class NodeTaintController(QueueWorkers):
    """Informer events enqueue node names; workers run ``sync(name)``.

    ``nodes`` is the node informer's Store; ``client`` needs ``patch``.
    """

    worker_name = "nodetaint"
    what = "node taints: sync of"
    log = log

    def __init__(self, client: Any, nodes: Store, *, queue: WorkQueue | None = None, workers: int = 2):
        self.client = client
        self.nodes = nodes
        self.queue = queue or WorkQueue(max_delay=30.0, name="nodetaint")
        self.workers = workers
        self._threads: list[threading.Thread] = []

    def register(self, nodes_informer: Any) -> None:
        nodes_informer.add_handler(on_add=self._enqueue, on_update=self._on_update)

    def _enqueue(self, node: dict) -> None:
        name = _md(node).get("name")
        if name:
            self.queue.add(name)

    def _on_update(self, old: dict, new: dict) -> None:
        if _relevant(old, new):
            self._enqueue(new)

    def sync(self, name: str) -> None:
        """Converge Node ``name``'s NoSchedule taints; a 409 (stale cache) raises to be retried."""
        node = self.nodes.get_by_key(name)
        if node is None:
            return
        taints = compute_taints(node)
        if taints is None:
            return
        try:
            self.client.patch(R.NODES, name, taint_patch(node, taints), patch_type="strategic")
        except NotFound:
            return
        log.info("node taints: %s now %s", name,
                 ", ".join(f"{t.get('key')}:{t.get('effect')}" for t in taints if is_managed(t)) or "untainted")



__all__ = ["NodeTaintController", "compute_taints", "desired_taint_keys", "taint_patch", "is_managed",
           "CONDITION_TAINTS", "MANAGED_KEYS", "NO_SCHEDULE"]
