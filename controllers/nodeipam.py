"""The node IPAM controller: every Node gets one block of the cluster pod range in ``spec.podCIDR``.

Kubernetes' ``nodeipam`` controller with the ``RangeAllocator`` (what
``kube-controller-manager --allocate-node-cidrs`` runs): the kubelet of a
multi-node cluster is started without ``--pod-cidr`` and waits for its Node's
``spec.podCIDR``; the network agents route each node's block to it. This
controller is where those blocks come from. The allocator is
``controllers.cidrset.CIDRSet``; this module keeps it in step with the Nodes.

* **Start.** Only once the node informer has synced, every Node's existing
  block is occupied (``occupy_existing``) before a single new one is handed
  out, so a restarted controller-manager never gives a second node a block
  that one already holds: the Nodes are the record, nothing else is stored.
  Blocks held by kubelets started with ``--pod-cidr`` are occupied the same
  way.
* **Allocate.** A Node without ``spec.podCIDR`` gets the next free block
  (``CIDRSet.allocate_next``: the first free one from the start of the range
  on a fresh start) through a strategic-merge patch of the Node setting
  ``spec.podCIDR`` and ``spec.podCIDRs``, upstream's ``PatchNodeCIDRs``. The
  API server's node strategy allows setting them once, from empty, never a
  change, so a race with someone else setting them ends in a 422: our block
  goes back and the next sync occupies theirs.
* **Release.** ``name -> (uid, cidr)`` is kept for every Node we know, so a
  delete event (the object is gone from the cache by then) still says which
  block to free; a Node recreated under the same name (a new uid) is its
  predecessor's delete plus an add. Freeing a block re-enqueues the Nodes
  still waiting for one.
* **Exhaustion.** No block left: an Event ``CIDRNotAvailable`` (type Normal,
  "Node X status is now: CIDRNotAvailable", source ``cidrAllocator``, as
  upstream's ``RecordNodeStatusChange``) on the Node, and the key goes back
  to the queue with backoff; nothing crashes. The EventRecorder folds the
  repeats into one Event's count.
* **A block we cannot take.** A podCIDR outside the cluster range, of
  another size, inside the reserved service range, or one another Node
  already holds: logged, an Event ``InvalidPodCIDR`` (Warning) once per Node
  and block, and the Node is left alone (upstream would refuse to start).

Level-triggered (docs/design.md style 1-3): informer events only enqueue
the node's name; ``sync(name)`` reads the cache and converges, and may run
any number of times. One worker by default, so Nodes created one after
another get blocks in that order.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, NamedTuple, Protocol

from api import resources as R
from client.cache import Store
from client.errors import Invalid, NotFound
from client.workqueue import WorkQueue
from controllers.cidrset import CIDRSet, CIDRSetError, CIDRsExhausted
from controllers.workers import QueueWorkers

log = logging.getLogger(__name__)

COMPONENT = "cidrAllocator"            # upstream's event source for the range allocator
REASON_CIDR_NOT_AVAILABLE = "CIDRNotAvailable"
REASON_INVALID_POD_CIDR = "InvalidPodCIDR"


class Recorder(Protocol):
    def record(self, obj: dict, type: str, reason: str, message: str, action: str = "",
               rt: R.ResourceType = R.PODS) -> None: ...


class _Held(NamedTuple):
    uid: str
    cidr: str
    pending: bool  # allocated by us, not yet seen on the Node in the cache


def _md(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def node_cidrs(node: dict) -> list[str]:
    """The Node's pod CIDRs: ``spec.podCIDRs``, else ``[spec.podCIDR]``, else []."""
    spec = node.get("spec") or {}
    cidrs = [c for c in spec.get("podCIDRs") or [] if c]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


def cidr_patch(cidr: str) -> dict:
    """Upstream's PatchNodeCIDRs body (strategic merge): one family, one block."""
    return {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}


