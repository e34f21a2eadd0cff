"""The scheduler's view of what is on every node, including what it just decided.

Binding is asynchronous: the scheduling loop picks a node, then hands the
``pods/binding`` POST to a worker and moves on to the next pod at once. The
next pod must already see the first one's requests on that node, or two
pods would be placed in the same free millicores. So the loop *assumes* the
pod onto the node in this cache before binding, and then:

* the bind succeeds -> ``finish_binding``; the assumption stays until the pod
  comes back through the watch with ``spec.nodeName`` set, which *confirms*
  it (``add_pod``/``update_pod`` replace the assumed entry);
* the bind fails -> ``forget_pod`` gives the resources back;
* the pod is deleted before we saw it bound -> the informer's delete (or,
  after a relist, its "vanished" delete) removes the assumption like any pod.

A successful bind is always confirmed or deleted through the watch, so, as
upstream since 1.23, assumptions do not expire by default: expiring one while
the watch lags (a burst, an API server restart) would make its millicores
look free and double-book them. ``assumed_ttl`` (seconds after
``finish_binding``; ``cleanup_expired``, run by the loop) exists as an
explicit safety valve for callers that want it.

Everything else comes from informers: nodes (allocatable, labels, taints,
readiness) and pods already bound (their requests and host ports). On start
the informers list the whole cluster before the loop runs, so a restarted
scheduler rebuilds exactly the allocations that exist and never double-books;
assumptions are in-memory only and die with the process, which is safe
because nothing is assumed that was not also about to be written.

Pods bound to a node whose Node object is unknown keep a NodeInfo without a
node (accounting kept, never a candidate), so a node that (re)appears starts
with the right usage.

One ``lock`` guards everything; the scheduling loop holds it for a whole
decision (filter, score, assume), so a decision is made on a consistent view
and informer updates wait at most one cycle.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from scheduler.types import NodeInfo, PodInfo, pod_key

TERMINAL_PHASES = ("Succeeded", "Failed")


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def _same_for_scheduling(pi: PodInfo, pod: dict) -> bool:
    """Would a new PodInfo for ``pod`` equal ``pi``?

    Same uid, same spec but for ``nodeName``, same labels, owners and
    deletion mark (the metadata plugins read).
    """
    md = pod.get("metadata") or {}
    old_md = pi.obj.get("metadata") or {}
    if md.get("uid") != pi.uid or (md.get("labels") or {}) != pi.labels:
        return False
    if md.get("ownerReferences") != old_md.get("ownerReferences") or \
            md.get("deletionTimestamp") != old_md.get("deletionTimestamp"):
        return False
    spec = pod.get("spec") or {}
    if spec is pi.spec:
        return True
    old_spec = pi.spec
    if len(spec) != len(old_spec) + (0 if "nodeName" in old_spec else 1):
        return False
    for k, v in spec.items():
        if k != "nodeName" and old_spec.get(k) != v:
            return False
    return True


class SchedulerCache:
    def __init__(self, assumed_ttl: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.lock = threading.RLock()
        self.assumed_ttl = assumed_ttl
        self.clock = clock
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, tuple[PodInfo, str]] = {}   # key -> (pod, node name), bound and assumed
        self._assumed: dict[str, float | None] = {}       # key -> expiry deadline (None: bind in flight)
        self._candidates: list[NodeInfo] | None = None    # nodes with a Node object, in arrival order

    # ------------------------------------------------------------------ nodes
    def add_node(self, node: dict) -> NodeInfo:
        name = node["metadata"]["name"]
        with self.lock:
            ni = self._nodes.get(name)
            if ni is None:
                ni = self._nodes[name] = NodeInfo(name)
            had_node = ni.node is not None
            ni.set_node(node)
            if not had_node:
                self._candidates = None
            return ni

    update_node = add_node

    def remove_node(self, node_or_name: dict | str) -> None:
        name = node_or_name if isinstance(node_or_name, str) else node_or_name["metadata"]["name"]
        with self.lock:
            ni = self._nodes.get(name)
            if ni is None:
                return
            if ni.pods:
                ni.set_node(None)   # keep the accounting of pods still bound there
            else:
                del self._nodes[name]
            self._candidates = None

    def node_infos(self) -> list[NodeInfo]:
        """The candidate nodes (those with a Node object); call with ``lock`` held for a consistent view."""
        with self.lock:
            if self._candidates is None:
                self._candidates = [ni for ni in self._nodes.values() if ni.node is not None]
            return self._candidates

    def node_info(self, name: str) -> NodeInfo | None:
        with self.lock:
            return self._nodes.get(name)

    def node_count(self) -> int:
        return len(self.node_infos())

    # ------------------------------------------------------------------- pods
    def _place(self, pi: PodInfo, node_name: str) -> None:
        ni = self._nodes.get(node_name)
        if ni is None:
            ni = self._nodes[node_name] = NodeInfo(node_name)
        ni.add_pod(pi)
        self._pods[pi.key] = (pi, node_name)

    def _unplace(self, key: str) -> tuple[PodInfo, str] | None:
        entry = self._pods.pop(key, None)
        if entry is None:
            return None
        pi, node_name = entry
        ni = self._nodes.get(node_name)
        if ni is not None:
            ni.remove_pod(key)
            if ni.node is None and not ni.pods:
                del self._nodes[node_name]
        return entry

    def add_pod(self, pod: dict) -> None:
        """A pod seen bound (``spec.nodeName`` set) through the informer; confirms an assumption."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        key = pod_key(pod)
        with self.lock:
            if is_terminal(pod):
                self._assumed.pop(key, None)
                self._unplace(key)
                return
            self._assumed.pop(key, None)
            entry = self._pods.get(key)
            if entry is not None and entry[1] == node_name and _same_for_scheduling(entry[0], pod):
                # The usual case: our own assumption confirmed, or a status-only update
                # (kubelet heartbeats): nothing the plugins read changed, keep the PodInfo.
                entry[0].obj = pod
                entry[0].node_name = node_name
                return
            self._unplace(key)
            self._place(PodInfo(pod), node_name)

    def update_pod(self, old: dict | None, new: dict) -> None:
        self.add_pod(new)

    def remove_pod(self, pod_or_key: dict | str) -> None:
        key = pod_or_key if isinstance(pod_or_key, str) else pod_key(pod_or_key)
        with self.lock:
            self._assumed.pop(key, None)
            self._unplace(key)

    # --------------------------------------------------------------- assuming
    def assume_pod(self, pi: PodInfo, node_name: str) -> None:
        """Account ``pi`` on ``node_name`` before the bind is written."""
        with self.lock:
            if pi.key in self._pods:
                raise ValueError(f"pod {pi.key} is already in the cache")
            self._place(pi, node_name)
            self._assumed[pi.key] = None

    def finish_binding(self, key: str) -> None:
        """The bind was written; the watch should confirm it soon, else the assumption expires."""
        with self.lock:
            if key in self._assumed:
                self._assumed[key] = float("inf") if self.assumed_ttl is None else self.clock() + self.assumed_ttl

    def forget_pod(self, key: str) -> None:
        """The bind failed: give the resources back (no-op if the watch already confirmed it)."""
        with self.lock:
            if key in self._assumed:
                del self._assumed[key]
                self._unplace(key)

    def is_assumed(self, key: str) -> bool:
        with self.lock:
            return key in self._assumed

    def assumed_node(self, key: str) -> str | None:
        with self.lock:
            if key in self._assumed:
                return self._pods[key][1]
            return None

    def cleanup_expired(self) -> list[str]:
        """Drop assumptions whose bind finished more than ``assumed_ttl`` ago without confirmation."""
        now = self.clock()
        expired = []
        with self.lock:
            for key, deadline in list(self._assumed.items()):
                if deadline is not None and deadline <= now:
                    del self._assumed[key]
                    self._unplace(key)
                    expired.append(key)
        return expired

    # -------------------------------------------------------------- inspection
    def pod_node(self, key: str) -> str | None:
        with self.lock:
            entry = self._pods.get(key)
            return entry[1] if entry else None

    def pod_count(self) -> int:
        with self.lock:
            return len(self._pods)

    def assumed_count(self) -> int:
        with self.lock:
            return len(self._assumed)

    def dump(self) -> dict[str, dict]:
        """Per node: pods and requested resources (for debugging and tests)."""
        with self.lock:
            return {
                name: {"pods": sorted(ni.pods), "requested": ni.requested.as_dict(),
                       "allocatable": ni.allocatable.as_dict(), "has_node": ni.node is not None}
                for name, ni in self._nodes.items()
            }


__all__ = ["SchedulerCache", "is_terminal", "TERMINAL_PHASES"]
