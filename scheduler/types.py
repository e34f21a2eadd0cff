"""What the scheduler knows about one pod and one node, precomputed once.

Every filter and score plugin is called once per (pod, node) pair, so
anything a plugin would otherwise re-derive from the raw JSON on every call
(summing container requests, parsing ``"250m"`` and ``"1Gi"``, reading
taints and host ports) is computed here once: for a pod when it is popped
from the queue or seen bound on a node, for a node when its object changes.
Plugins then read plain attributes.

Quantities are parsed exactly (``api.quantity.parse_quantity`` returns a
``Fraction``) and then rounded *up* to integers the way Kubernetes'
``MilliValue()``/``Value()`` do: cpu in millicores, everything else in
units. Rounding up a request and comparing integers is what makes "fits to
the last millicore" exact: ``0.5`` cpu and ``500m`` are both 500, and
``1001m`` on a node with ``1`` cpu left does not fit.

A pod's request follows Kubernetes' rules (``resourcehelper.PodRequests``):
regular containers add up; a container that gives limits but no requests
requests its limits; an ordinary init container runs alone, so the pod needs
at least the largest of them; a restartable init container (a sidecar,
``restartPolicy: Always``) keeps running, so it adds to the containers and to
every init container started after it; ``spec.overhead`` is added on top.
For *scoring* only, containers that request no cpu/memory count as 100m and
200Mi (``GetNonzeroRequests``), so empty pods still spread out.

``NodeInfo`` carries the sum of the requests of the pods the scheduler
believes are on the node (bound ones and assumed ones); the cache mutates it
under its lock; plugins only read it.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from typing import Any, Iterable

from api.kinds.node import TAINT_NOT_READY, TAINT_UNREACHABLE  # the well-known taint keys' one home
from api.quantity import parse_quantity

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

DEFAULT_MILLI_CPU_REQUEST = 100            # 100m, as Kubernetes' scheduler
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # 200Mi

# Clusters reuse a handful of quantity strings ("100m", "64Mi"), so the exact
# parse (a Fraction) and its rounding are cached per string.
@functools.lru_cache(maxsize=8192)
def _milli(value: str) -> int:
    return math.ceil(parse_quantity(value) * 1000)


@functools.lru_cache(maxsize=8192)
def _units(value: str) -> int:
    return math.ceil(parse_quantity(value))


def milli_value(value: Any) -> int:
    """``"250m"`` -> 250, ``"1"`` -> 1000, rounded up like Quantity.MilliValue()."""
    return _milli(value if isinstance(value, str) else str(value))


def int_value(value: Any) -> int:
    """``"1Gi"`` -> 1073741824, rounded up like Quantity.Value()."""
    return _units(value if isinstance(value, str) else str(value))


class Resources:
    """A resource vector: cpu in millicores, memory and the rest in units."""

    __slots__ = ("milli_cpu", "memory", "ephemeral_storage", "scalar")

    def __init__(self, milli_cpu: int = 0, memory: int = 0, ephemeral_storage: int = 0,
                 scalar: dict[str, int] | None = None):
        self.milli_cpu = milli_cpu
        self.memory = memory
        self.ephemeral_storage = ephemeral_storage
        self.scalar = scalar or {}

    @classmethod
    def from_list(cls, rl: dict | None) -> "Resources":
        """A ResourceList (``{"cpu": "250m", "memory": "64Mi"}``); ``pods`` is ignored here."""
        r = cls()
        if not rl:
            return r
        for name, q in rl.items():
            if name == CPU:
                r.milli_cpu = milli_value(q)
            elif name == MEMORY:
                r.memory = int_value(q)
            elif name == EPHEMERAL_STORAGE:
                r.ephemeral_storage = int_value(q)
            elif name != PODS:
                r.scalar[name] = int_value(q)
        return r

    def copy(self) -> "Resources":
        return Resources(self.milli_cpu, self.memory, self.ephemeral_storage, dict(self.scalar))

    def add(self, other: "Resources") -> None:
        self.milli_cpu += other.milli_cpu
        self.memory += other.memory
        self.ephemeral_storage += other.ephemeral_storage
        for k, v in other.scalar.items():
            self.scalar[k] = self.scalar.get(k, 0) + v

    def sub(self, other: "Resources") -> None:
        self.milli_cpu -= other.milli_cpu
        self.memory -= other.memory
        self.ephemeral_storage -= other.ephemeral_storage
        for k, v in other.scalar.items():
            left = self.scalar.get(k, 0) - v
            if left:
                self.scalar[k] = left
            else:
                self.scalar.pop(k, None)

    def set_max(self, other: "Resources") -> None:
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        for k, v in other.scalar.items():
            if v > self.scalar.get(k, 0):
                self.scalar[k] = v

    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage or any(self.scalar.values()))

    def get(self, name: str) -> int:
        if name == CPU:
            return self.milli_cpu
        if name == MEMORY:
            return self.memory
        if name == EPHEMERAL_STORAGE:
            return self.ephemeral_storage
        return self.scalar.get(name, 0)

    def as_dict(self) -> dict[str, int]:
        d = {CPU: self.milli_cpu, MEMORY: self.memory, EPHEMERAL_STORAGE: self.ephemeral_storage}
        d.update(self.scalar)
        return d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in sorted(self.scalar.items()))
        return f"Resources(cpu={self.milli_cpu}m, memory={self.memory}, ephemeral={self.ephemeral_storage}{extra})"


def _container_requests(c: dict, non_missing: bool) -> Resources:
    res = c.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    if limits:
        # Kubernetes defaults a missing request to the limit.
        merged = dict(limits)
        merged.update(requests)
        requests = merged
    r = Resources.from_list(requests)
    if non_missing:
        if CPU not in requests:
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
        if MEMORY not in requests:
            r.memory = DEFAULT_MEMORY_REQUEST
    return r


def pod_requests(pod: dict, non_missing: bool = False) -> Resources:
    """The resources a pod needs on a node (see the module docstring for the rules)."""
    spec = pod.get("spec") or {}
    total = Resources()
    for c in spec.get("containers") or ():
        total.add(_container_requests(c, non_missing))
    restartable = Resources()
    init_max = Resources()
    for c in spec.get("initContainers") or ():
        r = _container_requests(c, non_missing)
        if c.get("restartPolicy") == "Always":
            restartable.add(r)
            init_max.set_max(restartable)
        else:
            step = r.copy()
            step.add(restartable)
            init_max.set_max(step)
    total.add(restartable)
    total.set_max(init_max)
    overhead = spec.get("overhead")
    if overhead:
        total.add(Resources.from_list(overhead))
    return total


def host_ports(pod: dict) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) the pod wants on its node; hostNetwork pods use their container ports."""
    spec = pod.get("spec") or {}
    host_network = bool(spec.get("hostNetwork"))
    out = []
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or ():
            port = p.get("hostPort") or (p.get("containerPort") if host_network else 0)
            if not port:
                continue
            out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(port)))
    return out


