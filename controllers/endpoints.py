"""The endpoints controller: keeps each Service's Endpoints equal to its ready pods.

For every Service with a selector, the Endpoints object of the same name
lists the pods the selector matches: ready pods' IPs under ``addresses``,
the others under ``notReadyAddresses`` (or all under ``addresses`` when the
service sets ``publishNotReadyAddresses``), each with a ``targetRef`` to its
pod, its ``nodeName``, and a ``hostname`` when the pod's ``spec.subdomain``
names the service and it sets ``spec.hostname`` (what cluster DNS serves as
``hostname.service.ns.svc``). Ports are resolved per pod: a numeric
``targetPort`` is taken as is, a named one is looked up in that pod's
container ports (same protocol), so pods exposing a name on different
numbers land in different subsets, as upstream's ``RepackSubsets`` does.

What is left out, as in Kubernetes: pods without an IP yet, terminating
pods (a ``deletionTimestamp`` means "leave at once", before the kubelet has
stopped them), and finished pods (``Succeeded``/``Failed``). Services
without a selector are the user's: their Endpoints are never touched.

The loop is level-triggered (docs/design.md style 1-3): informer events on
services, pods and endpoints only enqueue a service key
(``namespace/name``); ``sync(key)`` reads the caches, computes the whole
desired Endpoints and writes only when it differs from what the cache
holds, so a controller restart, a missed event or someone else editing
the object all converge to the same result. When the Service is gone its
Endpoints are deleted. At start-up every Endpoints whose Service no longer
exists is enqueued too (upstream's ``checkLeftoverEndpoints``), so deletes
missed while the controller was down are caught up. Failures (a 409 from a
stale cache, a server that is down) go back to the work queue with backoff.

``compute_endpoints`` is pure, so most of this is tested without a server.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable

from api import resources as R
from api.selectors import selector_from_set
from client.cache import Store, split_key
from client.errors import AlreadyExists, Conflict, NotFound
from client.workqueue import WorkQueue
from controllers.workers import QueueWorkers

log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"
# Endpoints kept by a leader election lock (old-style) are never leftovers.
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


# --------------------------------------------------------------- pure part
def _md(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def _spec(obj: dict | None) -> dict:
    return (obj or {}).get("spec") or {}


def pod_is_ready(pod: dict) -> bool:
    for cond in ((pod.get("status") or {}).get("conditions") or []):
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_in_endpoints(pod: dict) -> bool:
    """Upstream's ShouldPodBeInEndpoints: has an IP, not terminating, not finished."""
    if not (pod.get("status") or {}).get("podIP"):
        return False
    if _md(pod).get("deletionTimestamp"):
        return False
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed")


def find_port(pod: dict, svc_port: dict) -> int | None:
    """The pod's port number for a service port's ``targetPort`` (None if a named port is absent)."""
    target = svc_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = svc_port.get("port")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol") or "TCP"
    for container in _spec(pod).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target and (cport.get("protocol") or "TCP") == protocol:
                return cport.get("containerPort")
    return None


