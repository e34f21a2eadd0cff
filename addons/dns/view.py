"""What cluster DNS knows: Services, Endpoints and Pods, read from informer Stores.

The resolver never calls the API server. It asks a ``ClusterView``, which
reads three ``client.cache.Store`` objects that informers keep current (or
that a test fills by hand, which is the "fake cache" of the unit tests).
The Stores carry the indexes the reverse lookups need, so a PTR query is a
dict lookup, not a scan:

* services by ``spec.clusterIP`` (``cluster_ip``) and by namespace,
* endpoints by every address IP (``ip``),
* pods by ``status.podIP`` (``ip``).

``watch(informers, on_change)`` wires the informers: every event that can
change an answer calls ``on_change()`` (the encoded-answer cache drops
everything it holds). Pod status churn that leaves the IP and namespace
alone (readiness flips, container restarts) does not, so a busy cluster
does not keep emptying the cache.

While the API server is down, informers keep their Stores as they were, so
names keep resolving with the last known state.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from api import resources as R
from client.cache import Store, namespace_index


def _md(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def _spec(obj: dict | None) -> dict:
    return (obj or {}).get("spec") or {}


def service_cluster_ips(svc: dict) -> list[str]:
    spec = _spec(svc)
    ips = [ip for ip in (spec.get("clusterIPs") or []) if ip and ip != "None"]
    ip = spec.get("clusterIP")
    if ip and ip != "None" and ip not in ips:
        ips.insert(0, ip)
    return ips


def endpoints_ips(ep: dict) -> list[str]:
    out = []
    for subset in ep.get("subsets") or []:
        for field in ("addresses", "notReadyAddresses"):
            for a in subset.get(field) or []:
                if a.get("ip"):
                    out.append(a["ip"])
    return out


def pod_ip(pod: dict) -> str | None:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    return status.get("podIP") or None


SERVICE_INDEXERS = {"namespace": namespace_index, "cluster_ip": service_cluster_ips}
ENDPOINTS_INDEXERS = {"ip": endpoints_ips}
POD_INDEXERS = {"ip": pod_ip}


class ClusterView:
    """Read-only lookups over the three Stores (see the module docstring)."""

    def __init__(self, services: Store, endpoints: Store, pods: Store | None = None):
        self.services = services
        self.endpoints = endpoints
        self.pods = pods

    @classmethod
    def from_objects(cls, services: Iterable[dict] = (), endpoints: Iterable[dict] = (),
                     pods: Iterable[dict] = ()) -> "ClusterView":
        """A view over plain Stores filled with these objects (tests, benchmarks)."""
        view = cls(Store(indexers=SERVICE_INDEXERS), Store(indexers=ENDPOINTS_INDEXERS),
                   Store(indexers=POD_INDEXERS))
        for s in services:
            view.services.add(s)
        for e in endpoints:
            view.endpoints.add(e)
        for p in pods:
            view.pods.add(p)
        return view

    def service(self, namespace: str, name: str) -> dict | None:
        return self.services.get_by_key(f"{namespace}/{name}")

    def endpoints_of(self, namespace: str, name: str) -> dict | None:
        return self.endpoints.get_by_key(f"{namespace}/{name}")

    def namespace_has_services(self, namespace: str) -> bool:
        return bool(self.services.index_keys("namespace", namespace))

    def services_with_ip(self, ip: str) -> list[dict]:
        return self.services.by_index("cluster_ip", ip)

    def endpoints_with_ip(self, ip: str) -> list[dict]:
        return self.endpoints.by_index("ip", ip)

    def pods_with_ip(self, ip: str) -> list[dict]:
        if self.pods is None:
            return []
        return self.pods.by_index("ip", ip)


# ------------------------------------------------------------------ wiring
def _pod_dns_key(pod: dict) -> tuple:
    return (_md(pod).get("namespace"), pod_ip(pod))


def watch(services_informer: Any, endpoints_informer: Any, pods_informer: Any | None,
          on_change: Callable[[], None]) -> None:
    """Call ``on_change()`` on every informer event that may change an answer."""
    def changed(*_: Any) -> None:
        on_change()

    services_informer.add_handler(on_add=changed, on_update=changed, on_delete=changed)
    endpoints_informer.add_handler(on_add=changed, on_update=changed, on_delete=changed)
    if pods_informer is not None:
        def pod_update(old: dict, new: dict) -> None:
            if old is new or _pod_dns_key(old) != _pod_dns_key(new):
                on_change()

        pods_informer.add_handler(on_add=changed, on_update=pod_update, on_delete=changed)


def informers_for(factory: Any, pods: bool = True) -> tuple[Any, Any, Any | None]:
    """The three shared informers with the indexes ``ClusterView`` needs."""
    s = factory.informer_for(R.SERVICES, indexers=SERVICE_INDEXERS)
    e = factory.informer_for(R.ENDPOINTS, indexers=ENDPOINTS_INDEXERS)
    p = factory.informer_for(R.PODS, indexers=POD_INDEXERS) if pods else None
    return s, e, p


__all__ = ["ClusterView", "watch", "informers_for", "service_cluster_ips", "endpoints_ips", "pod_ip"]
