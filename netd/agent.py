"""netd's loop: publish this node's network data and converge its kernel to f(all Nodes).

One agent per node, in the node's network namespace (flannel's role, with
its annotation keys; DESIGN.md "Several nodes"). The loop is level-triggered
and has ONE work-queue key: what a node's kernel should hold is a function of
all Nodes together (which remote podCIDRs clash with ours or each other, who
holds a CIDR after a handover), building it from the informer cache costs
about 20 µs per Node, and one key means no two syncs ever race on the same
route. Informer events only enqueue the key, and only when something the
network depends on changed (podCIDR, flannel annotations, addresses), so the
kubelets' heartbeats cost nothing.

``sync()``:

1. reads the own Node from the cache; resolves the public IP (``--public-ip``
   or the Node's InternalIP), the fabric interface (``--iface`` or the link
   holding that IP) and its MTU;
2. vxlan: ensures ``flannel.<VNI>`` (VNI, UDP port, local = public IP, dev =
   IF, learning off, MTU = IF MTU - 50, the podCIDR's network address /32).
   It is created here, in the node's namespace, where its UDP socket must
   live. An existing compatible device is kept with its MAC. host-gw: a
   ``flannel.<VNI>`` left from a vxlan run is deleted;
3. publishes the annotations and ``NetworkUnavailable=False`` (reason
   ``NetdIsUp``) with a strategic-merge patch of ``nodes/status``, when the
   cached Node does not already say so (before the peers: this node's own
   side is ready, and one unreachable peer must not keep it tainted);
4. builds the desired routes / neighbours / FDB entries (``netd.backends``)
   and diffs them against the state it owns; applies only the difference
   (a write that fails is logged, the others still go in).

What it owns is read back from the kernel through the ``Netlink`` seam:
routes marked with ``RT_PROTO``, permanent neighbours and FDB entries with a
remote on its VXLAN device. It is read on the first sync (so a restarted
agent adopts correct entries without touching them: an empty diff sends
nothing), after any failure, and every ``resync_period`` (which repairs
drift: a route someone deleted by hand comes back); in between, the agent
diffs against its record of what the last read plus its own writes left,
as the proxy does with its chains, so one changed Node among 1,000 costs a
few writes and no dump. A failure drops the record and requeues with
backoff.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timezone
from typing import Any, Callable

from api import resources as R
from netd import backends as B
from nodeutil.netlink import Netlink, VxlanSpec

log = logging.getLogger("netd")

KEY = "network"


class ApplyError(Exception):
    """Some writes of a sync failed (each is logged); the others were made."""


class NotReady(Exception):
    """The own node (or its interface) is not ready yet; logged, retried."""


@dataclass
class Config:
    node_name: str
    backend: str = B.VXLAN
    iface: str | None = None
    public_ip: str | None = None
    cluster_cidr: str | None = "10.244.0.0/16"
    vni: int = 1
    port: int = 8472
    resync_period: float = 10.0
    protocol: int = B.RT_PROTO


def node_ready(node: dict | None, cfg: Config) -> str | None:
    """Why ``node`` (the own Node) is not ready for netd yet, or None when it is."""
    if node is None:
        return "the Node does not exist yet (a kubelet registers it)"
    if not B.pod_cidr(node):
        return "the Node has no spec.podCIDR yet (the controller-manager allocates it)"
    if not cfg.public_ip and not B.internal_ip(node):
        return "the Node has no InternalIP address and --public-ip is not set"
    return None


def wait_for_node(get: Callable[[], dict | None], cfg: Config, stop: threading.Event, *,
                  interval: float = 0.5, log_every: float = 5.0) -> dict | None:
    """Until the own Node is ready (None if ``stop`` is set first): each try is one cache read, the whole
    wait has no limit, and the reason is logged every ``log_every`` seconds."""
    last_log = 0.0
    while not stop.is_set():
        node = get()
        why = node_ready(node, cfg)
        if why is None:
            return node
        now = time.monotonic()
        if now - last_log >= log_every:
            log.info("waiting for node %s: %s", cfg.node_name, why)
            last_log = now
        stop.wait(interval)
    return None


def relevant(node: dict) -> tuple:
    """What of a Node the network depends on (an update changing nothing of it enqueues nothing)."""
    md = node.get("metadata") or {}
    ann = md.get("annotations") or {}
    conds = [(c.get("type"), c.get("status"), c.get("reason"))
             for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == B.CONDITION]
    return (B.pod_cidr(node), tuple(ann.get(k) for k in B.ANNOTATION_KEYS), B.internal_ip(node), tuple(conds))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Agent:
    """See the module docstring. ``nodes`` and ``get_node`` read the informer cache (plain lists in tests);
    ``client`` needs ``patch`` (None: publish nothing)."""

    def __init__(self, netlink: Netlink, client: Any, cfg: Config, *, nodes: Callable[[], list[dict]],
                 get_node: Callable[[str], dict | None], clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], str] = _now):
        self.nl = netlink
        self.client = client
        self.cfg = cfg
        self._nodes = nodes
        self._get_node = get_node
        self._clock = clock
        self._now = now
        self._record: B.State | None = None        # what the kernel holds of ours, as last read + our writes
        self._spec: VxlanSpec | None = None         # the device as last ensured
        self._last_full = float("-inf")
        self.mac: str | None = None
        self.iface: str | None = None
        self.public_ip: str | None = None
        self._mtu = 0
        self.syncs = 0
        self.last_sync: dict[str, Any] = {}

    @property
    def vxlan_dev(self) -> str:
        return B.vxlan_device(self.cfg.vni)

    # ------------------------------------------------------------- events
    def on_update(self, enqueue: Callable[[], None]):
        def handler(old: dict, new: dict) -> None:
            if relevant(old) != relevant(new):
                enqueue()
        return handler

    def force_full(self) -> None:
        self._record = None

    def next_full_in(self) -> float:
        return max(0.0, self._last_full + self.cfg.resync_period - self._clock())

    # --------------------------------------------------------------- sync
    def sync(self) -> dict[str, Any]:
        """One convergence (see the module docstring); raises on failure (the caller requeues)."""
        try:
            return self._sync()
        except BaseException:
            self._record = None            # read the kernel again next time
            raise

    def _resolve(self, own: dict) -> tuple[str, str, int]:
        public_ip = self.cfg.public_ip or B.internal_ip(own)
        if not public_ip:
            raise NotReady("no public IP: the Node has no InternalIP and --public-ip is not set")
        iface = self.cfg.iface or self.nl.link_with_address(public_ip)
        if not iface:
            raise NotReady(f"no interface holds {public_ip} (set --iface, or --public-ip to this node's address)")
        mtu = self.nl.link_mtu(iface)
        if mtu is None:
            raise NotReady(f"interface {iface} not found")
        return public_ip, iface, mtu

    def _sync(self) -> dict[str, Any]:
        t0 = self._clock()
        own = self._get_node(self.cfg.node_name)
        why = node_ready(own, self.cfg)
        if why is not None:
            raise NotReady(why)
        own_cidr = B.pod_cidr(own)
        full = self._record is None or t0 - self._last_full >= self.cfg.resync_period
        if full or self.iface is None:
            self.public_ip, self.iface, self._mtu = self._resolve(own)
        if self.cfg.backend == B.VXLAN:
            net = own_cidr.split("/")[0]
            spec = VxlanSpec(self.vxlan_dev, self.cfg.vni, self.cfg.port, self.public_ip, self.iface,
                             self._mtu - B.VXLAN_OVERHEAD, B.vtep_mac(self.cfg.node_name, self.cfg.vni), f"{net}/32")
            if full or spec != self._spec:
                info = self.nl.vxlan(self.vxlan_dev)
                if info is None or not info.compatible(spec) or info.mtu != spec.mtu or not info.up \
                        or info.addresses != [spec.address]:
                    info = self.nl.ensure_vxlan(spec)
                    log.info("%s ensured: vni %d port %d local %s dev %s mtu %d mac %s address %s", spec.name,
                             spec.vni, spec.port, spec.local, spec.dev, info.mtu, info.mac, spec.address)
                    self._record = None     # a recreated device took its entries along
                self._spec, self.mac = spec, info.mac
        elif full and (left := self.nl.link(self.vxlan_dev)) is not None and left.kind == "vxlan":
            log.info("deleting %s left from the vxlan backend", self.vxlan_dev)
            self.nl.delete_link(self.vxlan_dev)
        # Published before the peers are programmed: this node is ready for others to reach as soon as
        # its own side is (one unreachable peer must not keep it tainted), and while the API server is
        # down the kernel still follows the cache.
        try:
            patched, publish_error = self._publish(own), None
        except Exception as e:  # noqa: BLE001 - raised after the kernel work below
            log.warning("publishing this node's network data failed: %s", e)
            patched, publish_error = False, e
        peer_list = B.peers(self._nodes(), self.cfg.node_name, own_cidr, self.cfg.backend, self.cfg.vni,
                             self.cfg.cluster_cidr)
        want = B.desired(self.cfg.backend, peer_list, iface=self.iface, vni=self.cfg.vni)
        read = self._record is None or full
        if read:
            self._record = self._read()
            self._last_full = t0
        plan = B.diff(want, self._record)
        self._apply(plan)
        if publish_error is not None:
            raise publish_error
        self.syncs += 1
        self.last_sync = {"full": read, "peers": len(peer_list), **plan.counts(), "published": patched,
                          "seconds": round(self._clock() - t0, 4)}
        # a resync that found everything in place is logged at debug only (it runs every resync period)
        log.log(logging.INFO if len(plan) or patched or self.syncs == 1 else logging.DEBUG,
                "sync done %s", json.dumps(self.last_sync))
        return self.last_sync

    def _read(self) -> B.State:
        routes = self.nl.owned_routes(self.cfg.protocol)
        if self.cfg.backend == B.VXLAN:
            return B.State.of(routes, self.nl.neighbours(self.vxlan_dev), self.nl.fdb_entries(self.vxlan_dev))
        return B.State.of(routes)

    def _apply(self, plan: B.Plan) -> None:
        """Every write of ``plan``, in its order, each noted in the record once made; one that fails (a
        peer whose node IP is not on-link, say) is logged and the rest still go in, then the sync fails as
        a whole (retried with backoff, reading the kernel again)."""
        rec, nl, proto = self._record, self.nl, self.cfg.protocol

        def route(r):
            return f"route {r.dst} via {r.gateway} dev {r.dev}{' onlink' if r.onlink else ''}"

        steps = (
            [(f"delete {route(r)}", partial(nl.delete_route, r, proto), partial(rec.routes.pop, r.dst, None))
             for r in plan.del_routes]
            + [(f"delete neighbour {n.ip} dev {n.dev}", partial(nl.delete_neighbour, n),
                partial(rec.neighs.pop, (n.dev, n.ip), None)) for n in plan.del_neighs]
            + [(f"delete fdb {e.mac} dst {e.dst} dev {e.dev}", partial(nl.delete_fdb, e),
                partial(rec.fdbs.discard, e)) for e in plan.del_fdbs]
            + [(f"add fdb {e.mac} dst {e.dst} dev {e.dev}", partial(nl.add_fdb, e), partial(rec.fdbs.add, e))
               for e in plan.add_fdbs]
            + [(f"set neighbour {n.ip} lladdr {n.mac} dev {n.dev}", partial(nl.replace_neighbour, n),
                partial(rec.neighs.__setitem__, (n.dev, n.ip), n)) for n in plan.add_neighs]
            + [(f"set {route(r)}", partial(nl.replace_route, r, proto), partial(rec.routes.__setitem__, r.dst, r))
               for r in plan.set_routes])
        failed: list[str] = []
        for what, write, note in steps:
            try:
                write()
            except Exception as e:  # noqa: BLE001 - NetlinkError or OSError: reported below
                log.warning("%s failed: %s", what, e)
                failed.append(f"{what}: {e}")
                continue
            note()
            log.log(logging.INFO if "route" in what else logging.DEBUG, "%s", what)
        if failed:
            raise ApplyError(f"{len(failed)} of {len(steps)} writes failed; first: {failed[0]}")

    def _publish(self, own: dict) -> bool:
        if self.client is None:
            return False
        ann = B.own_annotations(self.cfg.backend, self.public_ip, vni=self.cfg.vni, mac=self.mac)
        if B.published(own, ann):
            return False
        self.client.patch(R.NODES, self.cfg.node_name, B.status_patch(ann, self._now()),
                          patch_type="strategic", subresource="status")
        log.info("published %s and %s=False (%s)", json.dumps(ann), B.CONDITION, B.REASON)
        return True

    # --------------------------------------------------------------- loop
    def run(self, queue, stop: threading.Event) -> None:
        """Work the queue's one key until ``stop``: sync, then come back at the next resync (or, after a
        failure, with the queue's backoff)."""
        queue.add(KEY)
        last_not_ready = ""
        while not stop.is_set():
            key = queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                self.sync()
                last_not_ready = ""
                queue.forget(key)
                queue.add_after(key, self.next_full_in())
            except NotReady as e:
                if str(e) != last_not_ready:  # once per reason, not once a second
                    log.info("not ready: %s", e)
                last_not_ready = str(e)
                queue.add_after(key, 1.0)
            except ApplyError as e:
                log.error("sync incomplete (%s); retrying with backoff", e)
                queue.add_rate_limited(key)
            except Exception as e:  # noqa: BLE001 - the loop must go on; the kernel is read again next time
                log.exception("sync failed (%s); retrying with backoff", e)
                queue.add_rate_limited(key)
            finally:
                queue.done(key)


__all__ = ["Agent", "ApplyError", "Config", "KEY", "NotReady", "node_ready", "wait_for_node", "relevant"]