def _address(pod: dict, service_name: str) -> dict:
    md, spec = _md(pod), _spec(pod)
    addr: dict[str, Any] = {"ip": pod["status"]["podIP"]}
    if spec.get("hostname") and spec.get("subdomain") == service_name:
        addr["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    ref = {"kind": "Pod", "namespace": md.get("namespace"), "name": md.get("name")}
    if md.get("uid"):
        ref["uid"] = md["uid"]
    addr["targetRef"] = ref
    return addr


def _endpoint_port(svc_port: dict, number: int) -> dict:
    port: dict[str, Any] = {"port": number, "protocol": svc_port.get("protocol") or "TCP"}
    if svc_port.get("name"):
        port["name"] = svc_port["name"]
    if svc_port.get("appProtocol"):
        port["appProtocol"] = svc_port["appProtocol"]
    return port


def _port_key(p: dict) -> tuple:
    return (p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP", p.get("appProtocol") or "")


def _addr_key(a: dict) -> tuple:
    ref = a.get("targetRef") or {}
    return (a.get("ip") or "", ref.get("uid") or "", ref.get("name") or "")


def repack(entries: Iterable[tuple[dict, bool, dict | None]]) -> list[dict]:
    """Group ``(address, ready, port-or-None)`` entries into canonical subsets.

    Addresses serving exactly the same set of ports share a subset, as in
    upstream's RepackSubsets; everything is sorted so equal content always
    serialises the same way (which is what makes "write only on change" work).
    """
    by_addr: dict[tuple, tuple[dict, bool, dict[tuple, dict]]] = {}
    for addr, ready, port in entries:
        k = (_addr_key(addr), ready)
        if k not in by_addr:
            by_addr[k] = (addr, ready, {})
        if port is not None:
            by_addr[k][2][_port_key(port)] = port
    groups: dict[tuple, dict[str, Any]] = {}
    for addr, ready, ports in by_addr.values():
        pkey = tuple(sorted(ports))
        g = groups.setdefault(pkey, {"ports": [ports[k] for k in pkey], "ready": [], "not_ready": []})
        (g["ready"] if ready else g["not_ready"]).append(addr)
    subsets = []
    for pkey in sorted(groups):
        g = groups[pkey]
        subset: dict[str, Any] = {}
        if g["ready"]:
            subset["addresses"] = sorted(g["ready"], key=_addr_key)
        if g["not_ready"]:
            subset["notReadyAddresses"] = sorted(g["not_ready"], key=_addr_key)
        if g["ports"]:
            subset["ports"] = g["ports"]
        subsets.append(subset)
    return subsets


def compute_subsets(service: dict, pods: Iterable[dict]) -> list[dict]:
    """The Endpoints ``subsets`` for ``service`` given the pods its selector matches."""
    spec = _spec(service)
    name = _md(service).get("name", "")
    tolerate_unready = bool(spec.get("publishNotReadyAddresses"))
    headless = spec.get("clusterIP") == "None"
    svc_ports = spec.get("ports") or []
    entries: list[tuple[dict, bool, dict | None]] = []
    for pod in pods:
        if not pod_in_endpoints(pod):
            continue
        ready = tolerate_unready or pod_is_ready(pod)
        addr = _address(pod, name)
        if not svc_ports:
            if headless:
                entries.append((addr, ready, None))
            continue
        for sp in svc_ports:
            number = find_port(pod, sp)
            if number is None:
                log.debug("service %s: pod %s has no port named %r", name, _md(pod).get("name"),
                          sp.get("targetPort"))
                continue
            entries.append((addr, ready, _endpoint_port(sp, number)))
    return repack(entries)


def endpoints_labels(service: dict) -> dict:
    labels = dict(_md(service).get("labels") or {})
    if _spec(service).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def compute_endpoints(service: dict, pods: Iterable[dict]) -> dict:
    """The whole desired Endpoints object for ``service`` (without resourceVersion)."""
    md = _md(service)
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": md.get("name"), "namespace": md.get("namespace"),
                     "labels": endpoints_labels(service)},
        "subsets": compute_subsets(service, pods),
    }


def canonical_subsets(subsets: list[dict] | None) -> list[dict]:
    """Subsets as ``repack`` would lay them out, so a stored object compares with a computed one."""
    entries: list[tuple[dict, bool, dict | None]] = []
    for subset in subsets or []:
        ports = [dict(p, protocol=p.get("protocol") or "TCP") for p in subset.get("ports") or []]
        for ready, field in ((True, "addresses"), (False, "notReadyAddresses")):
            for addr in subset.get(field) or []:
                if ports:
                    entries.extend((addr, ready, p) for p in ports)
                else:
                    entries.append((addr, ready, None))
    return repack(entries)


def endpoints_equal(current: dict | None, desired: dict) -> bool:
    if current is None:
        return False
    if (_md(current).get("labels") or {}) != (_md(desired).get("labels") or {}):
        return False
    return canonical_subsets(current.get("subsets")) == desired["subsets"]


def pod_service_keys(pod: dict, services: Iterable[dict]) -> list[str]:
    """Keys of the services (with a selector) whose selector matches ``pod``'s labels."""
    labels = _md(pod).get("labels") or {}
    keys = []
    for svc in services:
        selector = _spec(svc).get("selector")
        if selector and selector_from_set(selector).matches(labels):
            md = _md(svc)
            keys.append(f"{md.get('namespace')}/{md.get('name')}")
    return keys


# ----------------------------------------------------------- the controller
def _relevant_pod_change(old: dict, new: dict) -> bool:
    """Could this pod update change any Endpoints? (saves work on status-only churn)."""
    if old is new:
        return True  # resync replay
    if _md(old).get("labels") != _md(new).get("labels"):
        return True
    if bool(_md(old).get("deletionTimestamp")) != bool(_md(new).get("deletionTimestamp")):
        return True
    if pod_in_endpoints(old) != pod_in_endpoints(new) or pod_is_ready(old) != pod_is_ready(new):
        return True
    so, sn = old.get("status") or {}, new.get("status") or {}
    if so.get("podIP") != sn.get("podIP"):
        return True
    po, pn = _spec(old), _spec(new)
    for f in ("nodeName", "hostname", "subdomain"):
        if po.get(f) != pn.get(f):
            return True
    return [c.get("ports") for c in po.get("containers") or []] != \
        [c.get("ports") for c in pn.get("containers") or []]


