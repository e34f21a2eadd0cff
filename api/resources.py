"""The table of resource types pocketkube serves.

Both sides of the wire need the same facts about a resource: its group,
version, kind, plural, whether it is namespaced, its short names and
categories (kubectl only knows what discovery lists), and its subresources.
Keeping them in one pure table means the server's discovery documents, its
routes and the client's URL builder can never disagree.

Each row also names its kind's strategy (api/kinds/): the rules the API
server's generic registry asks for (defaults, validation, update rules,
field selectors, Table columns, allocation, delete policy). Adding a kind is
one module there plus one row here; discovery and routing follow from the
table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from api.kinds import binding, configmap, endpoints, event, ingress, lease, namespace, node, pod, secret, service
from api.kinds.base import Strategy


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )
    singular: str = ""
    list_kind: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    strategy_class: type[Strategy] = field(default=Strategy, compare=False, hash=False, repr=False)

    @cached_property
    def strategy(self) -> Strategy:
        """This resource's rules, bound to its row (one instance per row)."""
        return self.strategy_class(self)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def key_group(self) -> str:
        return self.group or "core"

    def path_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None = None) -> str:
        if self.namespaced and namespace:
            return f"{self.path_prefix()}/namespaces/{namespace}/{self.plural}"
        return f"{self.path_prefix()}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None, subresource: str | None = None) -> str:
        p = f"{self.collection_path(namespace if self.namespaced else None)}/{name}"
        return f"{p}/{subresource}" if subresource else p


def _rt(group, version, kind, plural, namespaced, short=(), cats=(), subs=(), verbs=None,
        strategy=Strategy) -> ResourceType:
    kw = {}
    if verbs is not None:
        kw["verbs"] = tuple(verbs)
    return ResourceType(
        group=group, version=version, kind=kind, plural=plural, namespaced=namespaced,
        short_names=tuple(short), categories=tuple(cats), subresources=tuple(subs),
        singular=kind.lower(), list_kind=kind + "List", strategy_class=strategy, **kw,
    )


NAMESPACES = _rt("", "v1", "Namespace", "namespaces", False, ("ns",), (), ("status",),
                 strategy=namespace.NamespaceStrategy)
PODS = _rt("", "v1", "Pod", "pods", True, ("po",), ("all",),
           ("status", "binding", "log", "exec", "portforward"), strategy=pod.PodStrategy)
SERVICES = _rt("", "v1", "Service", "services", True, ("svc",), ("all",), ("status",),
               strategy=service.ServiceStrategy)
CONFIGMAPS = _rt("", "v1", "ConfigMap", "configmaps", True, ("cm",), strategy=configmap.ConfigMapStrategy)
SECRETS = _rt("", "v1", "Secret", "secrets", True, strategy=secret.SecretStrategy)
ENDPOINTS = _rt("", "v1", "Endpoints", "endpoints", True, ("ep",), strategy=endpoints.EndpointsStrategy)
NODES = _rt("", "v1", "Node", "nodes", False, ("no",), (), ("status",), strategy=node.NodeStrategy)
EVENTS = _rt("", "v1", "Event", "events", True, ("ev",), strategy=event.EventStrategy)
BINDINGS = _rt("", "v1", "Binding", "bindings", True, verbs=("create",), strategy=binding.BindingStrategy)
LEASES = _rt("coordination.k8s.io", "v1", "Lease", "leases", True, strategy=lease.LeaseStrategy)
INGRESSES = _rt("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), (), ("status",),
                strategy=ingress.IngressStrategy)

ALL: tuple[ResourceType, ...] = (
    NAMESPACES, PODS, SERVICES, ENDPOINTS, NODES, EVENTS, BINDINGS, LEASES, INGRESSES, CONFIGMAPS, SECRETS,
)
# Resources stored as objects (Binding is only a verb on pods).
STORED: tuple[ResourceType, ...] = tuple(r for r in ALL if r is not BINDINGS)

# Groups in the order discovery lists them; "" is the legacy core group.
GROUP_VERSIONS: tuple[tuple[str, str], ...] = (
    ("", "v1"),
    ("coordination.k8s.io", "v1"),
    ("networking.k8s.io", "v1"),
)

_BY_GV_PLURAL = {(r.group, r.version, r.plural): r for r in ALL}
_BY_KIND = {(r.group_version, r.kind): r for r in ALL}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_GV_PLURAL.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    return _BY_KIND.get((api_version, kind))


def resolve(name: str) -> ResourceType | None:
    """Find a resource by plural, singular, kind or short name (pkctl's `get po`)."""
    n = name.lower()
    group = ""
    if "." in n:
        n, group = n.split(".", 1)
    for r in ALL:
        if group and r.group != group:
            continue
        if n in (r.plural, r.singular, r.kind.lower()) or n in r.short_names:
            return r
    return None
