"""The ``kube-system/kube-dns`` Service and its Endpoints: how pods reach this process.

docs/design.md's contract: cluster DNS ensures a selector-less Service with the
fixed ClusterIP 10.96.0.10 (``--cluster-ip``), ports ``dns`` 53/UDP and
``dns-tcp`` 53/TCP, and the labels that make ``kubectl cluster-info`` list
it (``kubernetes.io/cluster-service: "true"``, ``kubernetes.io/name:
CoreDNS``) and that tools select it by (``k8s-app: kube-dns``). Because
the Service has no selector, the endpoints controller leaves its Endpoints
alone (``controllers.endpoints``: "Services without a selector are the
user's"), and this process writes its own address there; the proxy then
DNATs 10.96.0.10:53 to it, like any service.

``Registrar.sync()`` is the level-triggered ensure step (docs/design.md style 1):
it reads the Service and Endpoints, and writes only what differs:

* Service missing -> created; present -> labels and ports made ours and a
  selector removed (a merge patch); a different ClusterIP is reported, not
  "fixed" (it is immutable, and deleting a Service is the user's call);
* Endpoints: this process's address (with ``nodeName`` when known) is added
  to the subset carrying our ports; addresses of other DNS processes (one
  per node) and other subsets are kept.

``run(stop)`` calls ``sync()`` at start, whenever ``poke()`` is called (the
informer handlers poke on any event for kube-system/kube-dns, so a deleted
or edited object is restored at once), and every ``resync`` seconds;
failures (API server down, 409 from a racing writer) retry with backoff,
while the DNS server keeps answering. ``withdraw()`` removes our address on
a graceful shutdown, so the proxy stops sending queries to a process that
is gone.
"""
from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from api import resources as R
from client.errors import AlreadyExists, ApiError, Conflict, NotFound
from client.informer import Backoff

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
NAME = "kube-dns"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}


def service_ports() -> list[dict]:
    return [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]


def endpoint_ports(port: int) -> list[dict]:
    return [{"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"}]


def desired_service(cluster_ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"clusterIP": cluster_ip, "type": "ClusterIP", "ports": service_ports()}}


def _ports_key(ports: list[dict] | None) -> list[tuple]:
    return sorted(((p.get("name") or ""), int(p.get("port") or 0), (p.get("protocol") or "TCP"))
                  for p in ports or [])


def _svc_ports_key(ports: list[dict] | None) -> list[tuple]:
    return sorted(((p.get("name") or ""), int(p.get("port") or 0), (p.get("protocol") or "TCP"),
                   str(p.get("targetPort") or p.get("port") or "")) for p in ports or [])


def service_patch(current: dict, cluster_ip: str) -> dict | None:
    """The merge patch taking ``current`` to our Service (None when nothing differs)."""
    md, spec = current.get("metadata") or {}, current.get("spec") or {}
    patch: dict[str, Any] = {}
    labels = md.get("labels") or {}
    if any(labels.get(k) != v for k, v in LABELS.items()):
        patch["metadata"] = {"labels": dict(LABELS)}
    spec_patch: dict[str, Any] = {}
    if _svc_ports_key(spec.get("ports")) != _svc_ports_key(service_ports()):
        spec_patch["ports"] = service_ports()
    if spec.get("selector"):
        spec_patch["selector"] = None
    if spec_patch:
        patch["spec"] = spec_patch
    if spec.get("clusterIP") != cluster_ip:
        log.warning("service %s/%s has clusterIP %s, not %s (immutable: delete it to change it)",
                    NAMESPACE, NAME, spec.get("clusterIP"), cluster_ip)
    return patch or None


def desired_subsets(current: dict | None, address: dict, port: int, remove: bool = False) -> list[dict]:
    """``current``'s subsets with ``address`` added to (or removed from) the subset with our ports."""
    ours = endpoint_ports(port)
    key = _ports_key(ours)
    subsets: list[dict] = []
    addresses: list[dict] = []
    for subset in (current or {}).get("subsets") or []:
        if _ports_key(subset.get("ports")) == key:
            addresses.extend(subset.get("addresses") or [])
        else:
            subsets.append(subset)
    addresses = [a for a in addresses if a.get("ip") != address["ip"]]
    if not remove:
        addresses.append(address)
    if addresses:
        subsets.append({"addresses": sorted(addresses, key=lambda a: a.get("ip") or ""), "ports": ours})
    return subsets


def _canonical(subsets: list[dict] | None) -> list:
    out = []
    for s in subsets or []:
        addrs = sorted(((a.get("ip") or ""), (a.get("nodeName") or ""), (a.get("hostname") or ""))
                       for a in s.get("addresses") or [])
        nr = sorted((a.get("ip") or "") for a in s.get("notReadyAddresses") or [])
        out.append((addrs, nr, _ports_key(s.get("ports"))))
    return sorted(out)