class EndpointsController(QueueWorkers):
    """Informer handlers enqueue service keys; workers run ``sync(key)``.

    ``services``, ``pods`` and ``endpoints`` are Stores (an informer's
    ``.store``, or plain Stores in tests); the service and pod stores must
    have the ``namespace`` index (``client.cache.namespace_index``). ``client`` needs create/update/delete (a
    ``client.rest.Client`` or a fake).
    """

    worker_name = "endpoints"
    what = "sync of endpoints"
    log = log

    def __init__(self, client: Any, services: Store, pods: Store, endpoints: Store, *,
                 queue: WorkQueue | None = None, workers: int = 5):
        self.client = client
        self.services = services
        self.pods = pods
        self.endpoints = endpoints
        self.queue = queue or WorkQueue(name="endpoints")
        self.workers = workers
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ wiring
    def register(self, services_informer: Any, pods_informer: Any, endpoints_informer: Any) -> None:
        services_informer.add_handler(on_add=self._svc_event, on_update=lambda o, n: self._svc_event(n),
                                      on_delete=self._svc_event)
        pods_informer.add_handler(on_add=self._pod_add, on_update=self._pod_update, on_delete=self._pod_add)
        endpoints_informer.add_handler(on_update=lambda o, n: self._ep_event(n), on_delete=self._ep_event)

    @staticmethod
    def _key(obj: dict) -> str:
        md = _md(obj)
        return f"{md.get('namespace')}/{md.get('name')}"

    def _svc_event(self, svc: dict) -> None:
        self.queue.add(self._key(svc))

    def _services_in(self, namespace: str | None) -> list[dict]:
        return self.services.by_index("namespace", namespace)

    def _pod_add(self, pod: dict) -> None:
        for key in pod_service_keys(pod, self._services_in(_md(pod).get("namespace"))):
            self.queue.add(key)

    def _pod_update(self, old: dict, new: dict) -> None:
        if not _relevant_pod_change(old, new):
            return
        services = self._services_in(_md(new).get("namespace"))
        keys = set(pod_service_keys(new, services))
        if _md(old).get("labels") != _md(new).get("labels"):
            keys.update(pod_service_keys(old, services))
        for key in keys:
            self.queue.add(key)

    def _ep_event(self, ep: dict) -> None:
        # Someone changed or removed an Endpoints: converge it again (a no-op
        # for our own writes, whose content already equals the desired one).
        self.queue.add(self._key(ep))

    def enqueue_leftovers(self) -> None:
        """Enqueue Endpoints whose Service is gone (deletes missed while we were down)."""
        for key, ep in self.endpoints.items():
            if self.services.get_by_key(key) is None and LEADER_ANNOTATION not in (_md(ep).get("annotations") or {}):
                self.queue.add(key)

    # ---------------------------------------------------------- the sync
    def sync(self, key: str) -> None:
        """Converge the Endpoints of service ``key``; raises to be retried."""
        namespace, name = split_key(key)
        service = self.services.get_by_key(key)
        current = self.endpoints.get_by_key(key)
        if service is None:
            if current is not None and LEADER_ANNOTATION not in (_md(current).get("annotations") or {}):
                try:
                    self.client.delete(R.ENDPOINTS, name, namespace)
                    log.info("deleted endpoints %s (service is gone)", key)
                except NotFound:
                    pass
            return
        selector = _spec(service).get("selector")
        if not selector:
            return  # the user manages these Endpoints
        sel = selector_from_set(selector)
        pods = [p for p in self.pods.by_index("namespace", namespace)
                if sel.matches(_md(p).get("labels") or {})]
        desired = compute_endpoints(service, pods)
        if endpoints_equal(current, desired):
            return
        if current is None:
            try:
                self.client.create(R.ENDPOINTS, desired, namespace)
                log.info("created endpoints %s", key)
            except AlreadyExists:
                # Our cache has not seen it yet: update it on the retry.
                raise Conflict(f"endpoints {key} exists but is not in the cache yet")
            return
        desired["metadata"]["resourceVersion"] = _md(current).get("resourceVersion")
        # Keep what others put on the object (annotations); labels and subsets are ours.
        if _md(current).get("annotations"):
            desired["metadata"]["annotations"] = _md(current)["annotations"]
        self.client.update(R.ENDPOINTS, desired, namespace)
        log.info("updated endpoints %s", key)



__all__ = ["EndpointsController", "compute_endpoints", "compute_subsets", "endpoints_equal",
           "canonical_subsets", "find_port", "pod_is_ready", "pod_in_endpoints", "pod_service_keys", "repack"]
