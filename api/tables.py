"""Server-side Table output: the columns and cells kubectl `get` prints.

kubectl does not format resources itself. It asks the server for a
`meta.k8s.io/v1` Table (section 3 of KUBECTL_COMPAT.md) and prints the cells
it gets back as they are. A real cluster's columns come from kube-apiserver's
printers (`pkg/printers/internalversion/printers.go`), so this module copies
their column definitions (names, types, formats, priorities) and the rules
behind each cell (the pod STATUS logic, `Restarts` with `(5m ago)`,
`<none>`/`<pending>` placeholders and `duration.HumanDuration` ages). Then
`kubectl get pods` shows `NAME READY STATUS RESTARTS AGE` just like it does
against a real cluster.

Like the real server (its TableConvertor always passes `Wide: true`), every
row carries all cells, including the `priority: 1` ones. kubectl hides those
unless `-o wide` is given. A kind without a printer gets the apiserver's
default convertor: `Name` and `Created At` (RFC3339).

The module is pure: stdlib only, no I/O, and `now` is passed in, so ages are
deterministic under test.
"""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any, Callable

from api import resources as R

__all__ = [
    "column_definitions",
    "row_cells",
    "row_conditions",
    "human_duration",
    "table_for",
    "format_labels",
    "format_label_selector",
]

# --------------------------------------------------------------------------
# Column definitions. Descriptions are the API field docs, as kube uses them.
# --------------------------------------------------------------------------

_D_NAME = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_D_CREATED = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the "
    "system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_D_CONTAINERS = "Names of each container in the template."
_D_IMAGES = "Images referenced by each container in the template."


def _col(name: str, description: str, type_: str = "string", fmt: str = "", priority: int = 0) -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


def _name_col() -> dict:
    return _col("Name", _D_NAME, fmt="name")


def _age_col() -> dict:
    return _col("Age", _D_CREATED)