class Registrar:
    """Keeps kube-system/kube-dns pointing at this process (see the module docstring)."""

    def __init__(self, client: Any, cluster_ip: str, address: str, port: int = 53, *,
                 node_name: str | None = None, resync: float = 60.0):
        self.client = client
        self.cluster_ip = cluster_ip
        self.address = address
        self.port = port
        self.node_name = node_name
        self.resync = resync
        self._poke = threading.Event()
        self.synced = threading.Event()

    def my_address(self) -> dict:
        a: dict[str, Any] = {"ip": self.address}
        if self.node_name:
            a["nodeName"] = self.node_name
        return a

    # -------------------------------------------------------------- sync
    def ensure_service(self) -> None:
        try:
            current = self.client.get(R.SERVICES, NAME, NAMESPACE)
        except NotFound:
            try:
                self.client.create(R.SERVICES, desired_service(self.cluster_ip), NAMESPACE)
                log.info("created service %s/%s (clusterIP %s)", NAMESPACE, NAME, self.cluster_ip)
            except AlreadyExists:
                raise Conflict(f"service {NAMESPACE}/{NAME} appeared meanwhile")
            return
        patch = service_patch(current, self.cluster_ip)
        if patch:
            self.client.patch(R.SERVICES, NAME, patch, NAMESPACE)
            log.info("updated service %s/%s: %s", NAMESPACE, NAME, sorted(patch.get("spec", {})) or "labels")

    def ensure_endpoints(self, remove: bool = False) -> None:
        try:
            current = self.client.get(R.ENDPOINTS, NAME, NAMESPACE)
        except NotFound:
            current = None
        subsets = desired_subsets(current, self.my_address(), self.port, remove=remove)
        if current is not None and _canonical(current.get("subsets")) == _canonical(subsets) \
                and all((current.get("metadata") or {}).get("labels", {}).get(k) == v for k, v in LABELS.items()):
            return
        if current is None:
            if remove:
                return
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
                    "subsets": subsets}
            try:
                self.client.create(R.ENDPOINTS, body, NAMESPACE)
            except AlreadyExists:
                raise Conflict(f"endpoints {NAMESPACE}/{NAME} appeared meanwhile")
        else:
            body = copy.deepcopy(current)
            body["subsets"] = subsets
            body["metadata"]["labels"] = {**(body["metadata"].get("labels") or {}), **LABELS}
            self.client.update(R.ENDPOINTS, body, NAMESPACE)
        log.info("%s %s:%d %s endpoints %s/%s", "removed" if remove else "registered", self.address, self.port,
                 "from" if remove else "in", NAMESPACE, NAME)

    def sync(self) -> None:
        self.ensure_service()
        self.ensure_endpoints()
        self.synced.set()

    # -------------------------------------------------------------- loop
    def poke(self, *_: Any) -> None:
        self._poke.set()

    def watch_key(self, obj: dict) -> bool:
        md = obj.get("metadata") or {}
        return md.get("namespace") == NAMESPACE and md.get("name") == NAME

    def handlers(self) -> dict:
        """Informer handler kwargs that poke on events for kube-system/kube-dns."""
        def on(obj: dict) -> None:
            if self.watch_key(obj):
                self.poke()
        return {"on_add": on, "on_update": lambda old, new: on(new), "on_delete": on}

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(0.2, 10.0)
        while not stop.is_set():
            self._poke.clear()
            try:
                self.sync()
                backoff.reset()
                delay = self.resync
            except (ApiError, OSError) as e:
                delay = backoff.next_delay()
                log.log(logging.INFO if isinstance(e, Conflict) else logging.WARNING,
                        "ensuring %s/%s failed (retry in %.1fs): %s", NAMESPACE, NAME, delay,
                        getattr(e, "message", None) or e)
            except Exception:  # noqa: BLE001 - keep serving DNS whatever happens here
                delay = backoff.next_delay()
                log.exception("ensuring %s/%s failed", NAMESPACE, NAME)
            if delay != self.resync:
                stop.wait(delay)          # a backoff is not cut short by pokes
                continue
            waited = 0.0                  # after a success: until a poke, the resync, or stop
            while not stop.is_set() and waited < delay:
                if self._poke.wait(min(0.2, delay - waited)):
                    break
                waited += 0.2

    def withdraw(self) -> None:
        """Remove our address (best effort, on graceful shutdown)."""
        try:
            self.ensure_endpoints(remove=True)
        except Exception as e:  # noqa: BLE001
            log.warning("could not remove %s from %s/%s: %s", self.address, NAMESPACE, NAME, e)


__all__ = ["Registrar", "desired_service", "desired_subsets", "service_patch", "LABELS", "NAME", "NAMESPACE"]