class NodeIPAMController(QueueWorkers):
    """Informer events enqueue node names; workers run ``sync(name)`` (see module docstring).

    ``nodes`` is the node informer's Store (or a plain Store in tests);
    ``client`` needs ``patch`` (a ``client.rest.Client`` or a fake);
    ``recorder`` is a ``client.events.EventRecorder``.
    """

    worker_name = "nodeipam"
    what = "node IPAM: sync of node"
    log = log

    def quiet(self, error: Exception, requeues: int) -> bool:
        return isinstance(error, CIDRsExhausted) and requeues > 0

    def __init__(self, client: Any, nodes: Store, cidrs: CIDRSet, recorder: Recorder, *,
                 queue: WorkQueue | None = None, workers: int = 1):
        self.client = client
        self.nodes = nodes
        self.cidrs = cidrs
        self.recorder = recorder
        self.queue = queue or WorkQueue(base_delay=0.1, max_delay=60.0, name="nodeipam")
        self.workers = workers
        self._lock = threading.RLock()
        self._held: dict[str, _Held] = {}          # node name -> its block
        self._holders: dict[str, set[str]] = {}    # block -> the node names holding it
        self._reported: set[tuple[str, str]] = set()  # (uid, cidr) already told about
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ wiring
    def register(self, nodes_informer: Any) -> None:
        nodes_informer.add_handler(on_add=self._enqueue, on_update=self._on_update, on_delete=self._enqueue)

    def _enqueue(self, node: dict) -> None:
        name = _md(node).get("name")
        if name:
            self.queue.add(name)

    def _on_update(self, old: dict, new: dict) -> None:
        # Heartbeats change the status only: skip Nodes whose block we already track.
        held = self._held.get(_md(new).get("name", ""))
        cidrs = node_cidrs(new)
        if held is not None and not held.pending and held.uid == _md(new).get("uid", "") and held.cidr in cidrs:
            return
        self._enqueue(new)

    def occupy_existing(self) -> None:
        """Occupy every cached Node's block; call after the informer synced, before the workers start."""
        n = 0
        for node in self.nodes.list():
            if node_cidrs(node):
                with self._lock:
                    if self._take_existing(node):
                        n += 1
        log.info("node IPAM: %d node(s) already hold a block of %s; %d of %d blocks free", n, self.cidrs.cluster,
                 self.cidrs.free, self.cidrs.max_cidrs)

    # ----------------------------------------------------- bookkeeping
    def _hold(self, name: str, uid: str, cidr: str, pending: bool) -> None:
        self._held[name] = _Held(uid, cidr, pending)
        self._holders.setdefault(cidr, set()).add(name)

    def _forget(self, name: str) -> None:
        """Drop ``name``'s block; release it if no other Node holds it, and wake the Nodes waiting."""
        held = self._held.pop(name, None)
        if held is None:
            return
        holders = self._holders.get(held.cidr, set())
        holders.discard(name)
        if holders:
            return
        self._holders.pop(held.cidr, None)
        try:
            self.cidrs.release(held.cidr)
        except CIDRSetError as e:  # not ours to free (cannot happen for a block we took)
            log.warning("node IPAM: could not release %s of node %s: %s", held.cidr, name, e)
            return
        log.info("node IPAM: released %s (node %s is gone)", held.cidr, name)
        for node in self.nodes.list():
            other = _md(node).get("name")
            if other and not node_cidrs(node) and other not in self._held:
                self.queue.add(other)

    def _report(self, node: dict, cidr: str, why: str) -> None:
        md = _md(node)
        key = (md.get("uid", "") or md.get("name", ""), cidr)
        if key in self._reported:
            return
        self._reported.add(key)
        msg = f"Node {md.get('name')} has podCIDR {cidr}, which the node IPAM controller leaves alone: {why}"
        log.warning("node IPAM: %s", msg)
        self.recorder.record(node, "Warning", REASON_INVALID_POD_CIDR, msg, rt=R.NODES)

    def _take_existing(self, node: dict) -> bool:
        """Occupy (or keep) the block ``node`` already holds; False if it is not one we can take."""
        md = _md(node)
        name, uid = md.get("name", ""), md.get("uid", "")
        cidrs = node_cidrs(node)
        mine = [c for c in cidrs if self._same_family(c)]
        if not mine:
            self._forget(name)
            self._report(node, ",".join(cidrs), f"no IPv{self.cidrs.cluster.version} block of the cluster CIDR "
                                                f"{self.cidrs.cluster}")
            return False
        cidr = mine[0]
        held = self._held.get(name)
        if held is not None and held.cidr == cidr and held.uid == uid:
            if held.pending:
                self._held[name] = held._replace(pending=False)
            return True
        if held is not None:
            self._forget(name)  # ours was allocated for it but someone else set another, or a new Node
        others = self._holders.get(cidr)
        if others:
            self._report(node, cidr, f"node(s) {', '.join(sorted(others))} hold it too")
            self._hold(name, uid, cidr, False)  # freed only when the last holder goes
            return True
        try:
            self.cidrs.occupy(cidr)
        except CIDRSetError as e:
            self._report(node, cidr, str(e))
            return False
        self._hold(name, uid, cidr, False)
        return True

    def _same_family(self, cidr: str) -> bool:
        return (":" in cidr) == (self.cidrs.cluster.version == 6)

    # ---------------------------------------------------------- the sync
    def sync(self, name: str) -> None:
        """Converge Node ``name``'s block; raises to be retried (exhaustion, a failed patch)."""
        node = self.nodes.get_by_key(name)
        with self._lock:
            if node is None:
                self._forget(name)
                return
            uid = _md(node).get("uid", "")
            held = self._held.get(name)
            if held is not None and held.uid != uid:
                self._forget(name)  # the Node we gave it to was deleted and recreated
                held = None
            if node_cidrs(node):
                self._take_existing(node)
                return
            if held is None:
                try:
                    cidr = self.cidrs.allocate_next()
                except CIDRsExhausted:
                    self.recorder.record(node, "Normal", REASON_CIDR_NOT_AVAILABLE,
                                         f"Node {name} status is now: {REASON_CIDR_NOT_AVAILABLE}", rt=R.NODES)
                    raise
                self._hold(name, uid, cidr, True)
            else:
                cidr = held.cidr  # a patch sent before that the cache has not shown yet, or one that failed
        try:
            self.client.patch(R.NODES, name, cidr_patch(cidr), patch_type="strategic")
        except NotFound:
            with self._lock:
                self._forget_if(name, uid)
            return
        except Invalid:
            # Someone set a podCIDR first (the server allows it once): give ours back, take theirs on the retry.
            with self._lock:
                self._forget_if(name, uid)
            raise
        log.info("node IPAM: node %s gets %s", name, cidr)

    def _forget_if(self, name: str, uid: str) -> None:
        held = self._held.get(name)
        if held is not None and held.uid == uid and held.pending:
            self._forget(name)


    def held(self) -> dict[str, str]:
        """name -> block, for tests and logs."""
        with self._lock:
            return {n: h.cidr for n, h in self._held.items()}


__all__ = ["NodeIPAMController", "node_cidrs", "cidr_patch", "COMPONENT", "REASON_CIDR_NOT_AVAILABLE",
           "REASON_INVALID_POD_CIDR"]