def controller_uid(pod: dict) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid") or f"{ref.get('kind')}/{ref.get('name')}"
    return None


def pod_key(pod: dict) -> str:
    md = pod.get("metadata") or {}
    return f"{md.get('namespace') or 'default'}/{md.get('name')}"


class PodInfo:
    """A pod with everything the plugins need already parsed (never mutates ``obj``).

    ``state`` is scratch space for one scheduling cycle (CycleState): a
    plugin's ``pre_filter``/``pre_score`` can leave data there for its own
    ``filter``/``score`` calls on every node.
    """

    __slots__ = ("obj", "key", "namespace", "name", "uid", "labels", "spec", "requests",
                 "non_zero_cpu", "non_zero_memory", "tolerations", "host_ports", "owner_uid",
                 "priority", "node_name", "state")

    def __init__(self, pod: dict):
        md = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.obj = pod
        self.namespace = md.get("namespace") or "default"
        self.name = md.get("name") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.uid = md.get("uid")
        self.labels = md.get("labels") or {}
        self.spec = spec
        self.requests = pod_requests(pod)
        nz = pod_requests(pod, non_missing=True)
        self.non_zero_cpu = nz.milli_cpu
        self.non_zero_memory = nz.memory
        self.tolerations = spec.get("tolerations") or []
        self.host_ports = host_ports(pod)
        self.owner_uid = controller_uid(pod)
        self.priority = int(spec.get("priority") or 0)
        self.node_name = spec.get("nodeName") or ""
        self.state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<PodInfo {self.key} {self.requests}>"