_COLUMNS: dict[str, list[dict]] = {
    "Pod": [
        _name_col(),
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "The number of times the containers in this pod have been restarted and "
                         "when the last container in this pod has restarted."),
        _age_col(),
        _col("IP", "podIP address allocated to the pod. Routable at least within the cluster. "
                   "Empty if not yet allocated.", priority=1),
        _col("Node", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a "
                     "candidate for scheduling by the scheduler defined in schedulerName. Once this "
                     "field is set, the kubelet for this node becomes responsible for the lifecycle "
                     "of this pod. This field should not be used to express a desire for the pod to "
                     "be scheduled on a specific node. "
                     "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
             priority=1),
        _col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the "
                               "node, but it cannot be scheduled right away as preemption victims "
                               "receive their graceful termination periods. This field does not "
                               "guarantee that the pod will be scheduled on this node. Scheduler may "
                               "decide to place the pod elsewhere if other nodes become available "
                               "sooner. Scheduler may also decide to give the resources on this node "
                               "to a higher priority pod that is created after preemption. As a "
                               "result, this field may be different than PodSpec.nodeName when the "
                               "pod is scheduled.", priority=1),
        _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness. "
                                "A pod is ready when all its containers are ready AND all conditions "
                                "specified in the readiness gates have status equal to \"True\" More "
                                "info: https://git.k8s.io/enhancements/keps/sig-network/"
                                "580-pod-readiness-gates", priority=1),
    ],
    "Service": [
        _name_col(),
        _col("Type", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options "
                     "are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
        _col("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned "
                           "randomly."),
        _col("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will "
                            "also accept traffic for this service.  These IPs are not managed by "
                            "Kubernetes.  The user is responsible for ensuring that traffic arrives at "
                            "a node with this IP.  A common example is external load-balancers that "
                            "are not part of the Kubernetes system."),
        _col("Port(s)", "The list of ports that are exposed by this service. More info: "
                        "https://kubernetes.io/docs/concepts/services-networking/service/"
                        "#virtual-ips-and-service-proxies"),
        _age_col(),
        _col("Selector", "Route service traffic to pods with label keys and values matching this "
                         "selector. If empty or not present, the service is assumed to have an "
                         "external process managing its endpoints, which Kubernetes will not modify. "
                         "Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if "
                         "type is ExternalName. More info: "
                         "https://kubernetes.io/docs/concepts/services-networking/service/", priority=1),
    ],
    "Endpoints": [
        _name_col(),
        _col("Endpoints", "The set of all endpoints is the union of all subsets. Addresses are placed "
                          "into subsets according to the IPs they share. A single address with "
                          "multiple ports, some of which are ready and some of which are not (because "
                          "they come from different containers) will result in the address being "
                          "displayed in different subsets for the different ports. No address will "
                          "appear in both Addresses and NotReadyAddresses in the same subset. Sets of "
                          "addresses and ports that comprise a service."),
        _age_col(),
    ],
    "Node": [
        _name_col(),
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _age_col(),
        _col("Version", "Kubelet Version reported by the node."),
        _col("Internal-IP", "List of addresses reachable to the node. Queried from cloud provider, if "
                            "available.", priority=1),
        _col("External-IP", "List of addresses reachable to the node. Queried from cloud provider, if "
                            "available.", priority=1),
        _col("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
                         "(wheezy)).", priority=1),
        _col("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. "
                               "3.16.0-0.bpo.4-amd64).", priority=1),
        _col("Container-Runtime", "ContainerRuntime Version reported by the node through runtime "
                                  "remote API (e.g. containerd://1.4.2).", priority=1),
    ],
    "Namespace": [
        _name_col(),
        _col("Status", "The status of the namespace"),
        _age_col(),
    ],
    # The one real printer whose first column is not Name: `kubectl get events`
    # prints LAST SEEN first and keeps NAME as the last, wide-only column.
    "Event": [
        _col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
        _col("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
        _col("Reason", "This should be a short, machine understandable string that gives the reason "
                       "for the transition into the object's current status."),
        _col("Object", "The object that this event is about."),
        _col("Subobject", "If referring to a piece of an object instead of an entire object, this "
                          "string should contain a valid JSON/Go field access statement, such as "
                          "desiredState.manifest.containers[2].", priority=1),
        _col("Source", "The component reporting this event. Should be a short machine understandable "
                       "string.", priority=1),
        _col("Message", "A human-readable description of the status of this operation."),
        _col("First Seen", "The time at which the event was first recorded. (Time of server receipt "
                           "is in TypeMeta.)", priority=1),
        _col("Count", "The number of times this event has occurred.", priority=1),
        _col("Name", _D_NAME, fmt="name", priority=1),
    ],
    "Lease": [
        _name_col(),
        _col("Holder", "holderIdentity contains the identity of the holder of a current lease."),
        _age_col(),
    ],
    "Ingress": [
        _name_col(),
        _col("Class", "The name of the IngressClass resource that should be used for additional "
                      "configuration"),
        _col("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        _col("Address", "Address is a list containing ingress points for the load-balancer"),
        _col("Ports", "Ports of TLS configurations that open"),
        _age_col(),
    ],
    "Deployment": [
        _name_col(),
        _col("Ready", "Number of the pod with ready state"),
        _col("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have "
                           "the desired template spec."),
        _col("Available", "Total number of available pods (ready for at least minReadySeconds) "
                          "targeted by this deployment."),
        _age_col(),
        _col("Containers", _D_CONTAINERS, priority=1),
        _col("Images", _D_IMAGES, priority=1),
        _col("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this "
                         "will be the ones affected by this deployment.", priority=1),
    ],
    "ReplicaSet": [
        _name_col(),
        _col("Desired", "Replicas is the number of desired replicas. This is a pointer to distinguish "
                        "between explicit zero and unspecified. Defaults to 1.", type_="integer"),
        _col("Current", "Replicas is the most recently observed number of replicas.", type_="integer"),
        _col("Ready", "The number of ready replicas for this replica set.", type_="integer"),
        _age_col(),
        _col("Containers", _D_CONTAINERS, priority=1),
        _col("Images", _D_IMAGES, priority=1),
        _col("Selector", "Selector is a label query over pods that should match the replica count. "
                         "Label keys and values that must match in order to be controlled by this "
                         "replica set.", priority=1),
    ],
}

# rest.NewDefaultTableConvertor: what the apiserver serves for kinds without a printer.
_DEFAULT_COLUMNS = [_name_col(), _col("Created At", _D_CREATED, type_="date")]

# Kinds that have printers here but are not (yet) in api.resources.
_EXTRA_KINDS = {"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
                "replicaset": "ReplicaSet", "replicasets": "ReplicaSet", "rs": "ReplicaSet"}


def _canonical_kind(kind: str) -> str:
    """Map `Pod`, `pods`, `po` and the like to the printer's kind name."""
    if kind in _COLUMNS:
        return kind
    low = kind.lower()
    for k in _COLUMNS:
        if k.lower() == low:
            return k
    if low in _EXTRA_KINDS:
        return _EXTRA_KINDS[low]
    rt = R.resolve(kind)
    return rt.kind if rt is not None else kind


def column_definitions(kind: str) -> list[dict]:
    """The Table columnDefinitions the real apiserver serves for `kind` (a fresh copy)."""
    return copy.deepcopy(_COLUMNS.get(_canonical_kind(kind), _DEFAULT_COLUMNS))


# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------

def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration: ~2-3 significant figures.

    A deviation of up to 2 seconds (exclusive) into the future counts as "0s",
    to allow for clock skew. Anything further ahead is "<invalid>".
    """
    secs = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    """RFC3339 (with or without fraction, `Z` or offset) to an aware datetime; None if unset."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    s = str(value).strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        # Go may print more than 6 fractional digits; Python takes at most 6.
        if "." in s:
            head, _, rest = s.partition(".")
            digits = "".join(ch for ch in rest if ch.isdigit())
            tz = rest[len(digits):]
            try:
                t = datetime.fromisoformat(f"{head}.{digits[:6].ljust(6, '0')}{tz}")
            except ValueError:
                return None
        else:
            return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    if t.year <= 1:  # Go's zero time marshalled out: treat as unset
        return None
    return t


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


def _since(value: Any, now: datetime) -> str:
    """translateTimestampSince: HumanDuration(now - t), or `<unknown>` when unset."""
    t = _parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((_aware(now) - t).total_seconds())


# --------------------------------------------------------------------------
# Small formatting helpers shared by the printers
# --------------------------------------------------------------------------

def _get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return default
        d = d.get(p)
        if d is None:
            return default
    return d


def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: `k=v` pairs sorted by key, or `<none>`."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _selector_string(selector: dict | None) -> str:
    """metav1.LabelSelectorAsSelector(sel).String(); "" for nil or empty selectors."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (selector.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator", "")
        vals = sorted(expr.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(vals)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(vals)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            return "<error>"
    reqs.sort(key=lambda r: r[0])  # stable, by key, like internalSelector's sort
    return ",".join(r for _, r in reqs)


def format_label_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector: the selector string, or `<none>` when it is empty."""
    s = _selector_string(selector)
    return s or "<none>"


def _layout_containers(containers: list | None) -> tuple[str, str]:
    containers = containers or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def _join_host_port(host: str, port: Any) -> str:
    """net.JoinHostPort: brackets around IPv6 literals."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _lb_ingress(status: dict | None) -> str:
    """loadBalancerStatusStringer in wide mode: the sorted set of IPs/hostnames."""
    out: set[str] = set()
    for ing in _get(status, "ingress", default=[]) or []:
        if ing.get("ip"):
            out.add(ing["ip"])
        elif ing.get("hostname"):
            out.add(ing["hostname"])
    return ",".join(sorted(out))


# --------------------------------------------------------------------------
# Printers: one per kind, each returning every cell (wide ones included)
# --------------------------------------------------------------------------

_NODE_UNREACHABLE_POD_REASON = "NodeLost"


def _is_restartable_init(container: dict | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _has_condition(conditions: list | None, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions or [])


def _pod_cells(pod: dict, now: datetime) -> list:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    conditions = status.get("conditions") or []

    restarts = 0
    restartable_init_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_restartable_init_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    for c in spec.get("initContainers") or []:
        if _is_restartable_init(c):
            total += 1

    def later(a: datetime | None, b: Any) -> datetime | None:
        t = _parse_time(b)
        if t is not None and (a is None or a < t):
            return t
        return a

    n_init = len(spec.get("initContainers") or [])
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        last_term = _get(cs, "lastState", "terminated")
        if last_term is not None:
            last_restart = later(last_restart, last_term.get("finishedAt"))
        restartable = _is_restartable_init(init_specs.get(cs.get("name")))
        if restartable:
            restartable_init_restarts += int(cs.get("restartCount") or 0)
            if last_term is not None:
                last_restartable_init_restart = later(last_restartable_init_restart,
                                                      last_term.get("finishedAt"))
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if restartable and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if not term.get("reason"):
                if term.get("signal"):
                    reason = f"Init:Signal:{term['signal']}"
                else:
                    reason = f"Init:ExitCode:{term.get('exitCode') or 0}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break

    if not initializing or _has_condition(conditions, "Initialized"):
        restarts = restartable_init_restarts
        last_restart = last_restartable_init_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_term = _get(cs, "lastState", "terminated")
            if last_term is not None:
                last_restart = later(last_restart, last_term.get("finishedAt"))
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                if term.get("signal"):
                    reason = f"Signal:{term['signal']}"
                else:
                    reason = f"ExitCode:{term.get('exitCode') or 0}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A container that exited with Completed while another still runs.
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == _NODE_UNREACHABLE_POD_REASON:
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_str = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_str = f"{restarts} ({human_duration((_aware(now) - last_restart).total_seconds())} ago)"

    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else "") or status.get("podIP") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_str = "<none>"
    if gates:
        true_count = 0
        for g in gates:
            for c in conditions:
                if c.get("type") == g.get("conditionType"):
                    if c.get("status") == "True":
                        true_count += 1
                    break
        gates_str = f"{true_count}/{len(gates)}"

    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_str,
        _since(meta.get("creationTimestamp"), now),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_str,
    ]


def _service_external_ip(svc_type: str, spec: dict, status: dict) -> str:
    external_ips = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        lb = _lb_ingress(status.get("loadBalancer"))
        if external_ips:
            return ",".join((lb.split(",") if lb else []) + list(external_ips))
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_cells(svc: dict, now: datetime) -> list:
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    status = svc.get("status") or {}
    svc_type = spec.get("type") or "ClusterIP"  # the apiserver defaults it
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    pieces = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return [
        meta.get("name", ""),
        svc_type,
        cluster_ips[0] if cluster_ips else "<none>",
        _service_external_ip(svc_type, spec, status),
        ",".join(pieces) or "<none>",
        _since(meta.get("creationTimestamp"), now),
        format_labels(spec.get("selector")),
    ]


def _format_endpoints(ep: dict) -> str:
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    max_shown = 3
    shown: list[str] = []
    more = False
    count = 0
    for ss in subsets:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:  # headless service without ports
            for a in addrs:
                if len(shown) == max_shown:
                    more = True
                if not more:
                    shown.append(a.get("ip", ""))
                count += 1
        else:
            for port in ports:
                for a in addrs:
                    if len(shown) == max_shown:
                        more = True
                    if not more:
                        shown.append(_join_host_port(a.get("ip", ""), port.get("port")))
                    count += 1
    ret = ",".join(shown)
    if more:
        return f"{ret} + {count - max_shown} more..."
    return ret


def _endpoints_cells(ep: dict, now: datetime) -> list:
    meta = ep.get("metadata") or {}
    return [meta.get("name", ""), _format_endpoints(ep), _since(meta.get("creationTimestamp"), now)]


def _node_roles(labels: dict | None) -> str:
    roles: set[str] = set()
    for k, v in (labels or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(status: dict, type_: str) -> str:
    for a in status.get("addresses") or []:
        if a.get("type") == type_:
            return a.get("address", "")
    return "<none>"


def _node_cells(node: dict, now: datetime) -> list:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    parts: list[str] = []
    ready = None
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            ready = c  # the last one wins, like kube's condition map
    if ready is not None:
        parts.append("Ready" if ready.get("status") == "True" else "NotReady")
    else:
        parts.append("Unknown")
    if spec.get("unschedulable"):
        parts.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [
        meta.get("name", ""),
        ",".join(parts),
        _node_roles(meta.get("labels")),
        _since(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion") or "",
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace_cells(ns: dict, now: datetime) -> list:
    meta = ns.get("metadata") or {}
    return [meta.get("name", ""), _get(ns, "status", "phase", default=""),
            _since(meta.get("creationTimestamp"), now)]


def _event_cells(ev: dict, now: datetime) -> list:
    meta = ev.get("metadata") or {}
    first = _since(ev.get("firstTimestamp"), now)
    if _parse_time(ev.get("firstTimestamp")) is None:
        first = _since(ev.get("eventTime"), now)
    last = _since(ev.get("lastTimestamp"), now)
    if _parse_time(ev.get("lastTimestamp")) is None:
        last = first
    count = int(ev.get("count") or 0)
    series = ev.get("series")
    if series is not None:
        last = _since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events have no count in the events.k8s.io API
    inv = ev.get("involvedObject") or {}
    kind = (inv.get("kind") or "").lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    src = ev.get("source") or {}
    component = src.get("component") or ev.get("reportingComponent") or ev.get("reportingController") or ""
    instance = src.get("host") or ev.get("reportingInstance") or ""
    source = f"{component}, {instance}" if instance else component
    return [
        last,
        ev.get("type") or "",
        ev.get("reason") or "",
        target,
        inv.get("fieldPath") or "",
        source,
        (ev.get("message") or "").strip(),
        first,
        count,
        meta.get("name", ""),
    ]


def _lease_cells(lease: dict, now: datetime) -> list:
    meta = lease.get("metadata") or {}
    return [meta.get("name", ""), _get(lease, "spec", "holderIdentity", default=""),
            _since(meta.get("creationTimestamp"), now)]


def _ingress_hosts(rules: list | None) -> str:
    rules = rules or []
    max_shown = 3
    shown: list[str] = []
    more = False
    for rule in rules:
        if len(shown) == max_shown:
            more = True
        if not more and rule.get("host"):
            shown.append(rule["host"])
    if not shown:
        return "*"
    ret = ",".join(shown)
    if more:
        return f"{ret} + {len(rules) - max_shown} more..."
    return ret


def _ingress_cells(ing: dict, now: datetime) -> list:
    meta = ing.get("metadata") or {}
    spec = ing.get("spec") or {}
    return [
        meta.get("name", ""),
        spec.get("ingressClassName") if spec.get("ingressClassName") is not None else "<none>",
        _ingress_hosts(spec.get("rules")),
        _lb_ingress(_get(ing, "status", "loadBalancer")),
        "80, 443" if spec.get("tls") else "80",
        _since(meta.get("creationTimestamp"), now),
    ]


def _replicas(spec: dict) -> int:
    r = spec.get("replicas")
    return 1 if r is None else int(r)  # the apiserver defaults replicas to 1


def _deployment_cells(d: dict, now: datetime) -> list:
    meta = d.get("metadata") or {}
    spec = d.get("spec") or {}
    status = d.get("status") or {}
    names, images = _layout_containers(_get(spec, "template", "spec", "containers"))
    return [
        meta.get("name", ""),
        f"{int(status.get('readyReplicas') or 0)}/{_replicas(spec)}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        _since(meta.get("creationTimestamp"), now),
        names,
        images,
        _selector_string(spec.get("selector")),
    ]


def _replicaset_cells(rs: dict, now: datetime) -> list:
    meta = rs.get("metadata") or {}
    spec = rs.get("spec") or {}
    status = rs.get("status") or {}
    names, images = _layout_containers(_get(spec, "template", "spec", "containers"))
    return [
        meta.get("name", ""),
        _replicas(spec),
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        _since(meta.get("creationTimestamp"), now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _default_cells(obj: dict, now: datetime) -> list:
    meta = obj.get("metadata") or {}
    t = _parse_time(meta.get("creationTimestamp"))
    created = t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "0001-01-01T00:00:00Z"
    return [meta.get("name", ""), created]


_PRINTERS: dict[str, Callable[[dict, datetime], list]] = {
    "Pod": _pod_cells,
    "Service": _service_cells,
    "Endpoints": _endpoints_cells,
    "Node": _node_cells,
    "Namespace": _namespace_cells,
    "Event": _event_cells,
    "Lease": _lease_cells,
    "Ingress": _ingress_cells,
    "Deployment": _deployment_cells,
    "ReplicaSet": _replicaset_cells,
}


def row_cells(kind: str, obj: dict, now: datetime) -> list:
    """All cells (wide ones included) of one object's row, as kube-apiserver prints them."""
    return _PRINTERS.get(_canonical_kind(kind), _default_cells)(obj, now)


def row_conditions(kind: str, obj: dict) -> list[dict] | None:
    """Row conditions: kube marks Succeeded and Failed pods `Completed`; otherwise None."""
    if _canonical_kind(kind) != "Pod":
        return None
    phase = _get(obj, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


# --------------------------------------------------------------------------
# The Table
# --------------------------------------------------------------------------

def _row_object(kind: str, obj: dict, include_object: str) -> dict | None:
    mode = (include_object or "Metadata").lower()
    if mode == "none":
        return None
    if mode == "object":
        if obj.get("kind") and obj.get("apiVersion"):
            return obj
        full = dict(obj)
        k = _canonical_kind(kind)
        rt = next((r for r in R.ALL if r.kind == k), None)
        full.setdefault("kind", k)
        if rt is not None:
            full.setdefault("apiVersion", rt.api_version)
        return full
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def table_for(kind: str, objs: list[dict], now: datetime, include_object: str = "Metadata",
              resource_version: str = "", include_columns: bool = True) -> dict:
    """A complete `meta.k8s.io/v1` Table for `objs` of one kind.

    `include_object` is the request's `includeObject`: "Metadata" (default;
    rows carry a PartialObjectMetadata), "Object" (the full object) or "None"
    (no object). `metadata.resourceVersion` is set when `resource_version` is
    non-empty; `metadata` is always a dict so callers can add `continue`.
    With `include_columns=False`, `columnDefinitions` is null, as in the real
    server's watch events after the first one.
    """
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": row_cells(kind, obj, now)}
        conds = row_conditions(kind, obj)
        if conds:
            row["conditions"] = conds
        ro = _row_object(kind, obj, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = str(resource_version)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": column_definitions(kind) if include_columns else None,
        "rows": rows,
    }