def node_ready_taint(node: dict) -> dict | None:
    """The taint Kubernetes' node lifecycle controller would put on a node that is not Ready.

    The controller-manager writes it (``controllers.nodetaint``, the same
    rule); the scheduler applies the rule itself as well, so it decides the
    same without a controller-manager or before the taint lands:
    Ready=False -> not-ready, Ready=Unknown or no Ready condition ->
    unreachable, both NoSchedule. Pods that tolerate it (DaemonSet-style)
    may still land there.
    """
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            status = cond.get("status")
            if status == "True":
                return None
            if status == "False":
                return {"key": TAINT_NOT_READY, "effect": "NoSchedule"}
            break
    return {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}


# One counter for all NodeInfos: a generation is never reused, not even by a
# NodeInfo recreated under the same name, so "same generation" means "same state".
_generations = itertools.count(1)


class NodeInfo:
    """One node and the pods the scheduler believes run there (bound + assumed).

    ``generation`` changes on every change to the node or its pods; the
    framework's memo of node-local plugin results is keyed on it.

    ``node`` is None while only pods are known (bound to a node whose object
    has not arrived or was deleted): such a NodeInfo keeps the accounting but
    is never a candidate.
    """

    __slots__ = ("name", "node", "labels", "allocatable", "allowed_pods", "taints", "prefer_taints",
                 "unschedulable", "ready_taint", "requested", "non_zero_cpu", "non_zero_memory",
                 "pods", "used_ports", "owner_counts", "generation")

    def __init__(self, name: str, node: dict | None = None):
        self.name = name
        self.node: dict | None = None
        self.labels: dict = {}
        self.allocatable = Resources()
        self.allowed_pods = 0
        self.taints: list[dict] = []         # NoSchedule + NoExecute
        self.prefer_taints: list[dict] = []  # PreferNoSchedule
        self.unschedulable = False
        self.ready_taint: dict | None = None
        self.requested = Resources()
        self.non_zero_cpu = 0
        self.non_zero_memory = 0
        self.pods: dict[str, PodInfo] = {}
        self.used_ports: dict[tuple[str, int], Counter] = {}
        self.owner_counts: Counter = Counter()
        self.generation = next(_generations)
        if node is not None:
            self.set_node(node)

    def set_node(self, node: dict | None) -> None:
        self.node = node
        self.generation = next(_generations)
        if node is None:
            return
        md = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.labels = md.get("labels") or {}
        alloc = status.get("allocatable") or status.get("capacity") or {}
        self.allocatable = Resources.from_list(alloc)
        pods = alloc.get(PODS)
        self.allowed_pods = int_value(pods) if pods is not None else 0
        taints = spec.get("taints") or []
        self.taints = [t for t in taints if t.get("effect") in ("NoSchedule", "NoExecute")]
        self.prefer_taints = [t for t in taints if t.get("effect") == "PreferNoSchedule"]
        self.unschedulable = bool(spec.get("unschedulable"))
        self.ready_taint = node_ready_taint(node)

    def add_pod(self, pi: PodInfo) -> None:
        old = self.pods.get(pi.key)
        if old is not None:
            self.remove_pod(pi.key)
        self.pods[pi.key] = pi
        self.requested.add(pi.requests)
        self.non_zero_cpu += pi.non_zero_cpu
        self.non_zero_memory += pi.non_zero_memory
        for ip, proto, port in pi.host_ports:
            self.used_ports.setdefault((proto, port), Counter())[ip] += 1
        if pi.owner_uid:
            self.owner_counts[pi.owner_uid] += 1
        self.generation = next(_generations)

    def remove_pod(self, key: str) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is None:
            return None
        self.requested.sub(pi.requests)
        self.non_zero_cpu -= pi.non_zero_cpu
        self.non_zero_memory -= pi.non_zero_memory
        for ip, proto, port in pi.host_ports:
            ips = self.used_ports.get((proto, port))
            if ips is not None:
                ips[ip] -= 1
                if ips[ip] <= 0:
                    del ips[ip]
                if not ips:
                    del self.used_ports[(proto, port)]
        if pi.owner_uid:
            self.owner_counts[pi.owner_uid] -= 1
            if self.owner_counts[pi.owner_uid] <= 0:
                del self.owner_counts[pi.owner_uid]
        self.generation = next(_generations)
        return pi

    def __repr__(self) -> str:
        return f"<NodeInfo {self.name} pods={len(self.pods)} requested={self.requested} of {self.allocatable}>"


def iter_pods(node_infos: Iterable[NodeInfo]) -> Iterable[PodInfo]:
    for ni in node_infos:
        yield from ni.pods.values()
